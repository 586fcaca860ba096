/**
 * Calendar-aligned time frames in UTC: minute, hour, day, ISO week (Monday to Monday),
 * calendar month and calendar year. Times are epoch milliseconds; a window is
 * [start, end). Pure: no clock, no I/O.
 */

export const GRANULARITIES = ['minute', 'hour', 'day', 'week', 'month', 'year'] as const;
export type Granularity = (typeof GRANULARITIES)[number];

const MINUTE = 60_000;
const HOUR = 3_600_000;
const DAY = 86_400_000;
const WEEK = 7 * DAY;

/** Finest first: the order records of windows ending at the same instant are emitted in. */
export function granularityRank(granularity: Granularity): number {
  return GRANULARITIES.indexOf(granularity);
}

/** `"minute,day"` → the granularities, finest first, each once; a one-line error names an unknown one. */
export function parseGranularities(text: string): Granularity[] {
  const named = text.split(',').map((part) => part.trim()).filter((part) => part !== '');
  if (named.length === 0) throw new RangeError(`expects one or more of ${GRANULARITIES.join(',')}, got "${text}"`);
  for (const name of named) {
    if (!(GRANULARITIES as readonly string[]).includes(name)) throw new RangeError(`unknown granularity "${name}": expects any of ${GRANULARITIES.join(',')}`);
  }
  return GRANULARITIES.filter((g) => named.includes(g));
}

/** The start of the window of `granularity` holding time `ms`. */
export function windowStart(granularity: Granularity, ms: number): number {
  switch (granularity) {
    case 'minute':
      return Math.floor(ms / MINUTE) * MINUTE;
    case 'hour':
      return Math.floor(ms / HOUR) * HOUR;
    case 'day':
      return Math.floor(ms / DAY) * DAY;
    case 'week': {
      // 1970-01-01 was a Thursday: the Monday before it is day −3.
      const day = Math.floor(ms / DAY);
      return (day - (((day + 3) % 7) + 7) % 7) * DAY;
    }
    case 'month': {
      const date = new Date(ms);
      return utc(date.getUTCFullYear(), date.getUTCMonth());
    }
    case 'year':
      return utc(new Date(ms).getUTCFullYear(), 0);
  }
}

/** The (exclusive) end of the window of `granularity` starting at `startMs`. */
export function windowEnd(granularity: Granularity, startMs: number): number {
  switch (granularity) {
    case 'minute':
      return startMs + MINUTE;
    case 'hour':
      return startMs + HOUR;
    case 'day':
      return startMs + DAY;
    case 'week':
      return startMs + WEEK;
    case 'month': {
      const date = new Date(startMs);
      return utc(date.getUTCFullYear(), date.getUTCMonth() + 1);
    }
    case 'year':
      return utc(new Date(startMs).getUTCFullYear() + 1, 0);
  }
}

/** Midnight UTC of the first of a month (months past 11 roll into the next year); years 0–99 too, unlike Date.UTC. */
function utc(year: number, month: number): number {
  const date = new Date(0);
  date.setUTCFullYear(year, month, 1);
  return date.getTime();
}

/** ISO 8601 UTC without milliseconds: `2016-07-11T13:39:00Z`. */
export function windowIso(startMs: number): string {
  return new Date(startMs).toISOString().replace('.000Z', 'Z');
}
