import { TumblingWindows, Watermark } from './window.ts';
import type { AsciiText, DistinctCounter } from './hyperloglog.ts';

/**
 * Distinct users per minute of event time, with late data.
 *
 * Each input partition keeps its own watermark, `max event time seen − allowed lateness`:
 * order is only meaningful within a partition, and one partition that is behind must not
 * make the frames of another look late. A frame below its partition's watermark is late
 * ("beyond-lateness") and is not counted. A minute is emitted when the combined watermark,
 * the minimum over the partitions still delivering, passes its end; since a partition's
 * on-time frames are at or above its own watermark, and that is at or above the minimum,
 * an on-time frame never finds its minute already emitted — so the result depends only on
 * each partition's order, not on how partitions interleave, and a re-run gives the same
 * answer. Partitions that have finished (end of a bounded read) or that were declared idle
 * (`idle`: the caller saw them deliver nothing for a while, though they could be fetched)
 * no longer hold the minimum back, until their next frame; a frame that later arrives for
 * an emitted minute is late too ("window-closed").
 *
 * State is the open minutes only: the spread of event time between partitions plus the
 * lateness, in minutes, plus one.
 */

export interface UniqueUsersOptions {
  allowedLatenessMs: number;
  /** Window size; a minute unless told otherwise. */
  windowMs?: number;
  /** A fresh distinct counter for a new minute (exact Set or HyperLogLog). */
  counter: () => DistinctCounter;
}

export interface MinuteCount {
  /** Minute start, ISO 8601 UTC without milliseconds. */
  minute: string;
  /** Minute start, unix seconds. */
  start: number;
  uniqueUsers: number;
  /** Frames counted in this minute. */
  frames: number;
  /**
   * Frames of this minute rejected as late while their partition's watermark had not yet
   * passed the minute's end (later ones are only in the side topic and the run's totals).
   */
  late: number;
}

export interface LateFrame {
  reason: 'beyond-lateness' | 'window-closed';
  /** How far behind its partition's newest event time the frame was, ms. */
  lateByMs: number;
  /** The watermark it was judged against, ms. */
  watermarkMs: number;
}

/** Returned by `add` for frames of minutes a previous run already emitted (see `resumeAfter`). */
export const ALREADY_EMITTED = Object.freeze({ reason: 'already-emitted' as const });

interface PartitionState {
  watermark: Watermark;
  finished: boolean;
  /** Declared idle and no frame since: does not hold the watermark back. */
  idle: boolean;
}

interface MinuteState {
  counter: DistinctCounter;
  frames: number;
  late: number;
  /** Offset of the first frame of each partition in this minute (for safe commits). */
  firstOffsets: Map<number, bigint>;
}

export function minuteIso(startMs: number): string {
  return new Date(startMs).toISOString().replace('.000Z', 'Z');
}

export class UniqueUsersPerMinute {
  readonly #options: UniqueUsersOptions;
  readonly #windows: TumblingWindows;
  readonly #partitions = new Map<number, PartitionState>();
  readonly #open = new Map<number, MinuteState>();
  /** Minutes ending at or before this are closed. */
  #closedThrough = Number.NEGATIVE_INFINITY;
  /** Minutes starting at or before this were emitted by an earlier run. */
  #emittedBefore = Number.NEGATIVE_INFINITY;

  constructor(options: UniqueUsersOptions) {
    if (!(options.allowedLatenessMs >= 0)) throw new RangeError(`allowed lateness must be >= 0, got ${options.allowedLatenessMs}`);
    this.#options = options;
    this.#windows = new TumblingWindows(options.windowMs ?? 60_000);
  }

  get openMinutes(): number {
    return this.#open.size;
  }

  /** The combined watermark as of the last `close` (−Infinity before any). */
  get watermarkMs(): number {
    return this.#closedThrough;
  }

  /**
   * Declares a partition that will deliver frames: until it does (or finishes, or idles),
   * it holds the combined watermark back. Bounded reads declare all partitions up front.
   */
  expect(partition: number): void {
    if (!this.#partitions.has(partition)) {
      this.#partitions.set(partition, { watermark: new Watermark(this.#options.allowedLatenessMs), finished: false, idle: false });
    }
  }

  /**
   * The partition delivered nothing for a while although it could be fetched: it stops
   * holding the combined watermark back until its next frame. (A partition that cannot be
   * fetched is not idle: its frames may be waiting.)
   */
  idle(partition: number): void {
    const state = this.#partitions.get(partition);
    if (state) state.idle = true;
  }

  /** The partition has no more frames (end of a bounded read). */
  finish(partition: number): void {
    this.expect(partition);
    this.#partitions.get(partition)!.finished = true;
  }

