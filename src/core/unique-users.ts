import { EventTimeGuard } from './event-time-guard.ts';
import type { EventTimeSink } from './event-time-guard.ts';
import { Watermark } from './window.ts';
import { asciiHash, sketchIn } from './hyperloglog.ts';
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
 *
 * Resuming exactly (`resumePoints`, `restore`): a service commits, per partition, the
 * offset of the first frame that an open window or a held frame still needs, with the
 * partition's event time just before that frame (watermark and guard position, saved
 * before every frame with an offset), the closed-through time, and the guard's decisions
 * made between frames since (an idle partition settling, a quiet input deciding what is
 * held). Restored there, the partition's frames up to the read position of that commit
 * are judged again exactly as before: the open windows are rebuilt with the same frames,
 * and a window that was closed is not counted in again (those frames count only in the
 * coarser windows still open, as with `resumeAfter`).
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
  /**
   * Called with every window as it is emitted, with its distinct counter (which is then
   * dropped): what the emitted record does not carry, such as the minute's users for the
   * sketch store (core/user-sketches.ts). Per window, never per frame.
   */
  emitted?: (record: WindowCount, counter: DistinctCounter) => void;
  /**
   * The two stages of a repartitioned count (docs/users.md, "How it scales"), both per
   * input partition as the default (null) judges: `judge` only judges (the event-time guard,
   * lateness; no windows are opened, nothing closes); `judged` counts frames already judged
   * upstream — no lateness check, each partition's time is set from outside (`setTime`),
   * frames of windows already closed are `window-closed` as always, `addLate` counts a frame
   * judged late upstream in the windows it was late for.
   */
  mode?: 'judge' | 'judged' | null;
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
  /** The partition's event time just before this frame (with an offset). */
  readonly time: PartitionTime | null;
}

/**
 * A partition's event time at one point of its frames, JSON-safe: its stream time (null:
 * none yet) and its event-time guard's position (null: no guard). What is held is not in it.
 */
export interface PartitionTime {
  stream: number | null;
  guard: { streamTime: number | null; judgedAt: number | null; recent: number[] } | null;
  /** Windows ending at or before this (ms) were closed then (null: none). */
  closed: number | null;
}

/**
 * What changed the judging of a partition's frames between two of them, at the position
 * before frame `at`: the guard deciding what it held (an idle partition settling, a quiet
 * input draining), or windows closing past the partition's watermark (`closed`: the new
 * closed-through time, which makes its on-time frames of those windows late).
 */
export type JudgingEvent = { at: bigint; kind: 'settle' | 'drain' } | { at: bigint; kind: 'closed'; value: number };

/** Where a restart resumes a partition: the frame at `offset` (omitted: after the last) with the partition's time and the guard's decisions after it. */
export interface PartitionResume {
  offset?: bigint;
  time: PartitionTime;
  events: JudgingEvent[];
  /** Declared idle since its last frame: once its frames are judged again it holds nothing back. */
  idle: boolean;
  /** More decisions were made after `offset` than a resume point keeps: the position of the newest one left out. */
  cut?: bigint;
}

/** A partition's first frame in an open window: where a restart would re-read it from, and the partition's time there. */
export interface WindowFirstFrame {
  readonly offset: bigint;
  readonly time: PartitionTime;
}

/** One open window in a `WindowsState`. */
export interface OpenWindowState {
  granularity: Granularity;
  /** Start and (exclusive) end, ms. */
  start: number;
  end: number;
  frames: number;
  late: number;
  counter: DistinctCounter;
  /** Per partition, its first frame in the window. */
  first: Array<[number, WindowFirstFrame]>;
}

/**
 * Everything the windows hold between two frames, to seed a restart with (durable state,
 * docs/users.md): the open windows with their distinct counters, each partition's time, the
 * closed-through time and what an earlier run was known to have emitted. The counters are
 * the live ones: encode them before the next frame.
 */
export interface WindowsState<R = never> {
  closedThrough: number | null;
  emitted: { end: number; rank: number; all: boolean } | null;
  partitions: Map<number, PartitionTime>;
  windows: OpenWindowState[];
  /** Per partition, the frames its event-time guard holds, oldest first. */
  held: Map<number, StoredHeldFrame<R>[]>;
}

