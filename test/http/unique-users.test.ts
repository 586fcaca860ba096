/**
 * GET /v1/unique-users over three days of generated minutes stored on PostgreSQL through
 * the sketch store (users drawn with overlap across minutes; exact, --approx and
 * budget-switched minutes; gaps). Every answer is checked against an independent
 * recomputation from the raw user ids: frames, late and minutes exactly, exact buckets
 * exactly, estimates within their standard error. Cases run in-process (inject) and over
 * a real socket; error bodies are compared whole; 200 bodies are validated against the
 * served OpenAPI document with ajv.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { Ajv } from 'ajv';
import type { ValidateFunction } from 'ajv';
import type { FastifyInstance } from 'fastify';
import { BoundedDistinct, ExactDistinct, HyperLogLog } from '../../src/core/hyperloglog.ts';
import type { DistinctCounter } from '../../src/core/hyperloglog.ts';
import { seededRandom } from '../../src/core/random.ts';
import { minuteSketchRow } from '../../src/core/user-sketches.ts';
import { createPostgresDatabase } from '../../src/db/postgres.ts';
import type { Database } from '../../src/db/types.ts';
import { saveUserMinutes } from '../../src/db/user-sketch-store.ts';
import { buildApp } from '../../src/http/app.ts';
import { isolatedDatabase } from '../stocks/fixtures.ts';
import type { IsolatedDatabase } from '../stocks/fixtures.ts';

const START = Date.parse('2024-03-29T20:00:00Z') / 1000; // three days, across Europe's change to summer time on 31 March
const MINUTES = 3 * 1440;
const SE_12 = 1.04 / 64;

interface Minute {
  start: number;
  users: Int32Array;
  frames: number;
  late: number;
  exact: boolean;
}

/**
 * Users of a minute: 100–400 draws from a window of ids that slides with time (so
 * neighbouring minutes share many users, distant ones few), a quarter of them from 800
 * regulars. 15% of minutes have no data; 70% are exact, the others --approx (p = 14) or
 * over their exact budget.
 */
function generate(): { minutes: Minute[]; counters: DistinctCounter[] } {
  const random = seededRandom('unique-users-api');
  const minutes: Minute[] = [];
  const counters: DistinctCounter[] = [];
  for (let i = 0; i < MINUTES; i++) {
    if (random.next() < 0.15) continue;
    const draws = random.int(100, 400);
    const users = new Int32Array(draws);
    for (let k = 0; k < draws; k++) users[k] = random.next() < 0.25 ? random.int(0, 799) : 1000 + i * 3 + random.int(0, 4000);
    const kind = random.next();
    const counter: DistinctCounter = kind < 0.7 ? new ExactDistinct() : kind < 0.85 ? new HyperLogLog(14) : new BoundedDistinct(1024);
    for (const u of users) counter.add(`user-${u}`);
    minutes.push({ start: START + i * 60, users, frames: draws + random.int(0, 50), late: random.int(0, 3), exact: !counter.approximate });
    counters.push(counter);
  }
  return { minutes, counters };
}

const { minutes: DATA, counters: COUNTERS } = generate();
const BY_START = new Map(DATA.map((m) => [m.start, m]));

/** Independent truth for minutes [start, end): plain sums and a union of the raw ids. */
const seen = new Uint32Array(1_000 + MINUTES * 3 + 5_000);
let stamp = 0;
function truth(start: number, end: number): { users: number; frames: number; late: number; minutes: number; single: Minute | null } {
  stamp++;
  let users = 0;
  let frames = 0;
  let late = 0;
  let count = 0;
  let last: Minute | null = null;
  for (let t = Math.max(start, START); t < end && t < START + MINUTES * 60; t += 60) {
    const m = BY_START.get(t);
    if (m === undefined) continue;
    count++;
    last = m;
    frames += m.frames;
    late += m.late;
    for (const u of m.users) {
      if (seen[u] !== stamp) {
        seen[u] = stamp;
        users++;
      }
    }
  }
  return { users, frames, late, minutes: count, single: count === 1 ? last : null };
}

interface Counted {
  start: number;
  end: number;
  uniqueUsers: number;
  frames: number;
  late: number;
  minutes: number;
  approximate: boolean;
  standardError: number;
}
interface Body {
  from: string;
  to: string;
  granularity: string;
  timeZone: string;
  precision: number | null;
  buckets: Array<Counted & { window: string }>;
  total: Counted;
  error?: { code: string; message: string; parameter?: string };
}
interface Answer {
  status: number;
  contentType: string;
  body: Body;
}
type Get = (url: string) => Promise<Answer>;

