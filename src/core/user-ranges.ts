/**
 * Distinct users of any range, by calendar window, from stored sketches: which stored
 * sketches make up each window (`planUserRange`), and the counts once they are read
 * (`countUserRange`). Pure: the store reads the rows, the API route puts the two together.
 *
 * Minutes are the unit: a minute counts in a range when its start lies in [from, to).
 * Each window of the granularity (src/core/calendar-windows.ts: UTC, or days and coarser
 * in a time zone) is a bucket; the first and the last are cut to the range. A bucket is
 * read as few rows as the stored spans allow (minutes, quarter hours, hours, 3-hour blocks
 * and days of UTC): a UTC day is one row, a month 28 to 31; a day in Europe/Zurich (+01:00)
 * 1 hour, 7 blocks and 2 hours, 10 rows; a day in Asia/Kolkata (+05:30) 2 quarters, 2
 * hours, 7 blocks and 2 quarters, 13 rows.
 */
import { calendarOf, windowEnd, windowIso, windowStart } from './calendar-windows.ts';
import type { Granularity } from './calendar-windows.ts';
import { HyperLogLog, hyperLogLogStandardError } from './hyperloglog.ts';
import { mergeSketchBytes, sketchPrecision } from './sketch-bytes.ts';

/**
 * The spans sketches are stored at: minutes, and rollups of whole UTC quarter hours, hours,
 * 3-hour blocks and days. Each divides the next, so a range splits into the fewest rows
 * greedily; quarters serve the zones 30 or 45 minutes off the hour, 3-hour blocks the days
 * of zones off UTC by whole hours.
 */
export type SketchSpan = 60 | 900 | 3600 | 10800 | 86400;
export const SKETCH_SPANS: readonly SketchSpan[] = [60, 900, 3600, 10800, 86400];
/** The rolled-up spans, finest first: each is rebuilt from the one before it. */
export const ROLLUP_SPANS: readonly SketchSpan[] = SKETCH_SPANS.slice(1);

/** Rows of one span whose start lies in [start, end) (unix seconds). */
export interface SpanRange {
  seconds: SketchSpan;
  start: number;
  end: number;
}

export interface RangeBucket {
  /** The window's start: ISO 8601 UTC, or local time with its offset for days and coarser in a zone. */
  window: string;
  /** The minutes counted: [start, end), unix seconds (the window, cut to the range). */
  start: number;
  end: number;
}

export interface UserRangePlan {
  granularity: Granularity;
  /** The IANA zone days and coarser follow, or UTC. */
  timeZone: string;
  /** The whole range in minutes: [start, end), unix seconds. */
  start: number;
  end: number;
  buckets: RangeBucket[];
  /** What to read, per span, adjacent ranges joined. */
  ranges: SpanRange[];
}

/**
 * The buckets of [fromMs, toMs) and the stored rows that make them up; null when there
 * would be more than `maxBuckets`. Throws a RangeError for an unknown time zone.
 */
export function planUserRange(options: { fromMs: number; toMs: number; granularity: Granularity; timeZone?: string | null; maxBuckets: number }): UserRangePlan | null {
  const { fromMs, toMs, granularity, maxBuckets } = options;
  const zoned = granularity !== 'minute' && granularity !== 'hour';
  const calendar = calendarOf(options.timeZone);
  const startOf = (ms: number) => (zoned && calendar !== null ? calendar.start(granularity, ms) : windowStart(granularity, ms));
  const endOf = (ms: number) => (zoned && calendar !== null ? calendar.end(granularity, ms) : windowEnd(granularity, ms));
  const isoOf = (ms: number) => (zoned && calendar !== null ? calendar.iso(ms) : windowIso(ms));
  const start = ceilTo(Math.ceil(fromMs / 1000), 60);
  const end = Math.max(start, ceilTo(Math.ceil(toMs / 1000), 60));
  const buckets: RangeBucket[] = [];
  const ranges = new Ranges();
  for (let window = start < end ? startOf(start * 1000) : Number.POSITIVE_INFINITY; window < end * 1000;) {
    if (buckets.length === maxBuckets) return null;
    const next = endOf(window);
    const bucket = { window: isoOf(window), start: Math.max(start, ceilTo(Math.ceil(window / 1000), 60)), end: Math.min(end, ceilTo(Math.ceil(next / 1000), 60)) };
    buckets.push(bucket);
    ranges.cover(bucket.start, bucket.end);
    window = next;
  }
  return { granularity, timeZone: calendar?.timeZone ?? 'UTC', start, end, buckets, ranges: ranges.list() };
}