/** A frame the event-time guard holds, in a `WindowsState`: its time, when it was held, and what `hold` was given. */
export interface StoredHeldFrame<R> {
  eventTime: number;
  /** The partition's stream time when it was held (null: none yet). */
  since: number | null;
  uid: string;
  offset: bigint | undefined;
  /** The partition's time just before it (with an offset). */
  time: PartitionTime | null;
  ref: R;
}

/** Decisions between frames kept for a resume point at most: beyond, the oldest are forgotten (a restart then decides those frames anew). */
const MAX_EVENTS = 32;

/** The first frame of a partition in a window: where a restart must re-read it from, and the partition's time there. */
type FirstFrame = WindowFirstFrame;

interface PartitionState<R> {
  watermark: Watermark;
  finished: boolean;
  /** Declared idle and no frame since: does not hold the watermark back. */
  idle: boolean;
  /** The partition's event-time guard and its sink (null without `maxTimeSkewMs`). */
  guard: EventTimeGuard<HeldFrame<R>> | null;
  guardSink: EventTimeSink<HeldFrame<R>> | null;
  /** The partition's time before the current frame: watermark stream time, then the guard's position. */
  readonly before: Float64Array;
  /** After the last frame with an offset: its offset + 1. */
  next: bigint | undefined;
  /** Restored, or a frame with an offset came: it has a resume point. */
  resumable: boolean;
  /** The guard's decisions between frames (restored ones first); the first `applied` are in effect. */
  events: JudgingEvent[];
  applied: number;
  /** Frames below this were judged before a restart: judged again, closed windows left alone (null: not replaying). */
  replayUntil: bigint | null;
  replaying: boolean;
  /** Replaying: whether it was idle when the run before committed (it holds the watermark back until the replay ends). */
  idleAfterReplay: boolean;
  /** Replaying: the closed-through time its frames were judged with before the restart. */
  replayClosed: number;
  /** The offset of the frame being judged (null between frames). */
  judging: bigint | null;
  /**
   * Windows ending at or before this were emitted for this partition by an earlier run
   * (`restoreEmitted`; scaled out, each partition's previous owner closed windows at its own
   * time); null: what `restoreClosed`/`resumeAfter` say for all partitions.
   */
  emittedEnd: number | null;
}