const q = (params: Record<string, string | number>) => `/v1/unique-users?${new URLSearchParams(Object.entries(params).map(([k, v]): [string, string] => [k, String(v)]))}`;
const iso = (unix: number) => new Date(unix * 1000).toISOString().replace('.000Z', 'Z');

/**
 * Checks one counted span against the truth: sums exactly; exact answers exactly;
 * estimates return their standardised error (estimate − truth) / (SE · truth).
 */
function check(counted: Counted, label: string): number | null {
  const t = truth(counted.start, counted.end);
  assert.deepEqual([counted.frames, counted.late, counted.minutes], [t.frames, t.late, t.minutes], `${label}: frames, late and minutes`);
  const exact = t.minutes === 0 || (t.single !== null && t.single.exact);
  assert.equal(counted.approximate, !exact, `${label}: approximate only when not a single exact minute (${t.minutes} minutes)`);
  if (exact) {
    assert.equal(counted.uniqueUsers, t.users, `${label}: exact`);
    assert.equal(counted.standardError, 0);
    return null;
  }
  assert.equal(counted.standardError, SE_12, `${label}: the standard error of precision 12`);
  return (counted.uniqueUsers - t.users) / (SE_12 * t.users);
}

describe('GET /v1/unique-users', () => {
  let isolated: IsolatedDatabase;
  let db: Database;
  let app: FastifyInstance;
  let base = '';
  let validate200: ValidateFunction;

  before(async () => {
    isolated = await isolatedDatabase('unique_users_api');
    db = await isolated.open();
    const rows = DATA.map((m, i) => minuteSketchRow({ start: m.start, frames: m.frames, late: m.late }, COUNTERS[i]));
    for (let i = 0; i < rows.length; i += 500) await saveUserMinutes(db, rows.slice(i, i + 500));
    app = await buildApp({ db });
    base = await app.listen({ host: '127.0.0.1', port: 0 });
    const doc = (await app.inject({ method: 'GET', url: '/docs/json' })).json();
    const schema = doc.paths['/v1/unique-users'].get.responses['200'].content['application/json'].schema;
    validate200 = new Ajv({ strict: false }).compile(schema);
  });
  after(async () => {
    await app?.close();
    await db?.close();
    await isolated?.drop();
  });

  const inject: Get = async (url) => {
    const response = await app.inject({ method: 'GET', url });
    return { status: response.statusCode, contentType: String(response.headers['content-type']), body: response.json<Body>() };
  };
  const socket: Get = async (url) => {
    const response = await fetch(`${base}${url}`);
    return { status: response.status, contentType: response.headers.get('content-type') ?? '', body: (await response.json()) as Body };
  };

  /** A 200 that matches the OpenAPI document, whose buckets tile the range. */
  async function ok(get: Get, url: string): Promise<Body> {
    const answer = await get(url);
    assert.equal(answer.status, 200, JSON.stringify(answer.body).slice(0, 500));
    assert.match(answer.contentType, /^application\/json/);
    assert.ok(validate200(answer.body), `${url}: the OpenAPI 200 schema: ${JSON.stringify(validate200.errors)}`);
    const body = answer.body;
    let t = Date.parse(body.from) / 1000;
    assert.equal(body.total.start, t);
    for (const b of body.buckets) {
      assert.equal(b.start, t, `${url}: bucket ${b.window} starts where the one before ended`);
      t = b.end;
    }
    if (body.buckets.length > 0) assert.equal(t, body.total.end);
    assert.equal(body.to, iso(body.total.end));
    return body;
  }

  for (const [transport, getter] of [['inject()', () => inject], ['a real socket', () => socket]] as const) {
    describe(`over ${transport}`, () => {
      it('two hours by minute: 120 buckets, single exact minutes exact, the others within their error', async () => {
        const from = START + 600 * 60;
        const body = await ok(getter(), q({ from: iso(from), to: iso(from + 7200), granularity: 'minute' }));
        assert.deepEqual([body.granularity, body.timeZone, body.precision, body.buckets.length], ['minute', 'UTC', 12, 120]);
        assert.deepEqual(body.buckets.slice(0, 2).map((b) => [b.window, b.start, b.end]), [[iso(from), from, from + 60], [iso(from + 60), from + 60, from + 120]]);
        for (const b of body.buckets) {
          const z = check(b, b.window);
          if (z !== null) assert.ok(Math.abs(z) <= 4, `${b.window}: ${b.uniqueUsers} is ${z.toFixed(2)} standard errors off`);
        }
        assert.ok(body.buckets.some((b) => !b.approximate && b.minutes === 1) && body.buckets.some((b) => b.minutes === 0) && body.buckets.some((b) => b.approximate));
        const z = check(body.total, 'total')!;
        assert.ok(Math.abs(z) <= 3, `total ${z.toFixed(2)} standard errors off`);
      });

      it('a day by hour in epoch milliseconds; a range cut inside windows counts only its own minutes', async () => {
        const from = Date.parse('2024-03-30T10:20:30Z');
        const body = await ok(getter(), q({ from, to: from + 26 * 3_600_000, granularity: 'hour' }));
        assert.equal(body.from, '2024-03-30T10:21:00Z', 'a minute counts when it starts at or after from');
        assert.equal(body.buckets.length, 27);
        assert.deepEqual([body.buckets[0].window, body.buckets[0].start], ['2024-03-30T10:00:00Z', Date.parse('2024-03-30T10:21:00Z') / 1000]);
        assert.deepEqual([body.buckets[26].window, body.buckets[26].end], ['2024-03-31T12:00:00Z', Date.parse('2024-03-31T12:21:00Z') / 1000]);
        for (const b of [...body.buckets, { ...body.total, window: 'total' }]) check(b, b.window);
      });

      it('days in Europe/Zurich: local midnights, 23 hours on the day the clocks go forward', async () => {
        const body = await ok(getter(), q({ from: '2024-03-30T00:00:00+01:00', to: '2024-04-01T00:00:00+02:00', granularity: 'day', timeZone: 'Europe/Zurich' }));
        assert.equal(body.timeZone, 'Europe/Zurich');
        assert.deepEqual(body.buckets.map((b) => [b.window, (b.end - b.start) / 3600]), [['2024-03-30T00:00:00+01:00', 24], ['2024-03-31T00:00:00+01:00', 23]]);
        for (const b of body.buckets) {
          const z = check(b, b.window)!;
          assert.ok(Math.abs(z) <= 4, `${b.window}: ${z.toFixed(2)} standard errors off`);
        }
      });

      it('a range without data: zero users, exact, precision null; a week and a month window', async () => {
        const body = await ok(getter(), q({ from: '2030-01-01T00:00:00Z', to: '2030-02-15T00:00:00Z', granularity: 'month' }));
        assert.deepEqual(body, {
          from: '2030-01-01T00:00:00Z', to: '2030-02-15T00:00:00Z', granularity: 'month', timeZone: 'UTC', precision: null,
          buckets: [
            { window: '2030-01-01T00:00:00Z', start: 1893456000, end: 1896134400, uniqueUsers: 0, frames: 0, late: 0, minutes: 0, approximate: false, standardError: 0 },
            { window: '2030-02-01T00:00:00Z', start: 1896134400, end: 1897344000, uniqueUsers: 0, frames: 0, late: 0, minutes: 0, approximate: false, standardError: 0 },
          ],
          total: { start: 1893456000, end: 1897344000, uniqueUsers: 0, frames: 0, late: 0, minutes: 0, approximate: false, standardError: 0 },
        });
        const weeks = await ok(getter(), q({ from: iso(START), to: iso(START + MINUTES * 60), granularity: 'week' }));
        assert.deepEqual(weeks.buckets.map((b) => b.window), ['2024-03-25T00:00:00Z', '2024-04-01T00:00:00Z']);
        for (const b of weeks.buckets) check(b, b.window);
      });

      it('one exact minute: its exact count; the same minute from a range cut around it', async () => {
        const m = DATA.find((d) => d.exact)!;
        const body = await ok(getter(), q({ from: (m.start - 30) * 1000, to: (m.start + 59) * 1000, granularity: 'year' }));
        assert.equal(body.buckets.length, 1);
        assert.deepEqual(body.total, { start: m.start, end: m.start + 60, uniqueUsers: new Set(m.users).size, frames: m.frames, late: m.late, minutes: 1, approximate: false, standardError: 0 });
      });

      const errors: Array<{ name: string; url: string; body: Body['error'] }> = [
        { name: 'from missing', url: '/v1/unique-users?to=2024-05-02&granularity=hour', body: { code: 'BAD_PARAMETER', message: 'from must be an ISO 8601 time such as 2024-05-01T12:00:00Z (no offset = UTC) or epoch milliseconds', parameter: 'from' } },
        { name: 'granularity missing', url: '/v1/unique-users?from=2024-05-01&to=2024-05-02', body: { code: 'BAD_PARAMETER', message: 'granularity must be one of minute, hour, day, week, month, year', parameter: 'granularity' } },
        { name: 'from not a time', url: q({ from: 'yesterday', to: '2024-05-02', granularity: 'hour' }), body: { code: 'BAD_PARAMETER', message: 'from must be an ISO 8601 time such as 2024-05-01T12:00:00Z (no offset = UTC) or epoch milliseconds, got "yesterday"', parameter: 'from' } },
        { name: 'epoch milliseconds in exponent form', url: q({ from: '1e12', to: '2024-05-02', granularity: 'hour' }), body: { code: 'BAD_PARAMETER', message: 'from must be an ISO 8601 time such as 2024-05-01T12:00:00Z (no offset = UTC) or epoch milliseconds, got "1e12"', parameter: 'from' } },
        { name: 'an impossible date', url: q({ from: '2024-05-01', to: '2024-02-30', granularity: 'hour' }), body: { code: 'BAD_PARAMETER', message: 'to must be an ISO 8601 time such as 2024-05-01T12:00:00Z (no offset = UTC) or epoch milliseconds, got "2024-02-30"', parameter: 'to' } },
        { name: 'to before from', url: q({ from: '2024-05-02', to: '2024-05-01', granularity: 'hour' }), body: { code: 'BAD_TIME_RANGE', message: 'to (2024-05-01T00:00:00.000Z) must be after from (2024-05-02T00:00:00.000Z)', parameter: 'to' } },
        { name: 'to equal to from', url: q({ from: '2024-05-01T00:00:00Z', to: 1714521600000, granularity: 'hour' }), body: { code: 'BAD_TIME_RANGE', message: 'to (2024-05-01T00:00:00.000Z) must be after from (2024-05-01T00:00:00.000Z)', parameter: 'to' } },
        { name: 'an unknown granularity', url: q({ from: '2024-05-01', to: '2024-05-02', granularity: 'fortnight' }), body: { code: 'BAD_PARAMETER', message: 'granularity must be one of minute, hour, day, week, month, year', parameter: 'granularity' } },
        { name: 'an unknown time zone', url: q({ from: '2024-05-01', to: '2024-05-02', granularity: 'day', timeZone: 'Mars/Olympus_Mons' }), body: { code: 'BAD_PARAMETER', message: 'timeZone must be an IANA time zone name such as Europe/Zurich or UTC, got "Mars/Olympus_Mons"', parameter: 'timeZone' } },
        { name: 'SQL in the time zone', url: q({ from: '2024-05-01', to: '2024-05-02', granularity: 'day', timeZone: "UTC'; DROP TABLE user_minute_sketches;--" }), body: { code: 'BAD_PARAMETER', message: 'timeZone must be an IANA time zone name such as Europe/Zurich or UTC', parameter: 'timeZone' } },
        { name: 'an unknown parameter', url: q({ from: '2024-05-01', to: '2024-05-02', granularity: 'day', tz: 'UTC' }), body: { code: 'BAD_PARAMETER', message: 'unknown parameter "tz" (expected from, to, granularity, timeZone)', parameter: 'tz' } },
        { name: 'from given twice', url: '/v1/unique-users?from=2024-05-01&from=2024-05-02&to=2024-05-03&granularity=day', body: { code: 'BAD_PARAMETER', message: 'from must be an ISO 8601 time such as 2024-05-01T12:00:00Z (no offset = UTC) or epoch milliseconds', parameter: 'from' } },
        { name: 'more buckets than one answer holds', url: q({ from: '2024-05-01T00:00:00Z', to: '2024-05-02T00:01:00Z', granularity: 'minute' }), body: { code: 'TOO_MANY_BUCKETS', message: 'from 2024-05-01T00:00:00.000Z to 2024-05-02T00:01:00.000Z holds more than 1440 minute buckets; ask for a shorter range or a coarser granularity' } },
        { name: 'sixty days and a minute by hour', url: q({ from: '2024-01-01T00:00:00Z', to: '2024-03-01T00:01:00Z', granularity: 'hour' }), body: { code: 'TOO_MANY_BUCKETS', message: 'from 2024-01-01T00:00:00.000Z to 2024-03-01T00:01:00.000Z holds more than 1440 hour buckets; ask for a shorter range or a coarser granularity' } },
      ];
      for (const c of errors) {
        it(`400 for ${c.name}, with the whole body`, async () => {
          const answer = await getter()(c.url);
          assert.equal(answer.status, 400);
          assert.match(answer.contentType, /^application\/json/);
          assert.deepEqual(answer.body, { error: c.body });
        });
      }

      it('exactly 1440 buckets is an answer', async () => {
        const body = await ok(getter(), q({ from: iso(START), to: iso(START + 86_400), granularity: 'minute' }));
        assert.equal(body.buckets.length, 1440);
      });
    });
  }

  it('for 100 random ranges over the minutes, each total is within 3 standard errors of the distinct users recomputed from the raw ids', async () => {
    const random = seededRandom('unique-users-ranges');
    const zones = [undefined, 'Europe/Zurich', 'Asia/Kolkata', 'America/New_York', 'Asia/Kathmandu'];
    const lengths = { minute: 1440 * 60, hour: 3 * 86400, day: 4 * 86400, week: 4 * 86400, month: 4 * 86400, year: 4 * 86400 };
    const bucketZ: number[] = [];
    const totalZ: number[] = [];
    let exactBuckets = 0;
    for (let i = 0; i < 100; i++) {
      const granularity = random.pick(['minute', 'hour', 'day', 'week', 'month', 'year'] as const);
      const from = (START - 3600 + random.int(0, MINUTES * 60)) * 1000 + random.int(0, 999);
      const to = from + random.int(60, lengths[granularity]) * 1000;
      const timeZone = random.pick(zones);
      const body = await ok(random.next() < 0.5 ? inject : socket, q({ from, to, granularity, ...(timeZone ? { timeZone } : {}) }));
      for (const b of body.buckets) {
        const z = check(b, `range ${i} ${granularity} ${b.window}`);
        if (z === null) exactBuckets++;
        else bucketZ.push(z);
      }
      const z = check(body.total, `range ${i} total`);
      if (z !== null) {
        totalZ.push(z);
        assert.ok(Math.abs(z) <= 3, `range ${i} (${granularity}, ${iso(body.total.start)}..${iso(body.total.end)}): ${body.total.uniqueUsers} users is ${z.toFixed(2)} standard errors from ${truth(body.total.start, body.total.end).users}`);
      }
    }
    // Thousands of bucket estimates: their errors behave like the standard error says.
    const rms = (zs: number[]) => Math.sqrt(zs.reduce((s, z) => s + z * z, 0) / zs.length);
    const beyond3 = bucketZ.filter((z) => Math.abs(z) > 3).length;
    console.log(`# ${totalZ.length} approximate totals (rms ${rms(totalZ).toFixed(2)} SE), ${bucketZ.length} approximate buckets (rms ${rms(bucketZ).toFixed(2)} SE, ${beyond3} beyond 3 SE, worst ${Math.max(...bucketZ.map(Math.abs)).toFixed(2)}), ${exactBuckets} exact`);
    assert.ok(totalZ.length >= 80 && bucketZ.length >= 1000 && exactBuckets >= 100, 'enough of each kind');
    assert.ok(rms(bucketZ) <= 1.2, `bucket errors: rms ${rms(bucketZ).toFixed(2)} standard errors`);
    assert.ok(beyond3 <= 0.01 * bucketZ.length, `${beyond3} of ${bucketZ.length} bucket estimates beyond 3 standard errors`);
    assert.ok(bucketZ.every((z) => Math.abs(z) <= 5), 'no bucket estimate beyond 5 standard errors');
  });

  it('the OpenAPI document describes the route, its parameters and the new error code', async () => {
    const doc = (await app.inject({ method: 'GET', url: '/docs/json' })).json();
    const operation = doc.paths['/v1/unique-users'].get;
    assert.deepEqual(operation.parameters.map((p: { name: string; required?: boolean }) => [p.name, p.required === true]).sort(), [['from', true], ['granularity', true], ['timeZone', false], ['to', true]]);
    assert.ok(operation.responses['200'] && operation.responses['4XX'] && operation.responses['5XX']);
    assert.match(doc.info.description, /TOO_MANY_BUCKETS/);
  });
});

describe('GET /v1/unique-users before migrations', () => {
  let isolated: IsolatedDatabase;
  before(async () => {
    isolated = await isolatedDatabase('unique_users_unmigrated');
  });
  after(async () => {
    await isolated?.drop();
  });

  it('503 NOT_READY, nothing internal in the body', async () => {
    const db = createPostgresDatabase(isolated.url);
    const app = await buildApp({ db });
    try {
      const answer = await app.inject({ method: 'GET', url: q({ from: '2024-05-01', to: '2024-05-02', granularity: 'hour' }) });
      assert.equal(answer.statusCode, 503);
      assert.deepEqual(answer.json(), { error: { code: 'NOT_READY', message: 'the database is not migrated yet (run tickflow migrate); retry later' } });
    } finally {
      await app.close();
      await db.close();
    }
  });
});
