/**
 * Event-time windows, after Kafka Streams: a window is an immutable value; a tumbling
 * window is a hopping window whose advance equals its size, aligned to the epoch.
 * Times are epoch milliseconds. Pure: no clock, no I/O.
 */

export interface Window {
  /** Inclusive start. */
  readonly start: number;
  /** Exclusive end. */
  readonly end: number;
}

export class TumblingWindows {
  readonly sizeMs: number;

  constructor(sizeMs: number) {
    if (!Number.isSafeInteger(sizeMs) || sizeMs <= 0) throw new RangeError(`window size must be a positive integer of ms, got ${sizeMs}`);
    this.sizeMs = sizeMs;
  }

  /** The one window that holds `timestamp` (floor division, so negative times work too). */
  windowFor(timestamp: number): Window {
    const start = Math.floor(timestamp / this.sizeMs) * this.sizeMs;
    return { start, end: start + this.sizeMs };
  }
}

/**
 * Stream time and the watermark derived from it: `watermark = max event time − allowed
 * lateness`. A window whose end is at or before the watermark is closed; a record that
 * falls in a closed window is late.
 */
export class Watermark {
  readonly allowedLatenessMs: number;
  #streamTime = Number.NEGATIVE_INFINITY;

  constructor(allowedLatenessMs: number) {
    if (!(allowedLatenessMs >= 0)) throw new RangeError(`allowed lateness must be >= 0, got ${allowedLatenessMs}`);
    this.allowedLatenessMs = allowedLatenessMs;
  }

  /** Largest event time seen so far. */
  get streamTime(): number {
    return this.#streamTime;
  }

  get current(): number {
    return this.#streamTime - this.allowedLatenessMs;
  }

  observe(eventTime: number): void {
    if (eventTime > this.#streamTime) this.#streamTime = eventTime;
  }

  /** Moves stream time forward without a record (the idle timer); never backwards. */
  advanceTo(streamTime: number): void {
    this.observe(streamTime);
  }

  /** Sets stream time, backwards too: the whole stream moved back (an event-time guard decided so). */
  resetTo(streamTime: number): void {
    this.#streamTime = streamTime;
  }

  isClosed(window: Window): boolean {
    return window.end <= this.current;
  }
}

export interface ClosedWindow<K, A> {
  window: Window;
  key: K;
  value: A;
}

export interface WindowAggregatorOptions<K, A, V> {
  windows: TumblingWindows;
  watermark: Watermark;
  /** False: records do not move stream time, the owner moves the watermark (after an event-time guard). Default true. */
  recordsMoveStreamTime?: boolean;
  init(key: K, window: Window): A;
  add(accumulator: A, value: V): A;
}

/**
 * The window-aggregate operator: keyed, event-time, tumbling. Records are added under the
 * current watermark; records for already-closed windows are counted as late (never
 * thrown, never merged); `close()` emits every window the watermark has passed, oldest
 * first. State is only the open windows.
 */
export class WindowAggregator<K, A, V> {
  readonly #options: WindowAggregatorOptions<K, A, V>;
  readonly #open = new Map<number, Map<K, A>>();
  #late = 0;

  constructor(options: WindowAggregatorOptions<K, A, V>) {
    this.#options = options;
  }

  get late(): number {
    return this.#late;
  }

  get openWindows(): number {
    return this.#open.size;
  }

  /** Adds one record. Returns false (and counts it) when its window is already closed. */
  add(eventTime: number, key: K, value: V): boolean {
    const { windows, watermark, init, add } = this.#options;
    const window = windows.windowFor(eventTime);
    if (watermark.isClosed(window)) {
      this.#late++;
      return false;
    }
    if (this.#options.recordsMoveStreamTime !== false) watermark.observe(eventTime);
    let byKey = this.#open.get(window.start);
    if (!byKey) this.#open.set(window.start, (byKey = new Map()));
    byKey.set(key, add(byKey.get(key) ?? init(key, window), value));
    return true;
  }

  /** Removes and returns the windows the watermark has passed, ordered by start then insertion. */
  close(): ClosedWindow<K, A>[] {
    return this.#drain((window) => this.#options.watermark.isClosed(window));
  }

  /** Removes and returns every open window (end of input). */
  flush(): ClosedWindow<K, A>[] {
    return this.#drain(() => true);
  }

  /** Open windows without removing them (for checkpoints and dashboards). */
  peek(): ClosedWindow<K, A>[] {
    const out: ClosedWindow<K, A>[] = [];
    for (const start of [...this.#open.keys()].sort((a, b) => a - b)) {
      const window = { start, end: start + this.#options.windows.sizeMs };
      for (const [key, value] of this.#open.get(start)!) out.push({ window, key, value });
    }
    return out;
  }

  #drain(shouldClose: (window: Window) => boolean): ClosedWindow<K, A>[] {
    const out: ClosedWindow<K, A>[] = [];
    for (const start of [...this.#open.keys()].sort((a, b) => a - b)) {
      const window = { start, end: start + this.#options.windows.sizeMs };
      if (!shouldClose(window)) break;
      for (const [key, value] of this.#open.get(start)!) out.push({ window, key, value });
      this.#open.delete(start);
    }
    return out;
  }
}
