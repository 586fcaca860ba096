/**
 * What is kept of each minute of `unique-users` so that any range can be answered later: its
 * users as a HyperLogLog sketch of a fixed, modest precision (mergeable with every other
 * minute's), the exact count when the minute was exact, and its frames and late count.
 * Pure: `unique-users --database-url` calls `minuteSketchRow` as it emits each minute; the
 * rows of a commit go to the store (src/db/user-sketch-store.ts) in one PostgreSQL
 * transaction before that commit (src/pipelines/unique-users.ts).
 */
import { BoundedDistinct, ExactDistinct, HyperLogLog } from './hyperloglog.ts';
import type { DistinctCounter } from './hyperloglog.ts';
import { encodeSketch } from './sketch-bytes.ts';

/**
 * The precision minutes are kept at: 2^12 registers, a relative standard error of 1.63%
 * on any range, at most 3 KiB a minute (1.6 GB for a year of busy minutes; p = 14 would
 * be 0.81% at four times that). docs/users.md, "Ranges on demand", has the trade-off.
 */
export const MINUTE_SKETCH_PRECISION = 12;

/** One minute as stored (table user_minute_sketches). */
export interface MinuteSketchRow {
  /** Minute start, unix seconds (a multiple of 60). */
  start: number;
  /** Frames counted in the minute. */
  frames: number;
  /** Late frames of the minute (the minute record's `late`). */
  late: number;
  /** The minute's distinct users when it was counted exactly; null when its counter was a sketch. */
  exactUsers: number | null;
  /** Its users as a sketch (src/core/sketch-bytes.ts), of `MINUTE_SKETCH_PRECISION` or less. */
  sketch: Uint8Array;
}

/** The minute record's fields the row keeps (a `WindowCount` of granularity minute has them). */
export interface EmittedMinute {
  granularity?: string;
  /** Unix seconds. */
  start: number;
  frames: number;
  late: number;
}

/**
 * The row to store for an emitted minute, from the minute's record and its distinct
 * counter: an exact set becomes a sketch of `precision` (and keeps its exact count); a
 * HyperLogLog, or a BoundedDistinct that switched to one, is folded down to `precision`
 * (kept as is when already at or below it). The sketch is register for register the one a
 * sketch of that precision fed the minute's uids would hold, so minutes merge exactly.
 */
export function minuteSketchRow(minute: EmittedMinute, counter: DistinctCounter, precision = MINUTE_SKETCH_PRECISION): MinuteSketchRow {
  if (minute.granularity !== undefined && minute.granularity !== 'minute') throw new RangeError(`a minute sketch is made of a minute record, got granularity "${minute.granularity}"`);
  if (!Number.isSafeInteger(minute.start) || minute.start % 60 !== 0) throw new RangeError(`a minute starts at a multiple of 60 unix seconds, got ${minute.start}`);
  if (!Number.isSafeInteger(minute.frames) || minute.frames < 0) throw new RangeError(`frames must be an integer >= 0, got ${minute.frames}`);
  if (!Number.isSafeInteger(minute.late) || minute.late < 0) throw new RangeError(`late must be an integer >= 0, got ${minute.late}`);
  const { sketch, exactUsers } = sketchOf(counter, precision);
  return { start: minute.start, frames: minute.frames, late: minute.late, exactUsers, sketch: encodeSketch(sketch) };
}

function sketchOf(counter: DistinctCounter, precision: number): { sketch: HyperLogLog; exactUsers: number | null } {
  if (counter instanceof ExactDistinct) return { sketch: HyperLogLog.fromExact(counter, precision), exactUsers: counter.count() };
  if (counter instanceof BoundedDistinct) {
    const exact = counter.exact;
    if (exact !== null) return { sketch: HyperLogLog.fromExact(exact, precision), exactUsers: exact.count() };
    return { sketch: folded(counter.sketch!, precision), exactUsers: null };
  }
  if (counter instanceof HyperLogLog) return { sketch: folded(counter, precision), exactUsers: null };
  throw new RangeError('a minute sketch needs an ExactDistinct, BoundedDistinct or HyperLogLog counter');
}

function folded(sketch: HyperLogLog, precision: number): HyperLogLog {
  return sketch.precision > precision ? sketch.foldTo(precision) : sketch;
}
