import { EventTimeGuard } from './event-time-guard.ts';
import type { EventTimeSink } from './event-time-guard.ts';
import { Watermark } from './window.ts';
import { BoundedDistinct, HyperLogLog, asciiHash } from './hyperloglog.ts';
import type { AsciiText, DistinctCounter } from './hyperloglog.ts';
import { calendarOf, granularityRank, windowEnd, windowIso, windowStart } from './calendar-windows.ts';
import type { Granularity, ZonedCalendar } from './calendar-windows.ts';

/**
 * Distinct users per window of event time — minute, hour, day, ISO week, month, year, any
 * subset, all from the same frames — with late data.
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
 * Windows are calendar-aligned in UTC (core/calendar-windows.ts). A frame gets one verdict
 * for all granularities (late when behind its partition's watermark), so a coarse window
 * counts exactly the on-time frames of the minutes it spans. Windows are emitted the same
 * way at every granularity: once the combined watermark passes their end, by end and
 * finest first.
 *
 * State is the open windows (per granularity, the spread of event time between
 * partitions plus the lateness, in windows, plus one) and the frames held.
 */

export interface UniqueUsersOptions {
  allowedLatenessMs: number;
  /** The time frames counted, each from the same frames (default: minute). */
  granularities?: readonly Granularity[];
  /** Days and coarser in this IANA time zone (minutes and hours stay UTC); default UTC. */
  timeZone?: string | null;
  /** A fresh distinct counter for a new window (exact, bounded, or HyperLogLog). */
  counter: (granularity: Granularity) => DistinctCounter;
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

/** One window's record. */
export interface WindowCount {
  granularity: Granularity;
  /** Window start, ISO 8601 UTC without milliseconds. */
  window: string;
  /** Window start and (exclusive) end, unix seconds. */
  start: number;
  end: number;
  uniqueUsers: number;
  /** Frames counted in this window. */
  frames: number;
  /**
   * Frames of this window rejected as late while their partition's watermark had not yet
   * passed the window's end (later ones are only in the side topic and the run's totals).
   */
  late: number;
  /** Minute records only: the window start again, under the name minute records always had. */
  minute?: string;
  /** Present (true) when uniqueUsers is a HyperLogLog estimate. */
  approximate?: true;
  /** With approximate: the sketch's relative standard error. */
  standardError?: number;
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

interface WindowState {
  readonly start: number;
  readonly end: number;
  readonly counter: DistinctCounter;
  frames: number;
  late: number;
  /** Offset of the first frame of each partition in this window (for safe commits). */
  readonly firstOffsets: Map<number, bigint>;
}

/** One granularity's open windows, and the window of the last frame (frames come mostly in order). */
class Frames {
  readonly granularity: Granularity;
  readonly rank: number;
  /** Null: UTC. */
  readonly calendar: ZonedCalendar | null;
  /**
   * The first zoned granularity: a UTC minute or hour is not inside a local day (offsets of
   * :30, :45, or seconds in old times), so what they already had says nothing about it.
   */
  startsChain = false;
  readonly open = new Map<number, WindowState>();
  /** The last window looked up: [start, end) and its state if open. */
  start = Number.NaN;
  end = Number.NaN;
  state: WindowState | null = null;

  constructor(granularity: Granularity, calendar: ZonedCalendar | null) {
    this.granularity = granularity;
    this.rank = granularityRank(granularity);
    this.calendar = granularity === 'minute' || granularity === 'hour' ? null : calendar;
  }

  /** Makes [start, end) the window holding `ms`. */
  locate(ms: number): void {
    if (ms >= this.start && ms < this.end) return;
    const calendar = this.calendar;
    this.start = calendar === null ? windowStart(this.granularity, ms) : calendar.start(this.granularity, ms);
    this.end = calendar === null ? windowEnd(this.granularity, this.start) : calendar.end(this.granularity, this.start);
    this.state = this.open.get(this.start) ?? null;
  }

  /** A window start as the record's `window`: ISO UTC, or local time with its offset in a zone. */
  iso(startMs: number): string {
    return this.calendar === null ? windowIso(startMs) : this.calendar.iso(startMs);
  }

  /** The located window's state, opened if need be. */
  window(counter: (granularity: Granularity) => DistinctCounter): WindowState {
    let state = this.state;
    if (state === null) {
      state = { start: this.start, end: this.end, counter: counter(this.granularity), frames: 0, late: 0, firstOffsets: new Map() };
      this.open.set(this.start, state);
      this.state = state;
    }
    return state;
  }

