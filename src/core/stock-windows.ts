/**
 * Per-ticker price summaries over tumbling event-time windows, one operator per log
 * partition (the Kafka Streams task model): each partition has its own stream time and
 * watermark, so the records of one partition, read in offset order, are judged late or
 * not the same way whatever batches they arrive in and whatever other partitions do.
 * The stream time is the partition's event-time guard's: records that agree move it, an
 * implausible one never does (docs/event-time.md).
 * Summaries are a commutative monoid (count, sum, min, max), so the parts that several
 * partitions (or group members) hold of one (ticker, window) add up to the whole.
 * Pure: the wall clock is passed in.
 */
import { DEFAULT_MAX_TIME_SKEW_MS, EventTimeGuard } from './event-time-guard.ts';
import type { EventTimeGuardSnapshot, EventTimeSink } from './event-time-guard.ts';
import type { StockTick } from './stock-ticks.ts';
import { TumblingWindows, Watermark, WindowAggregator } from './window.ts';

export interface PriceSummary {
  readonly count: number;
  readonly sum: number;
  readonly min: number;
  readonly max: number;
}

const EMPTY: PriceSummary = Object.freeze({ count: 0, sum: 0, min: Number.POSITIVE_INFINITY, max: Number.NEGATIVE_INFINITY });

export function summaryOf(price: number): PriceSummary {
  return { count: 1, sum: price, min: price, max: price };
}

export function mergeSummaries(a: PriceSummary, b: PriceSummary): PriceSummary {
  return { count: a.count + b.count, sum: a.sum + b.sum, min: Math.min(a.min, b.min), max: Math.max(a.max, b.max) };
}

/** One ticker's summary in one window. */
export interface TickerWindow {
  readonly ticker: string;
  /** Inclusive start, epoch ms. */
  readonly start: number;
  /** Exclusive end, epoch ms. */
  readonly end: number;
  readonly summary: PriceSummary;
}

/** A tick held by the event-time guard, with the caller's reference to its record. */
export interface HeldTick<R> {
  readonly tick: StockTick;
  readonly ref: R;
}

/** What a partition's operator must remember across restarts: its stream time, its open windows, its guard. */
export interface PartitionSnapshot<R = never> {
  /** The guard's stream time (agreed by records, or moved by the idle timer); null before the first. */
  readonly streamTime: number | null;
  readonly open: readonly TickerWindow[];
  /** The event-time guard's records in doubt; absent in state kept before the guard (nothing held then). */
  readonly guard?: Omit<EventTimeGuardSnapshot<HeldTick<R>>, 'streamTime'>;
}

export interface PartitionWindowsOptions<R = never> {
  windowMs: number;
  allowedLatenessMs: number;
  /** After this much wall-clock time without a record on a caught-up partition, stream time follows the wall clock. */
  idleFlushMs: number;
  /** Wall clock now, epoch ms (the idle timer counts from here until the first record). */
  wallNow: number;
  /** The event-time guard's bound: a tick farther than this from the stream time is held (default 10 min). */
  maxTimeSkewMs?: number;
  restore?: PartitionSnapshot<R>;
}

/** Where the ticks the operator refuses go (with the caller's reference to their record). */
export interface StockTickSink<R> {
  /** Its window had closed: `latenessMs` behind the stream time. */
  late(ref: R, tick: StockTick, latenessMs: number): void;
  /** The event-time guard refused it: `skewMs` = its time − the stream time (null: none yet). */
  implausible(ref: R, tick: StockTick, skewMs: number | null, streamTime: number | null): void;
}

/**
 * The windows of one partition behind its event-time guard (core/event-time-guard.ts):
 * the guard decides the stream time (so the watermark) and which ticks count now; a tick
 * it holds is added when released, or refused as implausible.
 */
export class PartitionWindows<R = never> {
  readonly #windows: TumblingWindows;
  readonly #watermark: Watermark;
  readonly #aggregator: WindowAggregator<string, PriceSummary, PriceSummary>;
  readonly #guard: EventTimeGuard<HeldTick<R>>;
  readonly #idleFlushMs: number;
  /** Wall clock and stream time at the last record: the idle timer's starting point. */
  #lastRecord: { wall: number; streamTime: number | null } | null = null;
  /** Windows closed early because the whole stream moved back (emitted by the next close()). */
  #flushed: TickerWindow[] = [];
  #late = 0;

