/**
 * The sanity bound on one symbol's prices: a price more than a factor `maxRatio` above or
 * below the symbol's reference level is implausible (1e300 among prices near 238), and
 * must never reach a mean, an EMA or a window. Outliers are another matter: a price 4
 * standard deviations away is data, and `stats` reports it as an outlier.
 *
 * The reference can be poisoned by neither the first prices nor a stray one, and still
 * follows a real change of level (a 20:1 split):
 *
 * - A price within the bound is taken at once. The reference is the median of the last
 *   block of taken prices (`block`, 32), so it follows drift.
 * - A price outside it (or any price before there is a reference) **waits**. A price
 *   within the bound that comes while others wait shows the level has not moved: the
 *   waiting ones are implausible.
 * - When `agreement` (5) prices wait in a row, they decide among themselves: if more than
 *   half of them lie within the bound of their median, that median becomes the reference
 *   (the level really moved, or this is the symbol's first level) and those prices are
 *   taken, in their order; the others are implausible. So the first prices of a symbol
 *   set its reference only by a majority of five, and one or two absurd ones among them
 *   are refused.
 * - At the end of the input, waiting prices decide the same way if the symbol has no
 *   reference yet (a symbol with only three prices still gets them counted), else they
 *   are implausible.
 *
 * Pure and deterministic: the same prices in the same order give the same decisions,
 * which is what lets `stats` take a second pass and `indicators` restore a snapshot.
 */

export interface PriceLevelOptions {
  /** A price above reference × maxRatio or below reference / maxRatio is implausible (> 1). */
  readonly maxRatio: number;
  /** Prices waiting in a row that decide a new reference (default 5). */
  readonly agreement?: number;
  /** Taken prices whose median becomes the next reference (default 32). */
  readonly block?: number;
}

export const DEFAULT_MAX_PRICE_RATIO = 10;
export const DEFAULT_PRICE_AGREEMENT = 5;
export const DEFAULT_PRICE_BLOCK = 32;

/** Where decisions about waiting prices go (synchronously, in their order). */
export interface PriceLevelSink<T> {
  /** A waiting price is taken: count it like any other. */
  take(item: T, price: number): void;
  /** A waiting price is implausible; `reference` is the level it was judged against, if any. */
  implausible(item: T, price: number, reference: number | null): void;
}

export interface WaitingPrice<T> {
  readonly price: number;
  readonly item: T;
}

/** A JSON-safe snapshot (numbers round-trip exactly). */
export interface PriceLevelSnapshot<T> {
  readonly reference: number | null;
  readonly block: readonly number[];
  readonly waiting: readonly WaitingPrice<T>[];
}

export class PriceLevel<T> {
  readonly #maxRatio: number;
  readonly #agreement: number;
  readonly #block: Float64Array;
  #blockLength = 0;
  /** NaN for none: the field stays a plain double. */
  #reference = Number.NaN;
  /** Scratch space for the block's median. */
  readonly #scratch: Float64Array;
  #waiting: WaitingPrice<T>[] = [];

  constructor(options: PriceLevelOptions, restore?: PriceLevelSnapshot<T>) {
    if (!(options.maxRatio > 1)) throw new RangeError(`the price ratio bound must be > 1, got ${options.maxRatio}`);
    this.#maxRatio = options.maxRatio;
    this.#agreement = options.agreement ?? DEFAULT_PRICE_AGREEMENT;
    this.#block = new Float64Array(options.block ?? DEFAULT_PRICE_BLOCK);
    this.#scratch = new Float64Array(this.#block.length);
    if (!(this.#agreement >= 1) || this.#block.length < 1) throw new RangeError('agreement and block must be at least 1');
    if (restore) {
      this.#reference = restore.reference ?? Number.NaN;
      for (const price of restore.block) this.#block[this.#blockLength++] = price;
      this.#waiting = [...restore.waiting];
    }
  }

  /** The reference level, or null before the first prices agreed on one. */
  get reference(): number | null {
    return Number.isNaN(this.#reference) ? null : this.#reference;
  }

  /** Prices waiting for a decision. */
  get waiting(): number {
    return this.#waiting.length;
  }

  /**
   * Judges a price: true means take it now. False means it must wait: call `wait` with
   * it next. Decisions on prices already waiting go to the sink first.
   */
  check(price: number, sink: PriceLevelSink<T>): boolean {
    const reference = this.#reference;
    // NaN (no reference yet) fails both comparisons: the price waits.
    if (!(price <= reference * this.#maxRatio && price * this.#maxRatio >= reference)) return false;
    if (this.#waiting.length > 0) {
      // A plausible price: the level has not moved, the waiting ones were strays.
      for (const w of this.#waiting) sink.implausible(w.item, w.price, reference);
      this.#waiting = [];
    }
    this.#taken(price);
    return true;
  }

  /** Makes a price that `check` refused wait (the item is kept until it is decided). */
  wait(price: number, item: T, sink: PriceLevelSink<T>): void {
    this.#waiting.push({ price, item });
    if (this.#waiting.length >= this.#agreement) this.#decide(sink);
  }

  /** End of input: decides every waiting price. */
  drain(sink: PriceLevelSink<T>): void {
    if (this.#waiting.length === 0) return;
    if (Number.isNaN(this.#reference)) {
      this.#decide(sink);
      return;
    }
    for (const w of this.#waiting) sink.implausible(w.item, w.price, this.#reference);
    this.#waiting = [];
  }

  snapshot(): PriceLevelSnapshot<T> {
    return { reference: this.reference, block: Array.from(this.#block.subarray(0, this.#blockLength)), waiting: [...this.#waiting] };
  }

  #decide(sink: PriceLevelSink<T>): void {
    const waiting = this.#waiting;
    this.#waiting = [];
    const median = lowerMedian(waiting.map((w) => w.price));
    const ratio = this.#maxRatio;
    const agrees = (price: number) => price <= median * ratio && price * ratio >= median;
    let agreeing = 0;
    for (const w of waiting) if (agrees(w.price)) agreeing++;
    if (agreeing * 2 <= waiting.length) {
      for (const w of waiting) sink.implausible(w.item, w.price, this.reference);
      return;
    }
    this.#reference = median;
    this.#blockLength = 0;
    for (const w of waiting) {
      if (agrees(w.price)) {
        this.#taken(w.price);
        sink.take(w.item, w.price);
      } else {
        sink.implausible(w.item, w.price, median);
      }
    }
  }

  #taken(price: number): void {
    const block = this.#block;
    block[this.#blockLength++] = price;
    if (this.#blockLength === block.length) {
      this.#scratch.set(block);
      this.#reference = select(this.#scratch, (block.length - 1) >> 1);
      this.#blockLength = 0;
    }
  }
}

/** The k-th smallest value (Hoare's quickselect, in place): the block's median without sorting it. */
function select(a: Float64Array, k: number): number {
  let lo = 0;
  let hi = a.length - 1;
  while (lo < hi) {
    const pivot = a[(lo + hi) >> 1];
    let i = lo;
    let j = hi;
    while (i <= j) {
      while (a[i] < pivot) i++;
      while (a[j] > pivot) j--;
      if (i <= j) {
        const t = a[i];
        a[i++] = a[j];
        a[j--] = t;
      }
    }
    if (k <= j) hi = j;
    else if (k >= i) lo = i;
    else return a[k];
  }
  return a[k];
}

function lowerMedian(values: number[]): number {
  values.sort((a, b) => a - b);
  return values[(values.length - 1) >> 1];
}
