import type { RunningStats, ValueCounts } from './stats.ts';
import { formatTs } from './prices.ts';

/**
 * Outlier rules over one symbol's statistics.
 * - `zscore`: |price − mean| > threshold × stddev (the default, threshold 3).
 * - `mad`: the modified z-score of Iglewicz and Hoaglin, 0.6745 × |price − median| / MAD >
 *   threshold (3.5 recommended). Robust: a few huge anomalies do not widen the band that
 *   should catch them. When more than half the prices are equal (MAD = 0), the scale falls
 *   back to 1.2533 × the mean absolute deviation, as they suggest.
 */
export type OutlierRule =
  | { kind: 'zscore'; threshold: number; stddev: 'sample' | 'population' }
  | { kind: 'mad'; threshold: number };

export function describeRule(rule: OutlierRule): string {
  return rule.kind === 'zscore'
    ? `|price - mean| > ${rule.threshold} x ${rule.stddev} stddev`
    : `0.6745 x |price - median| / MAD > ${rule.threshold}`;
}

/** Returns the predicate for one symbol; it never flags anything when the scale is 0 or undefined. */
export function outlierTest(rule: OutlierRule, stats: RunningStats, counts?: ValueCounts): (price: number) => boolean {
  if (rule.kind === 'zscore') {
    const limit = rule.threshold * stats.stddev(rule.stddev);
    if (!(limit > 0)) return () => false;
    const mean = stats.mean;
    return (price) => Math.abs(price - mean) > limit;
  }
  if (!counts) throw new Error('the mad rule needs value counts');
  const median = counts.median();
  const mad = counts.mad();
  const scale = mad > 0 ? mad / 0.6745 : 1.2533 * counts.meanAbsoluteDeviation();
  if (!(scale > 0)) return () => false;
  const limit = rule.threshold * scale;
  return (price) => Math.abs(price - median) > limit;
}

/** One outlier as reported: its UTC time (`yyyy-mm-dd hh:mm:ss.fff`), symbol and price. */
export interface Outlier {
  ts: string;
  symbol: string;
  price: number;
}

/**
 * Outliers kept flat: time, price and symbol in typed arrays (20 bytes each, no object or
 * string per outlier), so a result of a million outliers is ~20 MB that the garbage
 * collector never walks. `sort()` puts them in report order (time, then symbol, then price);
 * `Outlier` objects are made only when read (`at`, `slice`, iteration, `toJSON`), a slice at
 * a time by writers.
 */
export class OutlierList implements Iterable<Outlier> {
  #times = new Float64Array(256);
  #prices = new Float64Array(256);
  #symbols = new Uint32Array(256);
  readonly #names: string[] = [];
  readonly #ids = new Map<string, number>();
  #length = 0;

  get length(): number {
    return this.#length;
  }

  /** The distinct symbols among the outliers. */
  get symbols(): readonly string[] {
    return this.#names;
  }

  push(symbol: string, price: number, timeMs: number): void {
    if (this.#length === this.#times.length) this.#grow(Math.max(256, this.#length * 2));
    let id = this.#ids.get(symbol);
    if (id === undefined) {
      id = this.#names.push(symbol) - 1;
      this.#ids.set(symbol, id);
    }
    const i = this.#length++;
    this.#times[i] = Math.floor(timeMs);
    this.#prices[i] = price;
    this.#symbols[i] = id;
  }

  /** Report order: time (to the millisecond shown), then symbol, then price. */
  sort(): void {
    const n = this.#length;
    const ranks = new Uint32Array(this.#names.length);
    [...this.#names.keys()].sort((a, b) => (this.#names[a]! < this.#names[b]! ? -1 : this.#names[a]! > this.#names[b]! ? 1 : 0)).forEach((id, rank) => (ranks[id] = rank));
    const times = this.#times;
    const prices = this.#prices;
    const symbols = this.#symbols;
    const order = new Uint32Array(n).map((_, i) => i);
    order.sort((a, b) => times[a]! - times[b]! || ranks[symbols[a]!]! - ranks[symbols[b]!]! || prices[a]! - prices[b]!);
    const sortedTimes = new Float64Array(n);
    const sortedPrices = new Float64Array(n);
    const sortedSymbols = new Uint32Array(n);
    for (let i = 0; i < n; i++) {
      sortedTimes[i] = times[order[i]!]!;
      sortedPrices[i] = prices[order[i]!]!;
      sortedSymbols[i] = symbols[order[i]!]!;
    }
    this.#times = sortedTimes;
    this.#prices = sortedPrices;
    this.#symbols = sortedSymbols;
  }

  price(i: number): number {
    return this.#prices[i]!;
  }

  symbol(i: number): string {
    return this.#names[this.#symbols[i]!]!;
  }

  timeMs(i: number): number {
    return this.#times[i]!;
  }

  at(i: number): Outlier {
    return { ts: formatTs(this.#times[i]!), symbol: this.symbol(i), price: this.#prices[i]! };
  }

  slice(start: number, end = this.#length): Outlier[] {
    const slice: Outlier[] = [];
    for (let i = Math.max(0, start); i < Math.min(end, this.#length); i++) slice.push(this.at(i));
    return slice;
  }

  *[Symbol.iterator](): IterableIterator<Outlier> {
    for (let i = 0; i < this.#length; i++) yield this.at(i);
  }

  /** As an array of outliers: JSON.stringify of a report writes them as before. */
  toJSON(): Outlier[] {
    return this.slice(0);
  }

  #grow(capacity: number): void {
    const times = new Float64Array(capacity);
    const prices = new Float64Array(capacity);
    const symbols = new Uint32Array(capacity);
    times.set(this.#times.subarray(0, this.#length));
    prices.set(this.#prices.subarray(0, this.#length));
    symbols.set(this.#symbols.subarray(0, this.#length));
    this.#times = times;
    this.#prices = prices;
    this.#symbols = symbols;
  }
}
