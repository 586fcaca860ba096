/**
 * Per-ticker price summaries over tumbling event-time windows, one operator per log
 * partition (the Kafka Streams task model): each partition has its own stream time and
 * watermark, so the records of one partition, read in offset order, are judged late or
 * not the same way whatever batches they arrive in and whatever other partitions do.
 * Summaries are a commutative monoid (count, sum, min, max), so the parts that several
 * partitions (or group members) hold of one (ticker, window) add up to the whole.
 * Pure: the wall clock is passed in.
 */
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

/** What a partition's operator must remember across restarts: its stream time and its open windows. */
export interface PartitionSnapshot {
  /** Largest event time seen (or reached by the idle timer); null before the first record. */
  readonly streamTime: number | null;
  readonly open: readonly TickerWindow[];
}

export interface PartitionWindowsOptions {
  windowMs: number;
  allowedLatenessMs: number;
  /** After this much wall-clock time without a record on a caught-up partition, stream time follows the wall clock. */
  idleFlushMs: number;
  /** Wall clock now, epoch ms (the idle timer counts from here until the first record). */
  wallNow: number;
  restore?: PartitionSnapshot;
}

export type AddResult = { accepted: true } | { accepted: false; latenessMs: number };

export class PartitionWindows {
  readonly #windows: TumblingWindows;
  readonly #watermark: Watermark;
  readonly #aggregator: WindowAggregator<string, PriceSummary, PriceSummary>;
  readonly #idleFlushMs: number;
  /** Stream time and wall clock at the last record: the idle timer's starting point. */
  #idleBase: { streamTime: number; wall: number } | null = null;
  #late = 0;

  constructor(options: PartitionWindowsOptions) {
    if (!(options.idleFlushMs > 0)) throw new RangeError(`idle flush must be > 0 ms, got ${options.idleFlushMs}`);
    this.#windows = new TumblingWindows(options.windowMs);
    this.#watermark = new Watermark(options.allowedLatenessMs);
    this.#idleFlushMs = options.idleFlushMs;
    this.#aggregator = new WindowAggregator({
      windows: this.#windows,
      watermark: this.#watermark,
      init: () => EMPTY,
      add: mergeSummaries,
    });
    const restore = options.restore;
    if (restore) {
      // Open windows first: under the restored watermark they could look late.
      for (const part of restore.open) this.#aggregator.add(part.start, part.ticker, part.summary);
      if (restore.streamTime !== null) {
        this.#watermark.advanceTo(restore.streamTime);
        this.#idleBase = { streamTime: restore.streamTime, wall: options.wallNow };
      }
    }
  }

  /** Largest event time seen, or null before any record. */
  get streamTime(): number | null {
    return Number.isFinite(this.#watermark.streamTime) ? this.#watermark.streamTime : null;
  }

  /** Stream time minus the allowed lateness; windows ending at or before it are closed. */
  get watermark(): number | null {
    const streamTime = this.streamTime;
    return streamTime === null ? null : streamTime - this.#watermark.allowedLatenessMs;
  }

  /** Records refused as late by this operator. */
  get late(): number {
    return this.#late;
  }

  get openWindows(): number {
    return this.#aggregator.openWindows;
  }

  /** Adds every ticker of a tick, or none of them when its window has already closed. */
  add(tick: StockTick, wallNow: number): AddResult {
    if (this.#watermark.isClosed(this.#windows.windowFor(tick.eventTime))) {
      this.#late++;
      return { accepted: false, latenessMs: this.#watermark.streamTime - tick.eventTime };
    }
    for (const { name, price } of tick.tickers) this.#aggregator.add(tick.eventTime, name, summaryOf(price));
    this.#idleBase = { streamTime: this.#watermark.streamTime, wall: wallNow };
    return { accepted: true };
  }

  /**
   * The idle timer. When the partition is caught up (nothing left to read) and no record
   * came for the idle-flush time, stream time moves on by the wall-clock time elapsed
   * since the last record, so the open windows of a quiet stream still close. Returns
   * whether stream time moved.
   */
  advanceIdle(wallNow: number, caughtUp: boolean): boolean {
    if (!caughtUp || this.#idleBase === null) return false;
    const elapsed = wallNow - this.#idleBase.wall;
    if (elapsed < this.#idleFlushMs) return false;
    const target = this.#idleBase.streamTime + elapsed;
    if (target <= this.#watermark.streamTime) return false;
    this.#watermark.advanceTo(target);
    return true;
  }

  /** Removes and returns the windows the watermark has passed, oldest first. */
  close(): TickerWindow[] {
    return this.#aggregator.close().map(({ window, key, value }) => ({ ticker: key, start: window.start, end: window.end, summary: value }));
  }

  snapshot(): PartitionSnapshot {
    return {
      streamTime: this.streamTime,
      open: this.#aggregator.peek().map(({ window, key, value }) => ({ ticker: key, start: window.start, end: window.end, summary: value })),
    };
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
