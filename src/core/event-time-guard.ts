/**
 * The event-time guard of one log partition (docs/event-time.md): a record whose event
 * time is implausible for its partition's stream — a flipped bit, year 2999, 1970 — never
 * moves the stream time (so never a watermark) and never reaches a window; one bad record
 * never makes later good records late, and a stream that really moves is followed.
 *
 * The rule, with B = the maximum skew (`--max-time-skew`) and K = confirmations (3):
 *
 * - **Stream time moves only by agreement.** A record's time becomes the stream time once
 *   the K − 1 records after it agree with it: each lies within [t − tolerance, t + B],
 *   tolerance being the consumer's allowed lateness. Moving to it then makes none of them
 *   late. Stream time moves forward to an agreed time, and back only when K records
 *   agree on a time more than B behind it (history replayed): one or two stray records in
 *   a row, however far off, never move it; a stream that jumped (traffic resuming after a
 *   gap, history replayed) is followed after K records.
 * - **A record counts at once when it lies within B of the stream time.** Otherwise — or
 *   before the partition's first agreement — it is **held**. Whenever the stream time
 *   moves, held records within B of it are released (they count like any other record);
 *   a held record the stream time has moved B away from since it was held is
 *   **implausible** (`implausible-time`, with how far off it was). So a record more than
 *   2 B ahead is never released, and a jump the stream confirms releases its first records.
 * - Memory is bounded: beyond `maxHeld` held records the oldest is implausible. At the end
 *   of the input (`drain`), or when a partition's first records never agreed (`settle`:
 *   the median of what is held becomes the stream time), what cannot be released is
 *   implausible.
 *
 * Generic over the held item (a record, a decoded tick) so every pipeline that takes time
 * from data uses it; pure, deterministic, restorable from a JSON-safe snapshot. The
 * caller reads records of one partition in offset order and calls `check` for each, then
 * `hold` when it returns false.
 */

export interface EventTimeGuardOptions {
  /** B: how far from the stream time an event time counts at once (ms, > 0). */
  readonly maxSkewMs: number;
  /** How far behind a record's time later records may be and still agree with it: the consumer's allowed lateness (0..B). */
  readonly toleranceMs: number;
  /** K: the record and how many after it must agree before the stream time moves to it (default 3). */
  readonly confirmations?: number;
  /** Held records at most (default 1000); beyond, the oldest is implausible. */
  readonly maxHeld?: number;
}

export const DEFAULT_MAX_TIME_SKEW_MS = 10 * 60_000;
export const DEFAULT_TIME_CONFIRMATIONS = 3;
export const DEFAULT_MAX_HELD = 1000;

/** What the guard tells while the stream time moves and held records are released. */
export interface EventTimeReleases<T> {
  /** The stream time moved (before the releases it causes); back only when the whole stream moved back. */
  moved?(streamTime: number, previous: number | null): void;
  /** A held record now within the skew of the stream time: count it. Returning false keeps it held for now. */
  release(item: T, eventTime: number): boolean | void;
}

/** The full sink, with which held records can also be refused. */
export interface EventTimeSink<T> extends EventTimeReleases<T> {
  /** A held record the stream will not confirm: `skewMs` = its time − the stream time (null: no stream time yet). */
  implausible(item: T, eventTime: number, skewMs: number | null): void;
}

export interface HeldEvent<T> {
  readonly eventTime: number;
  /** Stream time when it was held (null: before the partition had one). */
  readonly since: number | null;
  readonly item: T;
}

/** A JSON-safe snapshot: restoring it continues exactly as the uninterrupted guard. */
export interface EventTimeGuardSnapshot<T> {
  readonly streamTime: number | null;
  /** Times of the last records, not yet agreed on (oldest first, fewer than K). */
  readonly recent: readonly number[];
  readonly held: readonly HeldEvent<T>[];
  /** The stream time when the held records were last judged. */
  readonly judgedAt: number | null;
}

interface Held<T> {
  eventTime: number;
  since: number | null;
  item: T;
}

export class EventTimeGuard<T> {
  readonly maxSkewMs: number;
  readonly toleranceMs: number;
  readonly #maxHeld: number;
  /** The times of the last K − 1 records, oldest first (#count of them). */
  readonly #ring: Float64Array;
  #count = 0;
  /** NaN for none: the fields stay plain doubles (a number | null field costs an allocation per move). */
  #streamTime = Number.NaN;
  #judgedAt = Number.NaN;
  #held: Held<T>[] = [];
  #version = 0;