  /** Takes an emitted window out. */
  remove(state: WindowState): void {
    this.open.delete(state.start);
    if (this.state === state) this.state = null;
  }
}

export class UniqueUsersWindows<R = never> {
  readonly #options: UniqueUsersOptions;
  readonly #frames: readonly Frames[];
  readonly #heldFrames: HeldFrameSink<R> | null;
  readonly #partitions = new Map<number, PartitionState<R>>();
  /** Windows ending at or before this are closed. */
  #closedThrough = Number.NEGATIVE_INFINITY;
  /**
   * The newest record an earlier run emitted: its end and granularity rank. Windows ending
   * before it, or at it and no coarser, were emitted (records go out by end, finest first).
   */
  #emittedEnd = Number.NEGATIVE_INFINITY;
  #emittedRank = -1;

  constructor(options: UniqueUsersOptions, heldFrames?: HeldFrameSink<R>) {
    if (!(options.allowedLatenessMs >= 0)) throw new RangeError(`allowed lateness must be >= 0, got ${options.allowedLatenessMs}`);
    if (options.maxTimeSkewMs !== undefined && !heldFrames) throw new RangeError('an event-time guard needs a sink for the frames it holds');
    const granularities = options.granularities ?? ['minute'];
    if (granularities.length === 0) throw new RangeError('at least one granularity is needed');
    this.#options = options;
    const calendar = calendarOf(options.timeZone);
    this.#frames = [...new Set(granularities)].sort((a, b) => granularityRank(a) - granularityRank(b)).map((g) => new Frames(g, calendar));
    const firstZoned = this.#frames.find((f) => f.calendar !== null);
    if (firstZoned) firstZoned.startsChain = true;
    this.#heldFrames = heldFrames ?? null;
  }

