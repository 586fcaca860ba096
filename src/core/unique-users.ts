import { EventTimeGuard } from './event-time-guard.ts';
import type { EventTimeSink } from './event-time-guard.ts';
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
 * With `maxTimeSkewMs`, each partition's stream time is its event-time guard's
 * (core/event-time-guard.ts, docs/event-time.md) instead of its newest ts: a frame whose ts
 * is farther than that from the stream time (a flipped bit, year 2999) never moves the
 * watermark and never reaches a minute; it is `HELD` (the caller hands it to `hold`) until
 * the stream confirms its time — then it counts like any other frame — or it is refused
 * as implausible through `heldFrames`. A jump of the whole stream is followed after three
 * frames that agree.
 *
 * State is the open minutes (the spread of event time between partitions plus the
 * lateness, in minutes, plus one) and the frames held.
 */

export interface UniqueUsersOptions {
  allowedLatenessMs: number;
  /** Window size; a minute unless told otherwise. */
  windowMs?: number;
  /** A fresh distinct counter for a new minute (exact Set or HyperLogLog). */
  counter: () => DistinctCounter;
  /**
   * The event-time guard's bound (`--max-time-skew`): with it, stream time moves only to
   * times that the next frames agree with, and frames farther than this from it are held.
   * Without it, stream time is the partition's newest ts (no guard).
   */
  maxTimeSkewMs?: number;
}

/** Where the guard's later decisions about held frames go (with the caller's reference to each frame). */
export interface HeldFrameSink<R> {
  /** A held frame's time was confirmed: it was counted (null), or is late or already emitted, as `add` would say. */
  released(ref: R, eventTimeMs: number, verdict: LateFrame | typeof ALREADY_EMITTED | null): void;
  /** The stream did not confirm it: `skewMs` = its time − the stream time (null: the partition has none). */
  implausible(ref: R, eventTimeMs: number, skewMs: number | null, streamTimeMs: number | null): void;
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

/** Returned by `add` when the event-time guard holds the frame: pass it to `hold` next. */
export const HELD = Object.freeze({ reason: 'held' as const });

interface HeldFrame<R> {
  readonly uid: string;
  readonly offset: bigint | undefined;
  readonly ref: R;
}

interface PartitionState<R> {
  watermark: Watermark;
  finished: boolean;
  /** Declared idle and no frame since: does not hold the watermark back. */
  idle: boolean;
  /** The partition's event-time guard and its sink (null without `maxTimeSkewMs`). */
  guard: EventTimeGuard<HeldFrame<R>> | null;
  guardSink: EventTimeSink<HeldFrame<R>> | null;
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

export class UniqueUsersPerMinute<R = never> {
  readonly #options: UniqueUsersOptions;
  readonly #windows: TumblingWindows;
  readonly #heldFrames: HeldFrameSink<R> | null;
  readonly #partitions = new Map<number, PartitionState<R>>();
  readonly #open = new Map<number, MinuteState>();
  /** Minutes ending at or before this are closed. */
  #closedThrough = Number.NEGATIVE_INFINITY;
  /** Minutes starting at or before this were emitted by an earlier run. */
  #emittedBefore = Number.NEGATIVE_INFINITY;

  constructor(options: UniqueUsersOptions, heldFrames?: HeldFrameSink<R>) {
    if (!(options.allowedLatenessMs >= 0)) throw new RangeError(`allowed lateness must be >= 0, got ${options.allowedLatenessMs}`);
    if (options.maxTimeSkewMs !== undefined && !heldFrames) throw new RangeError('an event-time guard needs a sink for the frames it holds');
    this.#options = options;
    this.#windows = new TumblingWindows(options.windowMs ?? 60_000);
    this.#heldFrames = heldFrames ?? null;
  }