  /** Forgets a partition (revoked by a rebalance). */
  release(partition: number): void {
    this.#partitions.delete(partition);
  }

  /** Minutes starting at or before `startMs` were emitted by an earlier run: their frames are skipped. */
  resumeAfter(startMs: number): void {
    this.#emittedBefore = Math.max(this.#emittedBefore, startMs);
    this.#closedThrough = Math.max(this.#closedThrough, startMs + this.#windows.sizeMs);
  }

  /**
   * Adds one frame. Returns null when it was counted, ALREADY_EMITTED when an earlier run
   * covered its minute, or why it is late.
   */
  add(partition: number, eventTimeMs: number, uid: string | AsciiText, offset?: bigint): LateFrame | typeof ALREADY_EMITTED | null {
    let state = this.#partitions.get(partition);
    if (state === undefined) {
      this.expect(partition);
      state = this.#partitions.get(partition)!;
    }
    const watermark = state.watermark;
    const start = this.#windows.windowFor(eventTimeMs).start;
    if (start <= this.#emittedBefore) return ALREADY_EMITTED;
    state.idle = false;
    const end = start + this.#windows.sizeMs;
    if (eventTimeMs < watermark.current) {
      // Counted in its minute's record only while its own partition has not passed that
      // minute: then the minute cannot have been emitted, and the count does not depend on
      // how partitions interleave.
      if (watermark.current < end) this.#minute(start, partition, offset).late++;
      return { reason: 'beyond-lateness', lateByMs: watermark.streamTime - eventTimeMs, watermarkMs: watermark.current };
    }
    if (end <= this.#closedThrough) {
      watermark.observe(eventTimeMs);
      return { reason: 'window-closed', lateByMs: Math.max(0, watermark.streamTime - eventTimeMs), watermarkMs: this.#closedThrough };
    }
    watermark.observe(eventTimeMs);
    const minute = this.#minute(start, partition, offset);
    if (typeof uid === 'string') minute.counter.add(uid);
    else minute.counter.addAscii(uid.bytes, uid.start, uid.end);
    minute.frames++;
    return null;
  }

  #minute(start: number, partition: number, offset: bigint | undefined): MinuteState {
    let minute = this.#open.get(start);
    if (minute === undefined) {
      minute = { counter: this.#options.counter(), frames: 0, late: 0, firstOffsets: new Map() };
      this.#open.set(start, minute);
    }
    if (offset !== undefined && !minute.firstOffsets.has(partition)) minute.firstOffsets.set(partition, offset);
    return minute;
  }

  /** Emits, oldest first, the minutes the combined watermark has passed. */
  close(): MinuteCount[] {
    let minimum = Number.POSITIVE_INFINITY;
    let maximum = Number.NEGATIVE_INFINITY;
    let holding = false;
    for (const state of this.#partitions.values()) {
      const current = state.watermark.current;
      if (current > maximum) maximum = current;
      if (state.finished || state.idle) continue;
      holding = true;
      if (current < minimum) minimum = current;
    }
    const combined = holding ? minimum : maximum;
    if (combined > this.#closedThrough) this.#closedThrough = combined;
    return this.#emit((end) => end <= this.#closedThrough);
  }

  /** Emits every open minute (end of input, or the whole stream idle). */
  flush(): MinuteCount[] {
    const out = this.#emit(() => true);
    if (out.length > 0) this.#closedThrough = Math.max(this.#closedThrough, out[out.length - 1].start * 1000 + this.#windows.sizeMs);
    return out;
  }

  /**
   * Per partition, the lowest offset that an open minute still depends on: committing it
   * (rather than the read position) means a restart re-reads what is not yet emitted.
   */
  pendingOffsets(): Map<number, bigint> {
    const result = new Map<number, bigint>();
    for (const minute of this.#open.values()) {
      for (const [partition, offset] of minute.firstOffsets) {
        const known = result.get(partition);
        if (known === undefined || offset < known) result.set(partition, offset);
      }
    }
    return result;
  }

  #emit(shouldClose: (endMs: number) => boolean): MinuteCount[] {
    const out: MinuteCount[] = [];
    const size = this.#windows.sizeMs;
    for (const start of [...this.#open.keys()].sort((a, b) => a - b)) {
      if (!shouldClose(start + size)) break;
      const minute = this.#open.get(start)!;
      this.#open.delete(start);
      out.push({ minute: minuteIso(start), start: Math.floor(start / 1000), uniqueUsers: minute.counter.count(), frames: minute.frames, late: minute.late });
    }
    return out;
  }
}
