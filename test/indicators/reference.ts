/**
 * Independent reference computations for the indicator tests: direct windowed formulas
 * over the whole price history, no incremental state. Slow on purpose (O(N) per point).
 */

/** Deterministic PRNG (mulberry32) so every run sees the same walks. */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export function gaussian(random: () => number): () => number {
  return () => {
    const u = 1 - random();
    const v = random();
    return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * v);
  };
}

/** A geometric random walk rounded to cents (so equal consecutive prices happen too). */
export function randomWalk(random: () => number, length: number, start = 100, sigma = 0.01): number[] {
  const normal = gaussian(random);
  const prices: number[] = [];
  let p = start;
  for (let i = 0; i < length; i++) {
    p = Math.max(0.01, p * Math.exp(sigma * normal()));
    prices.push(Math.round(p * 100) / 100);
  }
  return prices;
}

/**
 * EMA of window N at index i, in closed form: the mean of the first i + 1 points while
 * i < N, else (1 − a)^(i − N + 1) · SMA(first N) + Σ_{k=N..i} a (1 − a)^(i − k) x_k.
 */
export function referenceEma(prices: readonly number[], window: number, i: number): number {
  if (i < window) {
    let sum = 0;
    for (let k = 0; k <= i; k++) sum += prices[k];
    return sum / (i + 1);
  }
  const a = 2 / (window + 1);
  let sma = 0;
  for (let k = 0; k < window; k++) sma += prices[k];
  sma /= window;
  let value = Math.pow(1 - a, i - window + 1) * sma;
  for (let k = window; k <= i; k++) value += a * Math.pow(1 - a, i - k) * prices[k];
  return value;
}

/** Sample standard deviation of the log returns among the last N prices up to index i. */
export function referenceVolatility(prices: readonly number[], window: number, i: number): number | null {
  const first = Math.max(0, i - window + 1);
  const returns: number[] = [];
  for (let k = first + 1; k <= i; k++) returns.push(Math.log(prices[k] / prices[k - 1]));
  return sampleStdDev(returns);
}

export function sampleStdDev(values: readonly number[]): number | null {
  if (values.length < 2) return null;
  let sum = 0;
  for (const v of values) sum += v;
  const mean = sum / values.length;
  let squares = 0;
  for (const v of values) squares += (v - mean) ** 2;
  return Math.sqrt(squares / (values.length - 1));
}

export function referencePoints(window: number, i: number): number {
  return Math.min(i + 1, window);
}

/** |a − b| within `relative` of the larger magnitude (or `absolute`, for values near 0). */
export function close(a: number | null, b: number | null, relative = 1e-9, absolute = 1e-15): boolean {
  if (a === null || b === null) return a === b;
  return Math.abs(a - b) <= Math.max(absolute, relative * Math.max(Math.abs(a), Math.abs(b)));
}
