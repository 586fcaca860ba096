/**
 * What `GET /v1/unique-users` was asked, from its schema-validated query string: the
 * range [from, to), the granularity of its buckets and the time zone of days and coarser,
 * checked and turned into a plan of the stored sketches to read (src/core/user-ranges.ts).
 */
import type { Granularity } from '../core/calendar-windows.ts';
import { parseInstant } from '../core/stock-ticks.ts';
import { planUserRange } from '../core/user-ranges.ts';
import type { UserRangePlan } from '../core/user-ranges.ts';
import { ApiError } from './errors.ts';

export interface UniqueUsersQueryString {
  from: string;
  to: string;
  granularity: Granularity;
  timeZone?: string;
}

/** The most buckets one answer holds: a day of minutes, 60 days of hours, ~4 years of days. */
export const MAX_BUCKETS = 1440;

export const TIME_HINT = 'an ISO 8601 time such as 2024-05-01T12:00:00Z (no offset = UTC) or epoch milliseconds';

export function parseUniqueUsersQuery(query: UniqueUsersQueryString): UserRangePlan {
  const from = instant(query.from, 'from');
  const to = instant(query.to, 'to');
  if (!(to > from)) {
    throw new ApiError('BAD_TIME_RANGE', `to (${new Date(to).toISOString()}) must be after from (${new Date(from).toISOString()})`, 'to');
  }
  let plan: UserRangePlan | null;
  try {
    plan = planUserRange({ fromMs: from, toMs: to, granularity: query.granularity, timeZone: query.timeZone ?? null, maxBuckets: MAX_BUCKETS });
  } catch (error) {
    if (error instanceof RangeError && query.timeZone !== undefined) {
      throw new ApiError('BAD_PARAMETER', `timeZone must be an IANA time zone name such as Europe/Zurich or UTC, got "${query.timeZone}"`, 'timeZone');
    }
    throw error;
  }
  if (plan === null) {
    throw new ApiError('TOO_MANY_BUCKETS', `from ${new Date(from).toISOString()} to ${new Date(to).toISOString()} holds more than ${MAX_BUCKETS} ${query.granularity} buckets; ask for a shorter range or a coarser granularity`);
  }
  return plan;
}

function instant(value: string, parameter: string): number {
  const ms = parseInstant(value);
  if (ms === null) throw new ApiError('BAD_PARAMETER', `${parameter} must be ${TIME_HINT}, got "${value.slice(0, 40)}"`, parameter);
  return ms;
}
