/**
 * Calendar-aligned time frames in UTC: minute, hour, day, ISO week (Monday to Monday),
 * calendar month and calendar year. Times are epoch milliseconds; a window is
 * [start, end). Pure: no clock, no I/O. `ZonedCalendar` gives days and coarser in an IANA
 * time zone instead (minutes and hours stay UTC).
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

/**
 * The windows of one time zone: days, weeks, months and years from local midnight (so a day
 * is 23 or 25 hours when clocks change), minutes and hours as in UTC. Offsets come from Intl
 * and are looked up only when a window starts or ends (callers remember the current window).
 * Where a change skips midnight, the day starts at the first local time after it.
 */
export class ZonedCalendar {
  readonly timeZone: string;
  readonly #format: Intl.DateTimeFormat;

  /** Throws a RangeError naming the zone when Intl does not know it. */
  constructor(timeZone: string) {
    try {
      this.#format = new Intl.DateTimeFormat('en-US', { timeZone, hourCycle: 'h23', era: 'short', year: 'numeric', month: 'numeric', day: 'numeric', hour: 'numeric', minute: 'numeric', second: 'numeric' });
    } catch {
      throw new RangeError(`unknown time zone "${timeZone}" (an IANA name such as Europe/Zurich)`);
    }
    this.timeZone = this.#format.resolvedOptions().timeZone;
  }

  start(granularity: Granularity, ms: number): number {
    if (granularity === 'minute' || granularity === 'hour') return windowStart(granularity, ms);
    const { year, month, day } = this.#local(ms);
    switch (granularity) {
      case 'day':
        return this.#midnight(year, month, day);
      case 'week': {
        const sinceMonday = (new Date(utc(year, month) + (day - 1) * DAY).getUTCDay() + 6) % 7;
        return this.#midnight(year, month, day - sinceMonday);
      }
      case 'month':
        return this.#midnight(year, month, 1);
      case 'year':
        return this.#midnight(year, 0, 1);
    }
  }

  end(granularity: Granularity, startMs: number): number {
    if (granularity === 'minute' || granularity === 'hour') return windowEnd(granularity, startMs);
    const { year, month, day } = this.#local(startMs);
    switch (granularity) {
      case 'day':
        return this.#midnight(year, month, day + 1);
      case 'week':
        return this.#midnight(year, month, day + 7);
      case 'month':
        return this.#midnight(year, month + 1, 1);
      case 'year':
        return this.#midnight(year + 1, 0, 1);
    }
  }

  /** The local start as ISO 8601 with the offset in force then: `2016-10-30T00:00:00+02:00`. */
  iso(ms: number): string {
    const local = this.#local(ms);
    const offsetMinutes = Math.round(this.#offset(ms) / MINUTE);
    const abs = Math.abs(offsetMinutes);
    const pad = (n: number, width = 2) => String(n).padStart(width, '0');
    const date = new Date(0);
    date.setUTCFullYear(local.year, local.month, local.day);
    const ymd = date.toISOString().slice(0, date.toISOString().indexOf('T'));
    return `${ymd}T${pad(local.hour)}:${pad(local.minute)}:${pad(local.second)}${offsetMinutes < 0 ? '-' : '+'}${pad(Math.floor(abs / 60))}:${pad(abs % 60)}`;
  }

  #local(ms: number): { year: number; month: number; day: number; hour: number; minute: number; second: number } {
    const fields: Record<string, string> = {};
    for (const part of this.#format.formatToParts(ms)) fields[part.type] = part.value;
    const year = Number(fields.year);
    return {
      year: fields.era === 'BC' || fields.era === 'B' ? 1 - year : year,
      month: Number(fields.month) - 1,
      day: Number(fields.day),
      hour: Number(fields.hour),
      minute: Number(fields.minute),
      second: Number(fields.second),
    };
  }

  /** Local time − UTC at `ms`, in ms (whole seconds). */
  #offset(ms: number): number {
    const l = this.#local(ms);
    const date = new Date(0);
    date.setUTCFullYear(l.year, l.month, l.day);
    date.setUTCHours(l.hour, l.minute, l.second);
    return date.getTime() - Math.floor(ms / 1000) * 1000;
  }

  /** The instant local midnight begins the day year-month-day (day and month may overflow), or the first local time of that day. */
  #midnight(year: number, month: number, day: number): number {
    const wall = utc(year, month) + (day - 1) * DAY;
    let t = wall - this.#offset(wall);
    t = wall - this.#offset(t);
    // Midnight skipped by a change of the clocks: t lies before the day; its first instant is the change.
    const target = new Date(wall);
    for (let i = 0; i < 4 && this.#local(t).day !== target.getUTCDate(); i++) t += HOUR;
    return t;
  }
}

/** Window arithmetic for UTC (`null`) or a zone. */
export function calendarOf(timeZone: string | null | undefined): ZonedCalendar | null {
  return timeZone === undefined || timeZone === null || timeZone === 'UTC' ? null : new ZonedCalendar(timeZone);
}