  constructor(options: EventTimeGuardOptions, restore?: EventTimeGuardSnapshot<T>) {
    const k = options.confirmations ?? DEFAULT_TIME_CONFIRMATIONS;
    if (!(options.maxSkewMs > 0)) throw new RangeError(`the maximum time skew must be > 0 ms, got ${options.maxSkewMs}`);
    if (!(options.toleranceMs >= 0 && options.toleranceMs <= options.maxSkewMs)) {
      throw new RangeError(`the tolerance must lie in 0..${options.maxSkewMs} ms (the maximum skew), got ${options.toleranceMs}`);
    }
    if (!Number.isInteger(k) || k < 1) throw new RangeError(`confirmations must be a positive integer, got ${k}`);
    this.maxSkewMs = options.maxSkewMs;
    this.toleranceMs = options.toleranceMs;
    this.#maxHeld = options.maxHeld ?? DEFAULT_MAX_HELD;
    this.#ring = new Float64Array(k - 1);
    if (restore) {
      this.#streamTime = restore.streamTime ?? Number.NaN;
      this.#judgedAt = restore.judgedAt ?? Number.NaN;
      for (const t of k > 1 ? restore.recent.slice(-(k - 1)) : []) this.#ring[this.#count++] = t;
      this.#held = restore.held.map((h) => ({ eventTime: h.eventTime, since: h.since, item: h.item }));
    }
  }