/**
 * Per span, the ranges to read. A bucket [s, e) is, from the outside in: minutes up to the
 * first whole quarter hour, quarters up to the first whole hour, and so on up to whole
 * days in the middle, then back down.
 */
class Ranges {
  readonly #bySpan = new Map<SketchSpan, SpanRange[]>(SKETCH_SPANS.map((s) => [s, []]));

  cover(s: number, e: number, level = 0): void {
    const span = SKETCH_SPANS[level];
    const coarser = SKETCH_SPANS[level + 1];
    if (coarser === undefined) {
      this.#add(span, s, e);
      return;
    }
    const a = Math.min(ceilTo(s, coarser), e);
    const b = Math.max(floorTo(e, coarser), a);
    this.#add(span, s, a);
    if (a < b) this.cover(a, b, level + 1);
    this.#add(span, b, e);
  }

  list(): SpanRange[] {
    return SKETCH_SPANS.flatMap((s) => this.#bySpan.get(s)!);
  }

  #add(seconds: SketchSpan, start: number, end: number): void {
    if (start >= end) return;
    const list = this.#bySpan.get(seconds)!;
    const last = list[list.length - 1];
    if (last !== undefined && last.end === start) last.end = end;
    else list.push({ seconds, start, end });
  }
}

/** A stored sketch: a minute (seconds 60) or a rollup of the minutes of a UTC quarter hour, hour, 3-hour block or day. */
export interface StoredSketch {
  seconds: SketchSpan;
  /** Unix seconds. */
  start: number;
  /** Minutes with data it holds (1 for a minute). */
  minutes: number;
  frames: number;
  late: number;
  /** Exact distinct users when known: a single minute counted exactly. */
  exactUsers: number | null;
  sketch: Uint8Array;
}

export interface UsersCount {
  /** The minutes counted: [start, end), unix seconds. */
  start: number;
  end: number;
  /** Distinct users: exact, or a HyperLogLog estimate (approximate). */
  uniqueUsers: number;
  frames: number;
  late: number;
  /** Minutes with data. */
  minutes: number;
  /** False when uniqueUsers is exact: no data, or one minute counted exactly. */
  approximate: boolean;
  /** The estimate's relative standard error (1.04/√2^p); 0 when exact. */
  standardError: number;
}

export interface BucketCount extends UsersCount {
  window: string;
}

export interface UserRangeCount {
  buckets: BucketCount[];
  /** The distinct users of the whole range (the union, not the sum of the buckets). */
  total: UsersCount;
  /** The precision the sketches were merged at (the lowest read); null without data. */
  precision: number | null;
}

/** The counts of a plan's buckets and of the whole range, from the rows its ranges selected. */
export function countUserRange(plan: UserRangePlan, rows: readonly StoredSketch[]): UserRangeCount {
  let precision: number | null = null;
  for (const row of rows) {
    const p = sketchPrecision(row.sketch);
    if (precision === null || p < precision) precision = p;
  }
  const sorted = [...rows].sort((a, b) => a.start - b.start);
  const total = new Tally(precision);
  const bucket = new Tally(precision);
  const buckets: BucketCount[] = [];
  let next = 0;
  for (const b of plan.buckets) {
    for (; next < sorted.length && sorted[next].start < b.end; next++) {
      const row = sorted[next];
      if (row.start < b.start) throw new RangeError(`a stored sketch starting at ${row.start} lies outside the buckets`);
      bucket.add(row);
    }
    buckets.push({ window: b.window, ...bucket.count(b.start, b.end) });
    total.addTally(bucket);
    bucket.reset();
  }
  if (next < sorted.length) throw new RangeError(`a stored sketch starting at ${sorted[next].start} lies after the range`);
  return { buckets, total: total.count(plan.start, plan.end), precision };
}