  constructor(options: PartitionWindowsOptions<R>) {
    if (!(options.idleFlushMs > 0)) throw new RangeError(`idle flush must be > 0 ms, got ${options.idleFlushMs}`);
    this.#windows = new TumblingWindows(options.windowMs);
    this.#watermark = new Watermark(options.allowedLatenessMs);
    this.#idleFlushMs = options.idleFlushMs;
    this.#aggregator = new WindowAggregator({
      windows: this.#windows,
      watermark: this.#watermark,
      recordsMoveStreamTime: false,
      init: () => EMPTY,
      add: mergeSummaries,
    });
    const restore = options.restore;
    const streamTime = restore?.streamTime ?? null;
    const guard = restore?.guard ?? { recent: [], held: [], judgedAt: streamTime };
    this.#guard = new EventTimeGuard(
      { maxSkewMs: options.maxTimeSkewMs ?? DEFAULT_MAX_TIME_SKEW_MS, toleranceMs: options.allowedLatenessMs },
      { ...guard, streamTime },
    );
    if (restore) {
      // Open windows first: under the restored watermark they could look late.
      for (const part of restore.open) this.#aggregator.add(part.start, part.ticker, part.summary);
      if (streamTime !== null) this.#watermark.advanceTo(streamTime);
      if (streamTime !== null || this.#guard.held > 0) this.#lastRecord = { wall: options.wallNow, streamTime };
    }
  }

  /** The partition's stream time, or null before the first. */
  get streamTime(): number | null {
    return this.#guard.streamTime;
  }

  /** Stream time minus the allowed lateness; windows ending at or before it are closed. */
  get watermark(): number | null {
    const streamTime = this.streamTime;
    return streamTime === null ? null : streamTime - this.#watermark.allowedLatenessMs;
  }

  /** Ticks refused as late by this operator. */
  get late(): number {
    return this.#late;
  }

  get openWindows(): number {
    return this.#aggregator.openWindows;
  }

  /** Ticks the guard holds now. */
  get held(): number {
    return this.#guard.held;
  }

  /** Grows whenever the held ticks change (they must be saved again). */
  get heldVersion(): number {
    return this.#guard.version;
  }

  /**
   * Offers a tick (in the partition's offset order): counted now, held by the guard, or
   * refused as late — all its tickers or none. Held ticks the stream now confirms are
   * added, or refused, through the sink.
   */
  add(tick: StockTick, ref: R, wallNow: number, sink: StockTickSink<R>): void {
    const guardSink = this.#guardSink(sink);
    if (this.#guard.check(tick.eventTime, guardSink)) this.#count(tick, ref, sink);
    else this.#guard.hold(tick.eventTime, { tick, ref }, guardSink);
    this.#lastRecord = { wall: wallNow, streamTime: this.#guard.streamTime };
  }

  /**
   * The idle timer. When the partition is caught up (nothing left to read) and no record
   * came for the idle-flush time, stream time moves on by the wall-clock time elapsed
   * since the last record, so the open windows of a quiet stream still close (a partition
   * whose first records never agreed first takes the median of what it holds). Held ticks
   * it reaches are added; none is refused here. Returns whether anything changed.
   */
  advanceIdle(wallNow: number, caughtUp: boolean): boolean {
    const last = this.#lastRecord;
    if (!caughtUp || last === null) return false;
    const elapsed = wallNow - last.wall;
    if (elapsed < this.#idleFlushMs) return false;
    const releases = {
      moved: (to: number, from: number | null) => this.#moved(to, from),
      // Only what still fits an open window; a late one waits for the next record, which can refuse it.
      release: ({ tick }: HeldTick<R>) => {
        if (this.#isLate(tick)) return false;
        this.#addTickers(tick);
        return true;
      },
    };
    const streamTime = this.#guard.streamTime;
    if (streamTime === null) {
      this.#guard.settle(releases);
      if (this.#guard.streamTime === null) return false;
      this.#lastRecord = { wall: wallNow, streamTime: this.#guard.streamTime };
      return true;
    }
    const target = (last.streamTime ?? streamTime) + elapsed;
    if (target <= streamTime) return false;
    this.#guard.advanceTo(target, releases);
    return true;
  }

  /** Removes and returns the windows the watermark has passed (and any flushed by a move back), oldest first. */
  close(): TickerWindow[] {
    const closed = this.#aggregator.close().map(({ window, key, value }) => ({ ticker: key, start: window.start, end: window.end, summary: value }));
    if (this.#flushed.length === 0) return closed;
    const out = [...this.#flushed, ...closed];
    this.#flushed = [];
    return out;
  }

  snapshot(): PartitionSnapshot<R> {
    const { streamTime, ...guard } = this.#guard.snapshot();
    return {
      streamTime,
      open: this.#aggregator.peek().map(({ window, key, value }) => ({ ticker: key, start: window.start, end: window.end, summary: value })),
      guard,
    };
  }

  #guardSink(sink: StockTickSink<R>): EventTimeSink<HeldTick<R>> {
    return {
      moved: (to, from) => this.#moved(to, from),
      release: ({ tick, ref }) => this.#count(tick, ref, sink),
      implausible: ({ tick, ref }, _eventTime, skewMs) => sink.implausible(ref, tick, skewMs, this.#guard.streamTime),
    };
  }

  #moved(to: number, from: number | null): void {
    if (from !== null && to < from) {
      // The whole stream moved back (history replayed): what was open is complete.
      for (const { window, key, value } of this.#aggregator.flush()) this.#flushed.push({ ticker: key, start: window.start, end: window.end, summary: value });
      this.#watermark.resetTo(to);
    } else {
      this.#watermark.advanceTo(to);
    }
  }

  #isLate(tick: StockTick): boolean {
    return this.#watermark.isClosed(this.#windows.windowFor(tick.eventTime));
  }

  #count(tick: StockTick, ref: R, sink: StockTickSink<R>): void {
    if (this.#isLate(tick)) {
      this.#late++;
      sink.late(ref, tick, this.#watermark.streamTime - tick.eventTime);
      return;
    }
    this.#addTickers(tick);
  }

  #addTickers(tick: StockTick): void {
    for (const { name, price } of tick.tickers) this.#aggregator.add(tick.eventTime, name, summaryOf(price));
  }
}

/** Adds up the parts of the same (ticker, window), ordered by ticker then start. */
export function mergeTickerWindows(parts: readonly TickerWindow[]): TickerWindow[] {
  const merged = new Map<string, TickerWindow>();
  for (const part of parts) {
    const key = `${part.ticker}\u0000${part.start}`;
    const seen = merged.get(key);
    merged.set(key, seen ? { ...seen, summary: mergeSummaries(seen.summary, part.summary) } : part);
  }
  return [...merged.values()].sort((a, b) => (a.ticker < b.ticker ? -1 : a.ticker > b.ticker ? 1 : a.start - b.start));
}