  /** Frames the event-time guards hold now. */
  get held(): number {
    let n = 0;
    for (const state of this.#partitions.values()) n += state.guard?.held ?? 0;
    return n;
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
    if (!this.#partitions.has(partition)) this.#partitions.set(partition, this.#newPartition(partition));
  }

  #newPartition(partition: number): PartitionState<R> {
    const { allowedLatenessMs, maxTimeSkewMs } = this.#options;
    const state: PartitionState<R> = { watermark: new Watermark(allowedLatenessMs), finished: false, idle: false, guard: null, guardSink: null };
    if (maxTimeSkewMs === undefined) return state;
    const sink = this.#heldFrames!;
    state.guard = new EventTimeGuard<HeldFrame<R>>({ maxSkewMs: maxTimeSkewMs, toleranceMs: allowedLatenessMs });
    state.guardSink = {
      // The watermark follows the guard's stream time: back too, when the whole stream moved back.
      moved: (to, from) => {
        if (from !== null && to < from) state.watermark.resetTo(to);
        else state.watermark.advanceTo(to);
      },
      release: (frame, eventTimeMs) => sink.released(frame.ref, eventTimeMs, this.#count(state, partition, eventTimeMs, frame.uid, frame.offset)),
      implausible: (frame, eventTimeMs, skewMs) => sink.implausible(frame.ref, eventTimeMs, skewMs, state.guard!.streamTime),
    };
    return state;
  }

  /**
   * The partition delivered nothing for a while although it could be fetched: it stops
   * holding the combined watermark back until its next frame. (A partition that cannot be
   * fetched is not idle: its frames may be waiting.) If its first frames never agreed on a
   * time, the median of those held becomes its stream time.
   */
  idle(partition: number): void {
    const state = this.#partitions.get(partition);
    if (!state) return;
    state.guard?.settle(state.guardSink!);
    state.idle = true;
  }

  /** The partition has no more frames (end of a bounded read): what its guard still holds is decided now. */
  finish(partition: number): void {
    this.expect(partition);
    const state = this.#partitions.get(partition)!;
    state.guard?.drain(state.guardSink!);
    state.finished = true;
  }

  /**
   * The whole input is quiet (a service whose partitions are all caught up and idle): what
   * the guards still hold cannot be confirmed now, so it is decided — released when within
   * the skew of its partition's stream time (a partition whose first frames never agreed
   * takes their median), else implausible — as at the end of the input.
   */
  decideHeld(): void {
    for (const state of this.#partitions.values()) if (state.guard !== null && state.guard.held > 0) state.guard.drain(state.guardSink!);
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
   * covered its minute, HELD when the event-time guard holds it (call `hold` next), or
   * why it is late.
   */
  add(partition: number, eventTimeMs: number, uid: string | AsciiText, offset?: bigint): LateFrame | typeof ALREADY_EMITTED | typeof HELD | null {
    let state = this.#partitions.get(partition);
    if (state === undefined) {
      this.expect(partition);
      state = this.#partitions.get(partition)!;
    }
    const guard = state.guard;
    if (guard !== null && !guard.check(eventTimeMs, state.guardSink!)) return HELD;
    return this.#count(state, partition, eventTimeMs, uid, offset);
  }

  /** Holds the frame `add` just answered HELD for; its fate goes to the `heldFrames` sink later. */
  hold(partition: number, eventTimeMs: number, uid: string, offset: bigint | undefined, ref: R): void {
    const state = this.#partitions.get(partition)!;
    state.guard!.hold(eventTimeMs, { uid, offset, ref }, state.guardSink!);
  }

  #count(state: PartitionState<R>, partition: number, eventTimeMs: number, uid: string | AsciiText, offset: bigint | undefined): LateFrame | typeof ALREADY_EMITTED | null {
    // Without a guard the frames move their partition's stream time; with one, only the guard does.
    const observe = state.guard === null;
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
      if (observe) watermark.observe(eventTimeMs);
      return { reason: 'window-closed', lateByMs: Math.max(0, watermark.streamTime - eventTimeMs), watermarkMs: this.#closedThrough };
    }
    if (observe) watermark.observe(eventTimeMs);
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
   * Per partition, the lowest offset that an open minute or a held frame still depends
   * on: committing it (rather than the read position) means a restart re-reads what is
   * not yet emitted or decided.
   */
  pendingOffsets(): Map<number, bigint> {
    const result = new Map<number, bigint>();
    const need = (partition: number, offset: bigint) => {
      const known = result.get(partition);
      if (known === undefined || offset < known) result.set(partition, offset);
    };
    for (const minute of this.#open.values()) {
      for (const [partition, offset] of minute.firstOffsets) need(partition, offset);
    }
    for (const [partition, state] of this.#partitions) {
      if (state.guard === null || state.guard.held === 0) continue;
      for (const frame of state.guard.heldItems()) if (frame.offset !== undefined) need(partition, frame.offset);
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