  /** The partition's stream time (agreed by K records, or moved by the caller), or null before the first agreement. */
  get streamTime(): number | null {
    return Number.isNaN(this.#streamTime) ? null : this.#streamTime;
  }

  /** Records held now. */
  get held(): number {
    return this.#held.length;
  }

  /** Grows whenever the held records change (to know when they must be saved again). */
  get version(): number {
    return this.#version;
  }

  /**
   * Judges a record's event time. True: count it now. False: call `hold` with it next.
   * Stream time moves and releases or refusals of held records go to the sink first.
   */
  check(eventTime: number, sink: EventTimeSink<T>): boolean {
    // The ring holds the K − 1 previous times, oldest first: with this one, the oldest has its K − 1 successors.
    const ring = this.#ring;
    const previous = ring.length;
    if (this.#count === previous) {
      const t = previous === 0 ? eventTime : ring[0];
      const low = t - this.toleranceMs;
      const high = t + this.maxSkewMs;
      let agreed = eventTime >= low && eventTime <= high;
      for (let i = 1; agreed && i < previous; i++) agreed = ring[i] >= low && ring[i] <= high;
      for (let i = 1; i < previous; i++) ring[i - 1] = ring[i];
      if (previous > 0) ring[previous - 1] = eventTime;
      // Agreed: forward, or back when the whole stream moved more than B back (NaN: the first agreement).
      const streamTime = this.#streamTime;
      if (agreed && !(t <= streamTime && t >= streamTime - this.maxSkewMs)) this.#move(t, sink);
    } else {
      ring[this.#count++] = eventTime;
    }
    if (this.#held.length > 0 && !sameTime(this.#streamTime, this.#judgedAt)) this.#judge(sink);
    // NaN (no stream time yet) fails both comparisons: held.
    return eventTime - this.#streamTime <= this.maxSkewMs && this.#streamTime - eventTime <= this.maxSkewMs;
  }

  /** Holds the record `check` just refused. */
  hold(eventTime: number, item: T, sink: EventTimeSink<T>): void {
    if (this.#held.length === 0) this.#judgedAt = this.#streamTime; // nothing held to judge until it moves
    this.#held.push({ eventTime, since: this.streamTime, item });
    this.#version++;
    if (this.#held.length > this.#maxHeld) {
      const oldest = this.#held.shift()!;
      sink.implausible(oldest.item, oldest.eventTime, this.#skew(oldest.eventTime));
    }
  }

  /**
   * Moves the stream time forward without a record (a caller's idle timer) and releases
   * what is now within the skew. Nothing is refused here: that waits for the next record.
   */
  advanceTo(streamTime: number, sink: EventTimeReleases<T>): void {
    if (!(streamTime > this.#streamTime)) return; // also when there is no stream time (NaN)
    this.#move(streamTime, sink);
    if (this.#held.length > 0) this.#judge(releasesOnly(sink));
  }

  /**
   * No more records for now (a quiet, caught-up partition; the end of the input): if the
   * partition never had K records agree, the median of what is held becomes its stream
   * time, and what lies within the skew of it is released.
   */
  settle(sink: EventTimeReleases<T>): void {
    if (!Number.isNaN(this.#streamTime) || this.#held.length === 0) return;
    const times = this.#held.map((h) => h.eventTime).sort((a, b) => a - b);
    this.#move(times[(times.length - 1) >> 1], sink);
    this.#judge(releasesOnly(sink));
  }

  /** End of the input: settles, then every record still held is implausible. */
  drain(sink: EventTimeSink<T>): void {
    this.settle(sink);
    if (this.#held.length > 0 && !sameTime(this.#streamTime, this.#judgedAt)) this.#judge(sink);
    const rest = this.#held;
    if (rest.length === 0) return;
    this.#held = [];
    this.#version++;
    for (const h of rest) sink.implausible(h.item, h.eventTime, this.#skew(h.eventTime));
  }

  /** How many numbers `savePosition` writes: 3 + K − 1. */
  get positionSize(): number {
    return 3 + this.#ring.length;
  }

  /**
   * Writes the guard's position — everything but the held records: stream time, when the
   * held records were last judged, and the times not yet agreed on — into `into` from `at`
   * (`positionSize` numbers, no allocation: taken before every record where a caller may
   * have to resume).
   */
  savePosition(into: Float64Array, at: number): void {
    into[at] = this.#streamTime;
    into[at + 1] = this.#judgedAt;
    into[at + 2] = this.#count;
    const ring = this.#ring;
    for (let i = 0; i < ring.length; i++) into[at + 3 + i] = ring[i];
  }

  /** A position written by `savePosition`, as a snapshot holding nothing. */
  static positionSnapshot(from: Float64Array, at: number): EventTimeGuardSnapshot<never> {
    const recent: number[] = [];
    for (let i = 0; i < from[at + 2]; i++) recent.push(from[at + 3 + i]);
    return { streamTime: Number.isNaN(from[at]) ? null : from[at], recent, held: [], judgedAt: Number.isNaN(from[at + 1]) ? null : from[at + 1] };
  }

  snapshot(): EventTimeGuardSnapshot<T> {
    const recent: number[] = [];
    for (let i = 0; i < this.#count; i++) recent.push(this.#ring[i]);
    return { streamTime: this.streamTime, recent, held: this.#held.map((h) => ({ ...h })), judgedAt: Number.isNaN(this.#judgedAt) ? null : this.#judgedAt };
  }

  /** The held records, oldest first (for a caller that saves them). */
  heldItems(): T[] {
    return this.#held.map((h) => h.item);
  }

  #skew(eventTime: number): number | null {
    return Number.isNaN(this.#streamTime) ? null : eventTime - this.#streamTime;
  }

  #move(streamTime: number, sink: EventTimeReleases<T>): void {
    const previous = this.#streamTime;
    this.#streamTime = streamTime;
    if (sink.moved) sink.moved(streamTime, Number.isNaN(previous) ? null : previous);
  }

  /** Releases what lies within the skew of the stream time; with a full sink, refuses what aged out. */
  #judge(sink: EventTimeReleases<T> & Partial<Pick<EventTimeSink<T>, 'implausible'>>): void {
    const streamTime = this.#streamTime;
    const b = this.maxSkewMs;
    const kept: Held<T>[] = [];
    let changed = false;
    for (const h of this.#held) {
      if (Math.abs(h.eventTime - streamTime) <= b && sink.release(h.item, h.eventTime) !== false) {
        changed = true;
      } else if (h.since === null) {
        h.since = streamTime; // held before the first stream time: it ages from here
        kept.push(h);
      } else if (sink.implausible && Math.abs(streamTime - h.since) >= b) {
        changed = true;
        sink.implausible(h.item, h.eventTime, h.eventTime - streamTime);
      } else {
        kept.push(h);
      }
    }
    this.#held = kept;
    if (changed) this.#version++;
    if (sink.implausible) this.#judgedAt = streamTime;
  }
}

/** Equal times, NaN (none) included. */
function sameTime(a: number, b: number): boolean {
  return a === b || (Number.isNaN(a) && Number.isNaN(b));
}

/** The sink without its refusals: what `advanceTo` and `settle` may do. */
function releasesOnly<T>(sink: EventTimeReleases<T>): EventTimeReleases<T> {
  return { moved: (streamTime, previous) => sink.moved?.(streamTime, previous), release: (item, eventTime) => sink.release(item, eventTime) };
}

/** How far off a time is, for people: "980 years ahead of", "2.5 hours behind", "12 ms ahead of". */
export function describeSkew(skewMs: number): string {
  const units: Array<[string, number]> = [['years', 365.25 * 86_400_000], ['days', 86_400_000], ['hours', 3_600_000], ['minutes', 60_000], ['seconds', 1000]];
  const size = Math.abs(skewMs);
  const [unit, ms] = units.find(([, ms]) => size >= ms) ?? ['ms', 1];
  const amount = unit === 'ms' ? String(size) : String(Math.round((size / ms) * 10) / 10);
  return `${amount} ${unit} ${skewMs >= 0 ? 'ahead of' : 'behind'}`;
}