  /** Frames the event-time guards hold now. */
  get held(): number {
    let n = 0;
    for (const state of this.#partitions.values()) n += state.guard?.held ?? 0;
    return n;
  }

  /** Open windows, all granularities. */
  get openWindows(): number {
    let n = 0;
    for (const frames of this.#frames) n += frames.open.size;
    return n;
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

  /**
   * An earlier run's newest record was the window of `granularity` ending at `endMs`: it and
   * every window emitted before it (ending earlier, or at the same time and finer) are
   * skipped; frames count only in windows not yet emitted.
   */
  resumeAfter(endMs: number, granularity: Granularity = 'minute'): void {
    const rank = granularityRank(granularity);
    if (endMs > this.#emittedEnd || (endMs === this.#emittedEnd && rank > this.#emittedRank)) {
      this.#emittedEnd = endMs;
      this.#emittedRank = rank;
    }
    // Closed just before that end: windows of coarser granularities ending there are still open.
    this.#closedThrough = Math.max(this.#closedThrough, endMs - 1);
  }

  #emitted(frames: Frames): boolean {
    return frames.end < this.#emittedEnd || (frames.end === this.#emittedEnd && frames.rank <= this.#emittedRank);
  }

  /**
   * Adds one frame. Returns null when it was counted, ALREADY_EMITTED when an earlier run
   * covered its windows, HELD when the event-time guard holds it (call `hold` next), or
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

  /**
   * One verdict per frame, the same for every granularity: late when behind its
   * partition's watermark, so every coarse window counts exactly the on-time frames of its
   * minutes (docs/users.md, "Time frames").
   */
  #count(state: PartitionState<R>, partition: number, eventTimeMs: number, uid: string | AsciiText, offset: bigint | undefined): LateFrame | typeof ALREADY_EMITTED | null {
    // Without a guard the frames move their partition's stream time; with one, only the guard does.
    const observe = state.guard === null;
    const watermark = state.watermark;
    const all = this.#frames;
    const resumed = this.#emittedRank >= 0;
    let pending = 0;
    let closed = false;
    for (const frames of all) {
      frames.locate(eventTimeMs);
      if (resumed && this.#emitted(frames)) continue;
      pending++;
      if (frames.end <= this.#closedThrough) closed = true;
    }
    if (pending === 0) return ALREADY_EMITTED;
    state.idle = false;
    const current = watermark.current;
    if (eventTimeMs < current) {
      // Counted in a window's record only while its own partition has not passed that
      // window: then the window cannot have been emitted, and the count does not depend on
      // how partitions interleave.
      for (const frames of all) {
        if (current < frames.end && frames.end > this.#closedThrough && !(resumed && this.#emitted(frames))) this.#window(frames, partition, offset).late++;
      }
      return { reason: 'beyond-lateness', lateByMs: watermark.streamTime - eventTimeMs, watermarkMs: current };
    }
    if (observe) watermark.observe(eventTimeMs);
    if (closed) return { reason: 'window-closed', lateByMs: Math.max(0, watermark.streamTime - eventTimeMs), watermarkMs: this.#closedThrough };
    // Finest first. A window that already had the uid is inside the coarser ones of the
    // same chain (minute ⊂ hour ⊂ day ⊂ week, and day ⊂ month ⊂ year), which got every frame
    // it got: they have the uid too, and are not asked again. Only a week does not nest in
    // a month, and in a time zone the UTC minutes and hours not in a local day.
    const hash = typeof uid === 'string' || all.length === 1 ? undefined : asciiHash(uid.bytes, uid.start, uid.end);
    let known = false;
    for (const frames of all) {
      if (resumed && this.#emitted(frames)) continue;
      const window = this.#window(frames, partition, offset);
      window.frames++;
      if (frames.startsChain) known = false;
      if (known) continue;
      const added = add(window.counter, uid, hash);
      if (frames.granularity !== 'week') known = !added;
    }
    return null;
  }

  #window(frames: Frames, partition: number, offset: bigint | undefined): WindowState {
    const window = frames.window(this.#options.counter);
    if (offset !== undefined && !window.firstOffsets.has(partition)) window.firstOffsets.set(partition, offset);
    return window;
  }

  /** Emits, by end and finest first, the windows the combined watermark has passed. */
  close(): WindowCount[] {
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

  /** Emits every open window (end of input). */
  flush(): WindowCount[] {
    const out = this.#emit(() => true);
    for (const record of out) this.#closedThrough = Math.max(this.#closedThrough, record.end * 1000);
    return out;
  }

  /**
   * The whole stream is idle (a service): emits every open minute, and any coarser window
   * ending by then. Hours and coarser stay open until the watermark passes their end.
   */
  flushMinutes(): WindowCount[] {
    const minutes = this.#frames.find((f) => f.granularity === 'minute');
    if (minutes !== undefined) for (const window of minutes.open.values()) this.#closedThrough = Math.max(this.#closedThrough, window.end);
    return this.#emit((end) => end <= this.#closedThrough);
  }

  /**
   * Per partition, the lowest offset that an open window or a held frame still depends
   * on: committing it (rather than the read position) means a restart re-reads what is
   * not yet emitted or decided.
   */
  pendingOffsets(): Map<number, bigint> {
    const result = new Map<number, bigint>();
    const need = (partition: number, offset: bigint) => {
      const known = result.get(partition);
      if (known === undefined || offset < known) result.set(partition, offset);
    };
    for (const frames of this.#frames) {
      for (const window of frames.open.values()) for (const [partition, offset] of window.firstOffsets) need(partition, offset);
    }
    for (const [partition, state] of this.#partitions) {
      if (state.guard === null || state.guard.held === 0) continue;
      for (const frame of state.guard.heldItems()) if (frame.offset !== undefined) need(partition, frame.offset);
    }
    return result;
  }

  #emit(shouldClose: (endMs: number) => boolean): WindowCount[] {
    const closing: Array<{ frames: Frames; window: WindowState }> = [];
    for (const frames of this.#frames) {
      for (const window of frames.open.values()) if (shouldClose(window.end)) closing.push({ frames, window });
    }
    closing.sort((a, b) => a.window.end - b.window.end || a.frames.rank - b.frames.rank);
    return closing.map(({ frames, window }) => {
      frames.remove(window);
      return windowRecord(frames, window);
    });
  }
}

function add(counter: DistinctCounter, uid: string | AsciiText, hash: number | undefined): boolean {
  return typeof uid === 'string' ? counter.add(uid) : counter.addAscii(uid.bytes, uid.start, uid.end, hash);
}

function windowRecord(frames: Frames, window: WindowState): WindowCount {
  const granularity = frames.granularity;
  const iso = frames.iso(window.start);
  const record: WindowCount = {
    granularity,
    window: iso,
    start: Math.floor(window.start / 1000),
    end: Math.floor(window.end / 1000),
    uniqueUsers: window.counter.count(),
    frames: window.frames,
    late: window.late,
  };
  if (granularity === 'minute') record.minute = iso;
  const counter = window.counter;
  if (counter.approximate) {
    record.approximate = true;
    record.standardError = standardErrorOf(counter);
  }
  return record;
}

function standardErrorOf(counter: DistinctCounter): number {
  if (counter instanceof HyperLogLog) return counter.standardError;
  if (counter instanceof BoundedDistinct) return counter.sketch!.standardError;
  return Number.NaN;
}
