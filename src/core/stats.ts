/**
 * Numerically stable running statistics: Welford's update for one value and Chan et al.'s
 * merge of two partial results, both on data shifted by the first value seen. Prices near
 * 1e9 that move by cents would otherwise lose their variance to rounding: the naive
 * sum-of-squares formula cancels catastrophically, and even plain Welford carries the
 * rounding of a 1e9-sized mean into every update. Subtracting a nearby shift is exact
 * (Sterbenz), so the accumulators only ever see small numbers.
 */
export class RunningStats {
  count = 0;
  /** Sum of squared deviations from the mean. */
  m2 = 0;
  min = Number.POSITIVE_INFINITY;
  max = Number.NEGATIVE_INFINITY;
  #shift = 0;
  /** Mean of (x − shift). */
  #meanShifted = 0;

  get mean(): number {
    return this.count === 0 ? Number.NaN : this.#shift + this.#meanShifted;
  }

  push(x: number): void {
    if (this.count === 0) this.#shift = x;
    this.count++;
    const d = x - this.#shift;
    const delta = d - this.#meanShifted;
    this.#meanShifted += delta / this.count;
    this.m2 += delta * (d - this.#meanShifted);
    if (x < this.min) this.min = x;
    if (x > this.max) this.max = x;
  }

  /** Chan's parallel merge: combines another partial result into this one. */
  merge(other: RunningStats): this {
    if (other.count === 0) return this;
    if (this.count === 0) {
      this.count = other.count;
      this.m2 = other.m2;
      this.min = other.min;
      this.max = other.max;
      this.#shift = other.#shift;
      this.#meanShifted = other.#meanShifted;
      return this;
    }
    const count = this.count + other.count;
    // The other mean in this one's shifted frame: the shifts are close, so this stays exact-ish.
    const otherMean = other.#shift - this.#shift + other.#meanShifted;
    const delta = otherMean - this.#meanShifted;
    this.#meanShifted += (delta * other.count) / count;
    this.m2 += other.m2 + (delta * delta * this.count * other.count) / count;
    this.count = count;
    if (other.min < this.min) this.min = other.min;
    if (other.max > this.max) this.max = other.max;
    return this;
  }

  /** Sample variance (n − 1) by default; population (n) on request. NaN below 2 (sample) or 1 values. */
  variance(kind: 'sample' | 'population' = 'sample'): number {
    const n = kind === 'sample' ? this.count - 1 : this.count;
    return n > 0 ? this.m2 / n : Number.NaN;
  }

  stddev(kind: 'sample' | 'population' = 'sample'): number {
    return Math.sqrt(this.variance(kind));
  }
}

/**
 * Exact counts of distinct values, for the robust (median/MAD) rule. Memory grows with the
 * number of distinct values, not with the number of records: prices have two decimals, so
 * a symbol's prices take a few thousand distinct values however long the topic is.
 */
export class ValueCounts {
  readonly #counts = new Map<number, number>();
  #total = 0;

  push(x: number): void {
    this.#counts.set(x, (this.#counts.get(x) ?? 0) + 1);
    this.#total++;
  }

  get distinct(): number {
    return this.#counts.size;
  }

  median(): number {
    return weightedMedian([...this.#counts].sort((a, b) => a[0] - b[0]), this.#total);
  }

  /** Mean absolute deviation from the median (the fallback scale when the MAD is 0). */
  meanAbsoluteDeviation(): number {
    const median = this.median();
    let sum = 0;
    for (const [value, count] of this.#counts) sum += Math.abs(value - median) * count;
    return this.#total > 0 ? sum / this.#total : Number.NaN;
  }

  /** Median absolute deviation from the median. */
  mad(): number {
    const median = this.median();
    const deviations = new Map<number, number>();
    for (const [value, count] of this.#counts) {
      const d = Math.abs(value - median);
      deviations.set(d, (deviations.get(d) ?? 0) + count);
    }
    return weightedMedian([...deviations].sort((a, b) => a[0] - b[0]), this.#total);
  }
}

/** Median of sorted (value, count) pairs: the middle value, or the mean of the two middles. */
function weightedMedian(sorted: Array<[number, number]>, total: number): number {
  if (total === 0) return Number.NaN;
  const lowRank = Math.floor((total - 1) / 2);
  const highRank = Math.floor(total / 2);
  let seen = 0;
  let low = Number.NaN;
  for (const [value, count] of sorted) {
    if (Number.isNaN(low) && lowRank < seen + count) low = value;
    if (highRank < seen + count) return (low + value) / 2;
    seen += count;
  }
  return low;
}