interface WindowState {
  readonly start: number;
  readonly end: number;
  readonly counter: DistinctCounter;
  frames: number;
  late: number;
  /** The first frame of each partition in this window (for safe commits). */
  readonly firstOffsets: Map<number, FirstFrame>;
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
  /** Skip emitted windows for every frame (`resumeAfter`); otherwise only for frames judged again (`restore`). */
  #resumeAll = false;
  readonly #judge: boolean;
  readonly #judged: boolean;

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
    this.#judge = options.mode === 'judge';
    this.#judged = options.mode === 'judged';
    if (this.#judged && options.maxTimeSkewMs !== undefined) throw new RangeError('frames judged upstream are not guarded again');
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

  #newPartition(partition: number, time?: PartitionTime, held: readonly StoredHeldFrame<R>[] = []): PartitionState<R> {
    const { allowedLatenessMs, maxTimeSkewMs } = this.#options;
    const frames = held.map((h) => ({ eventTime: h.eventTime, since: h.since, item: { uid: h.uid, offset: h.offset, ref: h.ref, time: h.time } }));
    const restored = time?.guard ? { ...time.guard, held: frames } : undefined;
    const guard = maxTimeSkewMs === undefined ? null : new EventTimeGuard<HeldFrame<R>>({ maxSkewMs: maxTimeSkewMs, toleranceMs: allowedLatenessMs }, restored);
    const state: PartitionState<R> = {
      watermark: new Watermark(allowedLatenessMs), finished: false, idle: false, guard, guardSink: null,
      before: new Float64Array(2 + (guard?.positionSize ?? 0)), next: undefined, resumable: false, events: [], applied: 0, replayUntil: null, replaying: false, idleAfterReplay: false,
      replayClosed: time?.closed ?? Number.NEGATIVE_INFINITY, judging: null, emittedEnd: null,
    };
    if (time?.stream != null) state.watermark.resetTo(time.stream);
    if (guard === null) return state;
    const sink = this.#heldFrames!;
    state.guardSink = {
      // The watermark follows the guard's stream time: back too, when the whole stream moved back.
      moved: (to, from) => {
        if (from !== null && to < from) {
          state.watermark.resetTo(to);
          // Windows closed before may now be ahead of the partition: its frames are judged against them.
          if (this.#closedThrough > state.watermark.current) this.#record(state, { at: state.judging ?? state.next ?? 0n, kind: 'closed', value: this.#closedThrough });
        } else {
          state.watermark.advanceTo(to);
        }
      },
      release: (frame, eventTimeMs) => sink.released(frame.ref, eventTimeMs, this.#count(state, partition, eventTimeMs, frame.uid, frame.offset, frame.time)),
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
    if (state.guard !== null && state.guard.streamTime === null && state.guard.held > 0) this.#decide(state, 'settle');
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
    for (const state of this.#partitions.values()) if (state.guard !== null && state.guard.held > 0) this.#decide(state, 'drain');
  }

  /** A guard decision between frames, kept with its position so that a restart replays it there. */
  #decide(state: PartitionState<R>, kind: 'settle' | 'drain'): void {
    if (state.next !== undefined) this.#record(state, { at: state.next, kind });
    this.#apply(state, { at: 0n, kind });
  }

  /** Keeps an event of a partition in effect now (a later `closed` at the same position replaces an earlier one). */
  #record(state: PartitionState<R>, event: JudgingEvent): void {
    if (state.replaying || !state.resumable) return; // replaying: it is one of those kept
    const last = state.applied > 0 ? state.events[state.applied - 1] : undefined;
    if (event.kind === 'closed' && last?.kind === 'closed' && last.at === event.at) state.events[state.applied - 1] = event;
    else state.events.splice(state.applied++, 0, event);
  }

  #apply(state: PartitionState<R>, event: JudgingEvent): void {
    if (event.kind === 'closed') state.replayClosed = event.value;
    else if (event.kind === 'settle') state.guard?.settle(state.guardSink!);
    else state.guard?.drain(state.guardSink!);
  }

  /** Windows ending at or before `endMs` close; partitions whose watermark is behind it keep the moment. */
  #closeThrough(endMs: number): void {
    if (!(endMs > this.#closedThrough)) return;
    this.#closedThrough = endMs;
    for (const state of this.#partitions.values()) {
      if (state.next !== undefined && endMs > state.watermark.current) this.#record(state, { at: state.next, kind: 'closed', value: endMs });
    }
  }

  /**
   * Resumes a partition where an earlier run committed it (`resumePoints`): `from`, the
   * frame to read first, its event time before it, what changed the judging after it, and `replayUntil`,
   * the read position of that commit: frames below it are judged again as they were, and
   * count in no window closed by then (`restoreClosed`).
   */
  restore(partition: number, resume: { from: bigint; time: PartitionTime | null; events: readonly JudgingEvent[]; idle: boolean; replayUntil: bigint | null; appliedThrough?: bigint; held?: readonly StoredHeldFrame<R>[] }): void {
    const state = this.#newPartition(partition, resume.time ?? undefined, resume.held);
    state.next = resume.from;
    state.events = [...resume.events];
    // Resumed from durable state taken at `appliedThrough`: the decisions before it are in
    // `time`, and so are those at it that were made before the state was taken (windows
    // closed no later than `time.closed`; a guard decision, which found nothing held).
    const through = resume.appliedThrough;
    if (through !== undefined) {
      const closed = resume.time?.closed ?? Number.NEGATIVE_INFINITY;
      const inTime = (e: JudgingEvent) => e.at < through || (e.at === through && (e.kind !== 'closed' || e.value <= closed));
      while (state.applied < state.events.length && inTime(state.events[state.applied])) state.applied++;
    }
    state.replayUntil = resume.replayUntil;
    state.replaying = resume.replayUntil !== null;
    state.idleAfterReplay = resume.idle;
    state.idle = resume.idle && !state.replaying; // replaying, it holds the watermark back until the replay ends
    state.resumable = true;
    this.#partitions.set(partition, state);
    if (!state.replaying) this.#catchUp(state, null);
  }

  /** Windows ending at or before `endMs` were closed (and emitted, if open) by an earlier run: frames judged again skip them. */
  restoreClosed(endMs: number): void {
    if (!Number.isFinite(endMs)) return;
    this.#closeThrough(endMs);
    if (endMs > this.#emittedEnd || this.#emittedRank < 0) {
      this.#emittedEnd = endMs;
      this.#emittedRank = granularityRank('year');
    }
  }

  /**
   * Windows ending at or before `endMs` were emitted for this partition (its frames) by an
   * earlier run: its frames judged again skip them, whatever the other partitions' windows.
   * After `restore`; scaled out, where the partitions of one member come from owners that
   * closed windows at different times and `restoreClosed` gets the earliest.
   */
  restoreEmitted(partition: number, endMs: number): void {
    const state = this.#partitions.get(partition);
    if (state && Number.isFinite(endMs)) state.emittedEnd = endMs;
  }

  /** The partition's frames judged before the restart are all judged again: what the guard decided after them is applied, and judging goes on as new. */
  endReplay(partition: number): void {
    const state = this.#partitions.get(partition);
    if (state && state.replaying) this.#catchUp(state, null);
  }

  /** Applies the kept decisions up to the frame at `offset` (all with null); with null the replay ends. */
  #catchUp(state: PartitionState<R>, offset: bigint | null): void {
    const events = state.events;
    while (state.applied < events.length && (offset === null || events[state.applied].at <= offset)) this.#apply(state, events[state.applied++]);
    if (offset === null && state.replaying) {
      state.replaying = false;
      state.replayUntil = null;
      state.idle = state.idleAfterReplay;
    }
  }

  /**
   * Per partition, where a restart resumes exactly: the first frame an open window or a
   * held frame still needs (as `pendingOffsets`), the partition's time just before it and
   * the guard's decisions since; a partition that needs nothing resumes after its last
   * frame, with its time now. Only partitions that had a frame with an offset (a service).
   */
  resumePoints(): Map<number, PartitionResume> {
    const first = new Map<number, FirstFrame>();
    const need = (partition: number, frame: FirstFrame) => {
      const known = first.get(partition);
      if (known === undefined || frame.offset < known.offset) first.set(partition, frame);
    };
    for (const frames of this.#frames) {
      for (const window of frames.open.values()) for (const [partition, frame] of window.firstOffsets) need(partition, frame);
    }
    for (const [partition, state] of this.#partitions) {
      if (state.guard === null || state.guard.held === 0) continue;
      for (const frame of state.guard.heldItems()) if (frame.offset !== undefined && frame.time !== null) need(partition, { offset: frame.offset, time: frame.time });
    }
    const points = new Map<number, PartitionResume>();
    for (const [partition, state] of this.#partitions) {
      if (!state.resumable && !first.has(partition) && !state.idle) continue;
      const frame = first.get(partition);
      // Decisions in effect before the frame (all of them, without one: it resumes now) are in
      // its time; the rest, and those a replay has not reached yet, are replayed after it.
      let drop = 0;
      while (drop < state.applied && (frame === undefined || state.events[drop].at <= frame.offset)) drop++;
      if (drop > 0) {
        state.events = state.events.slice(drop);
        state.applied -= drop;
      }
      const cut = state.events.length > MAX_EVENTS ? { cut: state.events[state.events.length - MAX_EVENTS - 1].at } : {};
      points.set(partition, { ...(frame ? { offset: frame.offset } : {}), time: frame?.time ?? currentTime(state, state.replaying ? state.replayClosed : this.#closedThrough), events: state.events.slice(-MAX_EVENTS), idle: state.replaying ? state.idleAfterReplay : state.idle, ...cut });
    }
    return points;
  }

  /**
   * The whole state between two frames (`WindowsState`, with the frames the guards hold
   * and the caller's references to them), or null while frames judged again after a
   * restart are still being replayed.
   */
  snapshot(): WindowsState<R> | null {
    for (const state of this.#partitions.values()) if (state.replaying) return null;
    const closed = this.#closedThrough;
    const partitions = new Map<number, PartitionTime>();
    const held = new Map<number, StoredHeldFrame<R>[]>();
    for (const [partition, state] of this.#partitions) {
      partitions.set(partition, currentTime(state, closed));
      if (state.guard === null || state.guard.held === 0) continue;
      held.set(partition, state.guard.snapshot().held.map((h) => ({ eventTime: h.eventTime, since: h.since, uid: h.item.uid, offset: h.item.offset, time: h.item.time, ref: h.item.ref })));
    }
    const windows: OpenWindowState[] = [];
    for (const frames of this.#frames) {
      for (const w of frames.open.values()) windows.push({ granularity: frames.granularity, start: w.start, end: w.end, frames: w.frames, late: w.late, counter: w.counter, first: [...w.firstOffsets] });
    }
    const emitted = this.#emittedRank < 0 ? null : { end: this.#emittedEnd, rank: this.#emittedRank, all: this.#resumeAll };
    return { closedThrough: Number.isFinite(closed) ? closed : null, emitted, partitions, windows, held };
  }

  /**
   * Seeds the open windows of a `snapshot` (durable state) into windows restored otherwise
   * (`restore`, `restoreClosed`, before any frame): those closed since — ending at or
   * before the closed-through time now — were emitted and are left out. Throws a
   * RangeError for a window of a granularity not counted here.
   */
  seed(snapshot: WindowsState<R>): void {
    const emitted = snapshot.emitted;
    if (emitted !== null) {
      this.#resumeAll ||= emitted.all;
      if (emitted.end > this.#emittedEnd || (emitted.end === this.#emittedEnd && emitted.rank > this.#emittedRank)) {
        this.#emittedEnd = emitted.end;
        this.#emittedRank = emitted.rank;
      }
    }
    for (const window of snapshot.windows) {
      const frames = this.#frames.find((f) => f.granularity === window.granularity);
      if (frames === undefined) throw new RangeError(`the stored state has ${window.granularity} windows, which are not counted here`);
      if (window.end <= this.#closedThrough) continue;
      if (frames.open.has(window.start)) throw new RangeError(`the ${window.granularity} window at ${window.start} is already open`);
      frames.open.set(window.start, { start: window.start, end: window.end, counter: window.counter, frames: window.frames, late: window.late, firstOffsets: new Map(window.first) });
      frames.start = Number.NaN;
      frames.end = Number.NaN;
      frames.state = null;
    }
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
    this.#resumeAll = true;
    const rank = granularityRank(granularity);
    if (endMs > this.#emittedEnd || (endMs === this.#emittedEnd && rank > this.#emittedRank)) {
      this.#emittedEnd = endMs;
      this.#emittedRank = rank;
    }
    // Closed just before that end: windows of coarser granularities ending there are still open.
    this.#closeThrough(endMs - 1);
  }

  #emitted(frames: Frames): boolean {
    return frames.end < this.#emittedEnd || (frames.end === this.#emittedEnd && frames.rank <= this.#emittedRank);
  }

  /** A partition's watermark (its stream time − the allowed lateness; −Infinity: none yet) and whether it is idle. */
  timeOf(partition: number): { watermarkMs: number; idle: boolean } | null {
    const state = this.#partitions.get(partition);
    return state === undefined ? null : { watermarkMs: state.watermark.current, idle: state.idle };
  }

  /** `judged`: sets a partition's watermark (back too) and whether it is idle, as upstream judged them. */
  setTime(partition: number, watermarkMs: number, idle: boolean): void {
    this.expect(partition);
    const state = this.#partitions.get(partition)!;
    state.watermark.resetTo(Number.isFinite(watermarkMs) ? watermarkMs + this.#options.allowedLatenessMs : Number.NEGATIVE_INFINITY);
    state.idle = idle;
  }

  /**
   * `judged`: a frame judged late upstream against `watermarkMs` (its input partition's),
   * counted in the `late` of the windows it was late for that are still open — as the late
   * branch of `add` does for the frame itself.
   */
  addLate(partition: number, eventTimeMs: number, watermarkMs: number, offset?: bigint): void {
    const state = this.#prelude(partition, offset);
    const replaying = state.replaying;
    const closedThrough = replaying ? state.replayClosed : this.#closedThrough;
    const own = state.emittedEnd;
    const resumed = own !== null ? replaying : this.#emittedRank >= 0 && (this.#resumeAll || replaying);
    for (const frames of this.#frames) {
      frames.locate(eventTimeMs);
      if (watermarkMs < frames.end && frames.end > closedThrough && !(resumed && (own !== null ? frames.end <= own : this.#emitted(frames)))) this.#window(frames, state, partition, offset, null).late++;
    }
  }

  /**
   * The bookkeeping of a frame before it is judged: with an offset, the decisions replayed up
   * to it, and the partition's time before it (where a restart resumes if it is a window's
   * first) and its position.
   */
  #prelude(partition: number, offset: bigint | undefined): PartitionState<R> {
    let state = this.#partitions.get(partition);
    if (state === undefined) {
      this.expect(partition);
      state = this.#partitions.get(partition)!;
    }
    if (offset !== undefined) {
      if (state.replaying) this.#catchUp(state, offset < state.replayUntil! ? offset : null);
      const before = state.before;
      before[0] = state.watermark.streamTime;
      before[1] = state.replaying ? state.replayClosed : this.#closedThrough;
      state.guard?.savePosition(before, 2);
      state.next = offset + 1n;
      state.resumable = true;
    }
    return state;
  }

  /**
   * Adds one frame. Returns null when it was counted, ALREADY_EMITTED when an earlier run
   * covered its windows, HELD when the event-time guard holds it (call `hold` next), or
   * why it is late.
   */
  add(partition: number, eventTimeMs: number, uid: string | AsciiText, offset?: bigint): LateFrame | typeof ALREADY_EMITTED | typeof HELD | null {
    const state = this.#prelude(partition, offset);
    const guard = state.guard;
    if (guard !== null) {
      state.judging = offset ?? null;
      const now = guard.check(eventTimeMs, state.guardSink!);
      state.judging = null;
      if (!now) return HELD;
    }
    return this.#count(state, partition, eventTimeMs, uid, offset, null);
  }

  /** Holds the frame `add` just answered HELD for; its fate goes to the `heldFrames` sink later. */
  hold(partition: number, eventTimeMs: number, uid: string, offset: bigint | undefined, ref: R): void {
    const state = this.#partitions.get(partition)!;
    state.guard!.hold(eventTimeMs, { uid, offset, ref, time: offset === undefined ? null : savedTime(state) }, state.guardSink!);
  }

  /**
   * One verdict per frame, the same for every granularity: late when behind its
   * partition's watermark, so every coarse window counts exactly the on-time frames of its
   * minutes (docs/users.md, "Time frames").
   */
  #count(state: PartitionState<R>, partition: number, eventTimeMs: number, uid: string | AsciiText, offset: bigint | undefined, time: PartitionTime | null): LateFrame | typeof ALREADY_EMITTED | null {
    // Without a guard the frames move their partition's stream time; with one, only the guard does.
    const observe = state.guard === null;
    const watermark = state.watermark;
    if (this.#judge) {
      // Only the verdict of the lateness check: the windows are counted downstream.
      state.idle = false;
      const current = watermark.current;
      if (eventTimeMs < current) return { reason: 'beyond-lateness', lateByMs: watermark.streamTime - eventTimeMs, watermarkMs: current };
      if (observe) watermark.observe(eventTimeMs);
      return null;
    }
    const all = this.#frames;
    // Judged again after a restart: against the windows closed when it was judged before.
    const replaying = state.replaying;
    const closedThrough = replaying ? state.replayClosed : this.#closedThrough;
    const own = state.emittedEnd;
    const resumed = own !== null ? replaying : this.#emittedRank >= 0 && (this.#resumeAll || replaying);
    let pending = 0;
    let closed = false;
    for (const frames of all) {
      frames.locate(eventTimeMs);
      if (replaying && frames.end <= closedThrough) closed = true; // whether or not that window is out now
      if (resumed && (own !== null ? frames.end <= own : this.#emitted(frames))) continue;
      pending++;
      if (frames.end <= closedThrough) closed = true;
    }
    if (pending === 0 && !replaying) return ALREADY_EMITTED;
    state.idle = false;
    const current = watermark.current;
    if (eventTimeMs < current && !this.#judged) {
      // Counted in a window's record only while its own partition has not passed that
      // window: then the window cannot have been emitted, and the count does not depend on
      // how partitions interleave.
      for (const frames of all) {
        if (current < frames.end && frames.end > closedThrough && !(resumed && (own !== null ? frames.end <= own : this.#emitted(frames)))) this.#window(frames, state, partition, offset, time).late++;
      }
      return { reason: 'beyond-lateness', lateByMs: watermark.streamTime - eventTimeMs, watermarkMs: current };
    }
    if (observe && !this.#judged) watermark.observe(eventTimeMs);
    if (closed) return { reason: 'window-closed', lateByMs: Math.max(0, watermark.streamTime - eventTimeMs), watermarkMs: closedThrough };
    if (pending === 0) return ALREADY_EMITTED; // judged again: it counted in windows that are out
    // Finest first. A window that already had the uid is inside the coarser ones of the
    // same chain (minute ⊂ hour ⊂ day ⊂ week, and day ⊂ month ⊂ year), which got every frame
    // it got: they have the uid too, and are not asked again. Only a week does not nest in
    // a month, and in a time zone the UTC minutes and hours not in a local day.
    const hash = typeof uid === 'string' || all.length === 1 ? undefined : asciiHash(uid.bytes, uid.start, uid.end);
    let known = false;
    for (const frames of all) {
      if (resumed && (own !== null ? frames.end <= own : this.#emitted(frames))) continue;
      const window = this.#window(frames, state, partition, offset, time);
      window.frames++;
      if (frames.startsChain) known = false;
      if (known) continue;
      const added = add(window.counter, uid, hash);
      if (frames.granularity !== 'week') known = !added;
    }
    return null;
  }

  /** The located window, with the frame as its partition's first when it is (the lowest offset: a released held frame can be older). */
  #window(frames: Frames, state: PartitionState<R>, partition: number, offset: bigint | undefined, time: PartitionTime | null): WindowState {
    const window = frames.window(this.#options.counter);
    if (offset !== undefined) {
      const known = window.firstOffsets.get(partition);
      if (known === undefined || offset < known.offset) window.firstOffsets.set(partition, { offset, time: time ?? savedTime(state) });
    }
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
    this.#closeThrough(combined);
    return this.#emit((end) => end <= this.#closedThrough);
  }

  /** Emits every open window (end of input). */
  flush(): WindowCount[] {
    const out = this.#emit(() => true);
    for (const record of out) this.#closeThrough(record.end * 1000);
    return out;
  }

  /**
   * The whole stream is idle (a service): emits every open minute, and any coarser window
   * ending by then. Hours and coarser stay open until the watermark passes their end.
   */
  flushMinutes(): WindowCount[] {
    const minutes = this.#frames.find((f) => f.granularity === 'minute');
    if (minutes !== undefined) for (const window of minutes.open.values()) this.#closeThrough(window.end);
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
      for (const window of frames.open.values()) for (const [partition, frame] of window.firstOffsets) need(partition, frame.offset);
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
    const emitted = this.#options.emitted;
    return closing.map(({ frames, window }) => {
      frames.remove(window);
      const record = windowRecord(frames, window);
      emitted?.(record, window.counter);
      return record;
    });
  }
}

/** The partition's time saved before its current frame (`add`). */
function savedTime(state: PartitionState<unknown>): PartitionTime {
  const before = state.before;
  const [stream, closed] = [before[0], before[1]];
  const time = { stream: Number.isFinite(stream) ? stream : null, closed: Number.isFinite(closed) ? closed : null };
  if (state.guard === null) return { ...time, guard: null };
  const { streamTime, judgedAt, recent } = EventTimeGuard.positionSnapshot(before, 2);
  return { ...time, guard: { streamTime, judgedAt, recent: [...recent] } };
}

/** The partition's time now (between frames), with the closed-through time now. */
function currentTime(state: PartitionState<unknown>, closed: number): PartitionTime {
  const stream = state.watermark.streamTime;
  const guard = state.guard?.snapshot() ?? null;
  return {
    stream: Number.isFinite(stream) ? stream : null,
    guard: guard === null ? null : { streamTime: guard.streamTime, judgedAt: guard.judgedAt, recent: [...guard.recent] },
    closed: Number.isFinite(closed) ? closed : null,
  };
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
  return sketchIn(counter)?.standardError ?? Number.NaN;
}
