/**
 * Moving volatility over the last N points: the sample standard deviation (divisor n − 1)
 * of the log returns r_i = ln(p_i / p_(i−1)) between consecutive prices among the last N
 * prices. A full window of N prices holds N − 1 returns. Undefined (null) until the
 * window holds 3 prices (2 returns); not annualised or scaled.
 *
 * O(1) per update: a ring of the last N − 1 returns with a running mean and sum of
 * squared deviations (Welford's update, and its exact inverse when the oldest return
 * slides out). Rounding error of the sliding update would add up over a long stream, so
 * every N − 1 slides (once per turn of the ring) the mean and the squared deviations are
 * recomputed exactly from the ring with two passes: O(N) every N − 1 updates, still O(1)
 * amortised, and the error can never build up over more than one turn of the ring.
 * The same recomputation runs at once when the sum of squared deviations collapses (a
 * huge return leaving a calm window), where the sliding update would cancel the digits
 * that matter: on real prices that is once when a jump (a split, a bad tick) leaves.
 *
 * The snapshot holds every number the operator uses (including where it is in that
 * recomputation cycle), so a restored operator continues bit for bit as if it had never
 * stopped.
 */

export interface VolatilitySnapshot {
  /** The last price seen (null before the first). */
  readonly lastPrice: number | null;
  /** The returns in the window, oldest first. */
  readonly returns: readonly number[];
  readonly mean: number;
  readonly m2: number;
  /** Slides since the last exact recomputation. */
  readonly slides: number;
  /** The largest m2 since the last exact recomputation. */
  readonly peak: number;
}

/**
 * When m2 falls below this share of its peak since the last exact recomputation, the
 * sliding update has cancelled that many leading digits: recompute at once. Rounding
 * error of the update is about ε · peak, so the relative error stays near ε / ratio.
 */
const CANCELLATION_RATIO = 1e-4;

export class MovingVolatility {
  /** Prices in a full window. */
  readonly window: number;
  readonly #ring: Float64Array;
  #head = 0; // index of the oldest return once the ring is full; next write slot otherwise
  #count = 0;
  #lastPrice = Number.NaN;
  #mean = 0;
  #m2 = 0;
  #slides = 0;
  #peak = 0; // largest m2 since the last exact recomputation

  constructor(window: number, snapshot?: VolatilitySnapshot) {
    if (!Number.isSafeInteger(window) || window < 3) throw new RangeError(`volatility window must be an integer of at least 3 prices, got ${window}`);
    this.window = window;
    this.#ring = new Float64Array(window - 1);
    if (snapshot) this.#restore(snapshot);
  }

  /** Adds a price (> 0); returns the volatility of the window, or null while it holds fewer than 3 prices. */
  update(price: number): number | null {
    if (!(price > 0) || !Number.isFinite(price)) throw new RangeError(`price must be a positive finite number, got ${price}`);
    const previous = this.#lastPrice;
    this.#lastPrice = price;
    if (Number.isNaN(previous)) return null;
    const r = Math.log(price / previous);
    const capacity = this.#ring.length;
    if (this.#count < capacity) {
      this.#ring[this.#count] = r;
      this.#count++;
      const delta = r - this.#mean;
      this.#mean += delta / this.#count;
      this.#m2 += delta * (r - this.#mean);
      this.#peak = this.#m2;
    } else {
      const old = this.#ring[this.#head];
      this.#ring[this.#head] = r;
      this.#head = this.#head + 1 === capacity ? 0 : this.#head + 1;
      if (++this.#slides >= capacity) {
        this.#recompute();
      } else {
        const oldMean = this.#mean;
        this.#mean += (r - old) / capacity;
        this.#m2 += (r - old) * (r - this.#mean + old - oldMean);
        if (this.#m2 > this.#peak) this.#peak = this.#m2;
        // An outlier leaving the window cancels most of m2, and with it the digits that
        // were right: recompute now rather than at the end of the turn.
        else if (this.#m2 < this.#peak * CANCELLATION_RATIO) this.#recompute();
      }
    }
    return this.value;
  }

  get value(): number | null {
    return this.#count < 2 ? null : Math.sqrt(this.#m2 / (this.#count - 1));
  }

  /** Prices the window holds: min(prices seen, N). */
  get points(): number {
    return Number.isNaN(this.#lastPrice) ? 0 : this.#count + 1;
  }

  /** The returns in the window, oldest first. */
  returns(): number[] {
    const out: number[] = [];
    const capacity = this.#ring.length;
    const start = this.#count < capacity ? 0 : this.#head;
    for (let i = 0; i < this.#count; i++) out.push(this.#ring[(start + i) % capacity]);
    return out;
  }

  snapshot(): VolatilitySnapshot {
    return {
      lastPrice: Number.isNaN(this.#lastPrice) ? null : this.#lastPrice,
      returns: this.returns(),
      mean: this.#mean,
      m2: this.#m2,
      slides: this.#slides,
      peak: this.#peak,
    };
  }

  #recompute(): void {
    // Oldest first, as a restored ring is laid out: the same sums to the last bit.
    const ring = this.#ring;
    const n = ring.length;
    let sum = 0;
    for (let i = 0, j = this.#head; i < n; i++, j = j + 1 === n ? 0 : j + 1) sum += ring[j];
    const mean = sum / n;
    let m2 = 0;
    for (let i = 0, j = this.#head; i < n; i++, j = j + 1 === n ? 0 : j + 1) {
      const d = ring[j] - mean;
      m2 += d * d;
    }
    this.#mean = mean;
    this.#m2 = m2;
    this.#peak = m2;
    this.#slides = 0;
  }

  #restore(snapshot: VolatilitySnapshot): void {
    const { returns } = snapshot;
    if (returns.length > this.#ring.length) throw new RangeError(`volatility snapshot holds ${returns.length} returns, window holds ${this.#ring.length}`);
    if (snapshot.lastPrice === null) {
      if (returns.length > 0) throw new RangeError('volatility snapshot has returns but no last price');
      return;
    }
    this.#lastPrice = snapshot.lastPrice;
    this.#ring.set(returns);
    this.#count = returns.length;
    this.#head = 0; // the ring is laid out oldest first, whether full or not
    this.#mean = snapshot.mean;
    this.#m2 = snapshot.m2;
    this.#slides = snapshot.slides;
    this.#peak = snapshot.peak;
  }
}
