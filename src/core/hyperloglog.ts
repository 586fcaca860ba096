/**
 * HyperLogLog distinct counting (Flajolet et al. 2007) with Ertl's improved estimator
 * ("New cardinality estimation algorithms for HyperLogLog sketches", 2017), which needs no
 * empirical bias tables and stays unbiased from 0 to billions.
 *
 * Precision p gives m = 2^p one-byte registers and a relative standard error of about
 * 1.04 / sqrt(m): p = 14 → 16 KiB per sketch and ~0.81% (measured in
 * test/core/hyperloglog.test.ts). Values are hashed to 64 bits (two MurmurHash3 passes),
 * so hash collisions do not matter below ~10^12 distinct values.
 */

/** Distinct counting, exact or approximate. */
export interface DistinctCounter {
  add(value: string): void;
  /** The number of distinct values added (an estimate for sketches). */
  count(): number;
}

export class ExactDistinct implements DistinctCounter {
  readonly #values = new Set<string>();
  add(value: string): void {
    this.#values.add(value);
  }
  count(): number {
    return this.#values.size;
  }
}

export class HyperLogLog implements DistinctCounter {
  readonly precision: number;
  readonly registers: Uint8Array;
  readonly #rankBits: number;

  constructor(precision = 14) {
    if (!Number.isInteger(precision) || precision < 4 || precision > 18) throw new RangeError(`HyperLogLog precision must be an integer in 4..18, got ${precision}`);
    this.precision = precision;
    this.registers = new Uint8Array(1 << precision);
    this.#rankBits = 64 - precision;
  }

  /** The expected relative standard error of `count()`. */
  get standardError(): number {
    return 1.04 / Math.sqrt(this.registers.length);
  }

  add(value: string): void {
    // Two seeded passes, each finalised with the other mixed in: a single pass showed a
    // measurably higher error (~1.0% instead of 0.81%) on sequential ids.
    const a = murmur3(value, 0x9747b28c);
    const b = murmur3(value, 0x5bd1e995);
    this.addHash(fmix(a ^ Math.imul(b, 0x9e3779b1)), fmix(b ^ Math.imul(a, 0x85ebca77)));
  }

  /** Adds a 64-bit hash given as its high and low 32-bit halves. */
  addHash(high: number, low: number): void {
    const p = this.precision;
    const index = high >>> (32 - p);
    // The 64 - p bits after the index; rank = leading zeros + 1 (at most 64 - p + 1).
    const rest = (high << p) >>> p;
    const rank = rest !== 0 ? Math.clz32(rest) - p + 1 : 32 - p + Math.clz32(low) + 1;
    if (rank > this.registers[index]) this.registers[index] = rank;
  }

  merge(other: HyperLogLog): void {
    if (other.precision !== this.precision) throw new RangeError('cannot merge HyperLogLog sketches of different precision');
    const mine = this.registers;
    const theirs = other.registers;
    for (let i = 0; i < mine.length; i++) if (theirs[i] > mine[i]) mine[i] = theirs[i];
  }

  count(): number {
    const m = this.registers.length;
    const q = this.#rankBits;
    const histogram = new Float64Array(q + 2);
    for (const r of this.registers) histogram[r]++;
    let z = m * tau(1 - histogram[q + 1] / m);
    for (let k = q; k >= 1; k--) z = 0.5 * (z + histogram[k]);
    z += m * sigma(histogram[0] / m);
    return Math.round((m * m) / (2 * Math.LN2) / z);
  }
}

function sigma(x: number): number {
  if (x === 1) return Number.POSITIVE_INFINITY;
  let y = 1;
  let z = x;
  let previous: number;
  do {
    x *= x;
    previous = z;
    z += x * y;
    y += y;
  } while (z !== previous);
  return z;
}

function tau(x: number): number {
  if (x === 0 || x === 1) return 0;
  let y = 1;
  let z = 1 - x;
  let previous: number;
  do {
    x = Math.sqrt(x);
    previous = z;
    y *= 0.5;
    z -= (1 - x) ** 2 * y;
  } while (z !== previous);
  return z / 3;
}

function fmix(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

/** MurmurHash3 (x86, 32-bit) over a string's UTF-16 code units, two per block. */
export function murmur3(text: string, seed: number): number {
  let h = seed | 0;
  const length = text.length;
  let i = 0;
  for (; i + 1 < length; i += 2) {
    let k = text.charCodeAt(i) | (text.charCodeAt(i + 1) << 16);
    k = Math.imul(k, 0xcc9e2d51);
    k = (k << 15) | (k >>> 17);
    h ^= Math.imul(k, 0x1b873593);
    h = (h << 13) | (h >>> 19);
    h = (Math.imul(h, 5) + 0xe6546b64) | 0;
  }
  if (i < length) {
    let k = text.charCodeAt(i);
    k = Math.imul(k, 0xcc9e2d51);
    k = (k << 15) | (k >>> 17);
    h ^= Math.imul(k, 0x1b873593);
  }
  h ^= length * 2;
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}