/**
 * Sums and the merged sketch of the rows of a bucket or of the range. A row is kept aside
 * until a second one comes or its count is needed (a single exact minute's never is), so a
 * range by minute decodes each minute once, into the total.
 */
class Tally {
  readonly #sketch: HyperLogLog | null;
  /** Whether #sketch holds any registers. */
  #merged = false;
  /** A row not merged into #sketch yet. */
  #pending: StoredSketch | null = null;
  /** The row, while there is exactly one. */
  #only: StoredSketch | null = null;
  #rows = 0;
  #minutes = 0;
  #frames = 0;
  #late = 0;

  constructor(precision: number | null) {
    this.#sketch = precision === null ? null : new HyperLogLog(precision);
  }

  reset(): void {
    if (this.#merged) this.#sketch!.registers.fill(0);
    this.#merged = false;
    this.#pending = this.#only = null;
    this.#rows = this.#minutes = this.#frames = this.#late = 0;
  }

  add(row: StoredSketch): void {
    this.#sums(1, row.minutes, row.frames, row.late);
    this.#only = this.#rows === 1 ? row : null;
    this.#keep(row);
  }

  /** Adds everything another tally holds. */
  addTally(other: Tally): void {
    if (other.#rows === 0) return;
    this.#sums(other.#rows, other.#minutes, other.#frames, other.#late);
    this.#only = this.#rows === 1 ? other.#only : null;
    if (other.#merged) {
      this.#flush();
      const mine = this.#sketch!.registers;
      const theirs = other.#sketch!.registers;
      for (let i = 0; i < mine.length; i++) if (theirs[i] > mine[i]) mine[i] = theirs[i];
      this.#merged = true;
    }
    if (other.#pending !== null) this.#keep(other.#pending);
  }

  count(start: number, end: number): UsersCount {
    const sums = { start, end, frames: this.#frames, late: this.#late, minutes: this.#minutes };
    if (this.#rows === 0) return { ...sums, uniqueUsers: 0, approximate: false, standardError: 0 };
    const only = this.#only;
    if (only !== null && only.minutes === 1 && only.exactUsers !== null) return { ...sums, uniqueUsers: only.exactUsers, approximate: false, standardError: 0 };
    this.#flush();
    const sketch = this.#sketch!;
    return { ...sums, uniqueUsers: sketch.count(), approximate: true, standardError: hyperLogLogStandardError(sketch.precision) };
  }

  #sums(rows: number, minutes: number, frames: number, late: number): void {
    this.#rows += rows;
    this.#minutes += minutes;
    this.#frames += frames;
    this.#late += late;
  }

  /** Keeps a row aside when nothing else is held, else merges it. */
  #keep(row: StoredSketch): void {
    if (!this.#merged && this.#pending === null) {
      this.#pending = row;
      return;
    }
    this.#flush();
    mergeSketchBytes(this.#sketch!, row.sketch);
    this.#merged = true;
  }

  #flush(): void {
    const pending = this.#pending;
    if (pending === null) return;
    this.#pending = null;
    mergeSketchBytes(this.#sketch!, pending.sketch);
    this.#merged = true;
  }
}

function ceilTo(value: number, step: number): number {
  return Math.ceil(value / step) * step;
}

function floorTo(value: number, step: number): number {
  return Math.floor(value / step) * step;
}
