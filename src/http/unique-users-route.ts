/** GET /v1/unique-users: distinct users of any range, per calendar window, from the stored per-minute sketches. */
import type { FastifyInstance } from 'fastify';
import { GRANULARITIES } from '../core/calendar-windows.ts';
import { countUserRange } from '../core/user-ranges.ts';
import type { Queryable } from '../db/types.ts';
import { readUserSketches } from '../db/user-sketch-store.ts';
import type { ParameterHints } from './error-handler.ts';
import { MAX_BUCKETS, TIME_HINT, parseUniqueUsersQuery } from './unique-users-query.ts';
import type { UniqueUsersQueryString } from './unique-users-query.ts';

const hints: ParameterHints = {
  from: `from must be ${TIME_HINT}`,
  to: `to must be ${TIME_HINT}, after from`,
  granularity: `granularity must be one of ${GRANULARITIES.join(', ')}`,
  timeZone: 'timeZone must be an IANA time zone name such as Europe/Zurich or UTC',
};

const querystring = {
  type: 'object',
  additionalProperties: false,
  required: ['from', 'to', 'granularity'],
  properties: {
    from: { type: 'string', maxLength: 64, description: `Minutes starting at or after this instant count: ${TIME_HINT}` },
    to: { type: 'string', maxLength: 64, description: 'Minutes starting before this instant count (same formats); must be after `from`' },
    granularity: { type: 'string', enum: GRANULARITIES, description: 'The calendar window of each bucket: minute, hour, day, ISO week (Monday to Monday), month or year' },
    timeZone: { type: 'string', maxLength: 64, pattern: '^[A-Za-z0-9_+-]+(/[A-Za-z0-9_+-]+)*$', description: 'IANA zone for days, weeks, months and years (local midnight to local midnight); minutes and hours stay UTC. Default UTC.' },
  },
} as const;

const counted = {
  start: { type: 'integer', description: 'First minute counted, unix seconds' },
  end: { type: 'integer', description: 'End of the last minute counted (exclusive), unix seconds' },
  uniqueUsers: { type: 'integer', description: 'Distinct users: exact, or a HyperLogLog estimate when approximate' },
  frames: { type: 'integer', description: 'Frames counted in the minutes' },
  late: { type: 'integer', description: 'Late frames of the minutes (their records\' `late`)' },
  minutes: { type: 'integer', description: 'Minutes with data' },
  approximate: { type: 'boolean', description: 'False when uniqueUsers is exact: no data, or a single minute counted exactly' },
  standardError: { type: 'number', description: 'Relative standard error of the estimate, 1.04/√2^p (0.0163 at p = 12); 0 when exact' },
} as const;
const countedKeys = Object.keys(counted);

const response = {
  200: {
    type: 'object',
    required: ['from', 'to', 'granularity', 'timeZone', 'precision', 'buckets', 'total'],
    additionalProperties: false,
    properties: {
      from: { type: 'string', format: 'date-time', description: 'The first minute counted (from, rounded up to a minute), UTC' },
      to: { type: 'string', format: 'date-time', description: 'The end of the last minute counted (exclusive), UTC' },
      granularity: { type: 'string', enum: GRANULARITIES },
      timeZone: { type: 'string' },
      precision: { type: ['integer', 'null'], description: 'The HyperLogLog precision p the sketches were merged at; null without data' },
      buckets: {
        type: 'array',
        maxItems: MAX_BUCKETS,
        description: 'One per calendar window of the range, in time order; the first and the last are cut to the range',
        items: {
          type: 'object',
          required: ['window', ...countedKeys],
          additionalProperties: false,
          properties: { window: { type: 'string', description: 'The window\'s start: ISO 8601 UTC, or local time with its offset for days and coarser in a time zone' }, ...counted },
        },
      },
      total: {
        type: 'object',
        required: countedKeys,
        additionalProperties: false,
        description: 'The whole range: its distinct users are the union over the buckets, not their sum',
        properties: counted,
      },
    },
  },
} as const;

export function registerUniqueUsersRoute(app: FastifyInstance, deps: { db: Queryable }): void {
  app.get<{ Querystring: UniqueUsersQueryString }>('/v1/unique-users', {
    config: { parameterHints: hints },
    schema: {
      summary: 'Distinct users of any range, per calendar window',
      description: [
        'From the per-minute HyperLogLog sketches of `unique-users` kept in PostgreSQL (with rollups of UTC quarter hours, hours, 3-hour blocks and days): every window of',
        '`granularity` in [from, to) — a minute counts when its start lies in the range — with its distinct users, frames',
        'and late frames, and the distinct users of the whole range. A bucket is exact when it holds a single minute counted',
        `exactly (or none); otherwise an estimate with its relative standard error. At most ${MAX_BUCKETS} buckets per answer.`,
      ].join(' '),
      tags: ['users'],
      querystring,
      response,
    },
  }, async (request) => {
    const plan = parseUniqueUsersQuery(request.query);
    const rows = await readUserSketches(deps.db, plan.ranges);
    const result = countUserRange(plan, rows);
    return {
      from: iso(plan.start),
      to: iso(plan.end),
      granularity: plan.granularity,
      timeZone: plan.timeZone,
      precision: result.precision,
      buckets: result.buckets,
      total: result.total,
    };
  });
}

const iso = (seconds: number) => new Date(seconds * 1000).toISOString().replace('.000Z', 'Z');
