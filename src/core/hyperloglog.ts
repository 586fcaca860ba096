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

/** A string given as its bytes [start, end), known to be plain ASCII (no escapes). */
export interface AsciiText {
  readonly bytes: Uint8Array;
  readonly start: number;
  readonly end: number;
}

/** Distinct counting, exact or approximate. */
export interface DistinctCounter {
  /** Adds a value; false when it certainly was a member already (an exact count knows, a sketch says true). */
  add(value: string): boolean;
  /**
   * Adds the string spelt by bytes [start, end), which the caller knows to be plain ASCII
   * (every byte below 0x80, no escapes): the same as `add` of that string, without making it.
   * `hash` is `asciiHash` of those bytes when the caller has it (one hash for several counters).
   */
  addAscii(bytes: Uint8Array, start: number, end: number, hash?: number): boolean;
  /** The number of distinct values added (an estimate for sketches). */
  count(): number;
  /** True when `count` is an estimate. */
  readonly approximate: boolean;
}

/**
 * Exact distinct count. ASCII strings (every uid a tracker generates, in practice) are
 * kept as bytes in an AsciiSet; others in a Set of strings. An ASCII string never equals a
 * non-ASCII one, so the two parts never hold the same value twice.
 */
export class ExactDistinct implements DistinctCounter {
  readonly approximate = false;
  readonly #ascii = new AsciiSet();
  readonly #other = new Set<string>();
  #otherBytes = 0;

  add(value: string): boolean {
    if (isAscii(value)) return this.#ascii.addString(value);
    if (this.#other.has(value)) return false;
    this.#other.add(value);
    this.#otherBytes += STRING_MEMBER_BYTES + 2 * value.length;
    return true;
  }

  /**
   * The memory the members take: the AsciiSet's arrays as allocated, plus an estimate for
   * the other strings (a Set entry and a two-byte string each). It depends only on which
   * values were added, not on their order.
   */
  get memoryBytes(): number {
    return this.#ascii.memoryBytes + this.#otherBytes;
  }

  /** Adds every member to a sketch (the sketch an exact count switches to). */
  addTo(sketch: HyperLogLog): void {
    this.#ascii.forEach((bytes, start, end) => sketch.addAscii(bytes, start, end));
    for (const value of this.#other) sketch.add(value);
  }

  addAscii(bytes: Uint8Array, start: number, end: number, hash?: number): boolean {
    return this.#ascii.add(bytes, start, end, hash);
  }

  count(): number {
    return this.#ascii.size + this.#other.size;
  }

  /**
   * Every member: the ASCII ones as bytes [start, end) of `bytes`, then the others as
   * strings (for storing the set). Both in the order added; `from` skips the first members
   * of each kind (those a stored set already holds: `parts` then, a delta now).
   */
  forEachMember(ascii: (bytes: Uint8Array, start: number, end: number) => void, other: (value: string) => void, from: readonly [number, number] = [0, 0]): void {
    this.#ascii.forEach(ascii, from[0]);
    let i = 0;
    for (const value of this.#other) if (i++ >= from[1]) other(value);
  }

  /** How many ASCII members and how many others: members are only ever appended, so a later set's first members are these. */
  get parts(): [number, number] {
    return [this.#ascii.size, this.#other.size];
  }
}

/** What one non-ASCII member of a Set<string> costs beyond its characters (entry, string header), roughly. */
const STRING_MEMBER_BYTES = 64;

/**
 * Exact while the distinct set takes at most `maxExactBytes` (ExactDistinct.memoryBytes);
 * beyond, a HyperLogLog sketch seeded with the set's members counts on. Whether it switched
 * depends only on the set of values added (memory grows with the set), and a sketch does
 * not depend on order, so the answer does not depend on the order of the values.
 */
export class BoundedDistinct implements DistinctCounter {
  readonly maxExactBytes: number;
  readonly precision: number;
  #exact: ExactDistinct | null = new ExactDistinct();
  #sketch: HyperLogLog | null = null;

  constructor(maxExactBytes: number, precision = 14) {
    if (!(maxExactBytes > 0)) throw new RangeError(`the exact memory budget must be > 0 bytes, got ${maxExactBytes}`);
    this.maxExactBytes = maxExactBytes;
    this.precision = precision;
  }

  get approximate(): boolean {
    return this.#sketch !== null;
  }

  /** The exact set while it is one (null once switched). */
  get exact(): ExactDistinct | null {
    return this.#exact;
  }

  /** The sketch once switched (null while exact). */
  get sketch(): HyperLogLog | null {
    return this.#sketch;
  }

  add(value: string): boolean {
    const exact = this.#exact;
    if (exact === null) return this.#sketch!.add(value);
    if (!exact.add(value)) return false;
    if (exact.memoryBytes > this.maxExactBytes) this.#switch(exact);
    return true;
  }

  addAscii(bytes: Uint8Array, start: number, end: number, hash?: number): boolean {
    const exact = this.#exact;
    if (exact === null) return this.#sketch!.addAscii(bytes, start, end);
    if (!exact.addAscii(bytes, start, end, hash)) return false;
    if (exact.memoryBytes > this.maxExactBytes) this.#switch(exact);
    return true;
  }

  count(): number {
    return this.#exact?.count() ?? this.#sketch!.count();
  }

  /**
   * Takes in a stored sketch of values counted before (durable state): the count becomes
   * the sketch's, with this counter's exact members added to it, as if they had all been
   * added here. Bytes of a higher precision are folded down.
   */
  absorb(sketch: HyperLogLog): void {
    if (this.#exact !== null) this.#switch(this.#exact);
    this.#sketch!.merge(sketch.precision === this.precision ? sketch : sketch.foldTo(this.precision));
  }

  #switch(exact: ExactDistinct): void {
    const sketch = new HyperLogLog(this.precision);
    exact.addTo(sketch);
    this.#sketch = sketch;
    this.#exact = null;
  }
}

/** The sketch a distinct counter counts in: a HyperLogLog itself, a BoundedDistinct's once switched; null while exact. */
export function sketchIn(counter: DistinctCounter): HyperLogLog | null {
  if (counter instanceof HyperLogLog) return counter;
  if (counter instanceof BoundedDistinct) return counter.sketch;
  return null;
}

/** The hash AsciiSet keys its members by: 32-bit FNV-1a, finalised. */
export function asciiHash(bytes: Uint8Array, start: number, end: number): number {
  let h = 0x811c9dc5 | 0;
  for (let i = start; i < end; i++) h = Math.imul(h ^ bytes[i], 0x01000193);
  return fmix(h) | 0;
}

function isAscii(text: string): boolean {
  for (let i = 0; i < text.length; i++) if (text.charCodeAt(i) > 0x7f) return false;
  return true;
}

/**
 * A set of byte strings without a string or an object per member: open addressing (linear
 * probing) on a 32-bit FNV-1a hash, each member's bytes stored once in a growing arena.
 * This is what lets an exact count keep up with hundreds of thousands of frames a second.
 */
export class AsciiSet {
  size = 0;
  #arena = new Uint8Array(1 << 12);
  #used = 0;
  /** Member index + 1 per slot; 0 is empty. Its length stays a power of two, at most half full. */
  #slots = new Int32Array(1 << 8);
  #starts = new Int32Array(1 << 7);
  #lengths = new Int32Array(1 << 7);
  #hashes = new Int32Array(1 << 7);
  #scratch = new Uint8Array(64);

  /** Adds bytes [start, end) (whose `asciiHash` the caller may pass); returns false when they were already a member. */
  add(bytes: Uint8Array, start: number, end: number, hash?: number): boolean {
    const h = hash ?? asciiHash(bytes, start, end);
    const length = end - start;
    const slots = this.#slots;
    const mask = slots.length - 1;
    let slot = h & mask;
    for (let member = slots[slot]; member !== 0; member = slots[slot]) {
      const m = member - 1;
      if (this.#hashes[m] === h && this.#lengths[m] === length && this.#equal(m, bytes, start, length)) return false;
      slot = (slot + 1) & mask;
    }
    const index = this.size;
    if (index === this.#starts.length) this.#growMembers();
    if (this.#used + length > this.#arena.length) this.#growArena(this.#used + length);
    const arena = this.#arena;
    const at = this.#used;
    if (length <= 32) for (let i = 0; i < length; i++) arena[at + i] = bytes[start + i];
    else arena.set(bytes.subarray(start, end), at);
    this.#used = at + length;
    this.#starts[index] = at;
    this.#lengths[index] = length;
    this.#hashes[index] = h;
    slots[slot] = index + 1;
    this.size = index + 1;
    if (this.size * 2 > slots.length) this.#rehash();
    return true;
  }

  /** Bytes allocated for the members (arena, slots, per-member arrays, scratch). */
  get memoryBytes(): number {
    return this.#arena.length + 4 * (this.#slots.length + 3 * this.#starts.length) + this.#scratch.length;
  }

  /** Calls `each` with every member's bytes [start, end) of `bytes`, in the order added (from the `from`th member on). */
  forEach(each: (bytes: Uint8Array, start: number, end: number) => void, from = 0): void {
    const arena = this.#arena;
    for (let m = from; m < this.size; m++) each(arena, this.#starts[m], this.#starts[m] + this.#lengths[m]);
  }

  /** Adds an ASCII string (code units below 0x80). */
  addString(text: string): boolean {
    if (text.length > this.#scratch.length) this.#scratch = new Uint8Array(text.length * 2);
    const scratch = this.#scratch;
    for (let i = 0; i < text.length; i++) scratch[i] = text.charCodeAt(i);
    return this.add(scratch, 0, text.length);
  }

  #equal(member: number, bytes: Uint8Array, start: number, length: number): boolean {
    const arena = this.#arena;
    const at = this.#starts[member];
    for (let i = 0; i < length; i++) if (arena[at + i] !== bytes[start + i]) return false;
    return true;
  }

  #growMembers(): void {
    const grow = (old: Int32Array) => {
      const grown = new Int32Array(old.length * 2);
      grown.set(old);
      return grown;
    };
    this.#starts = grow(this.#starts);
    this.#lengths = grow(this.#lengths);
    this.#hashes = grow(this.#hashes);
  }

  #growArena(needed: number): void {
    let size = this.#arena.length * 2;
    while (size < needed) size *= 2;
    const grown = new Uint8Array(size);
    grown.set(this.#arena.subarray(0, this.#used));
    this.#arena = grown;
  }

  #rehash(): void {
    const slots = new Int32Array(this.#slots.length * 2);
    const mask = slots.length - 1;
    for (let m = 0; m < this.size; m++) {
      let slot = this.#hashes[m] & mask;
      while (slots[slot] !== 0) slot = (slot + 1) & mask;
      slots[slot] = m + 1;
    }
    this.#slots = slots;
  }
}

export class HyperLogLog implements DistinctCounter {
  readonly approximate = true;
  readonly precision: number;
  readonly registers: Uint8Array;
  readonly #rankBits: number;

  constructor(precision = 14) {
    if (!Number.isInteger(precision) || precision < 4 || precision > 18) throw new RangeError(`HyperLogLog precision must be an integer in 4..18, got ${precision}`);
    this.precision = precision;
    this.registers = new Uint8Array(1 << precision);
    this.#rankBits = 64 - precision;
  }

  /** A sketch of exactly the members of `exact` (the one a sketch fed the same values would have). */
  static fromExact(exact: ExactDistinct, precision = 14): HyperLogLog {
    const sketch = new HyperLogLog(precision);
    exact.addTo(sketch);
    return sketch;
  }

  /** The expected relative standard error of `count()`. */
  get standardError(): number {
    return hyperLogLogStandardError(this.precision);
  }

  /**
   * This sketch at a lower (or the same) precision: register for register what a sketch of
   * that precision fed the same values holds, so sketches of different precisions merge
   * once brought to the lower one. The index bits given up become the leading bits of the
   * rank's suffix: non-zero, they decide the rank; zero, they add to it.
   */
  foldTo(precision: number): HyperLogLog {
    if (precision === this.precision) {
      const copy = new HyperLogLog(precision);
      copy.registers.set(this.registers);
      return copy;
    }
    if (!(precision < this.precision)) throw new RangeError(`cannot raise a HyperLogLog sketch from precision ${this.precision} to ${precision}`);
    const folded = new HyperLogLog(precision);
    foldRegisters(this.registers, this.precision, folded.registers, precision);
    return folded;
  }

  /** Always true: a sketch cannot tell whether it has seen a value. */
  add(value: string): boolean {
    // Two seeded passes, each finalised with the other mixed in: a single pass showed a
    // measurably higher error (~1.0% instead of 0.81%) on sequential ids.
    const a = murmur3(value, 0x9747b28c);
    const b = murmur3(value, 0x5bd1e995);
    this.addHash(fmix(a ^ Math.imul(b, 0x9e3779b1)), fmix(b ^ Math.imul(a, 0x85ebca77)));
    return true;
  }

  addAscii(bytes: Uint8Array, start: number, end: number): boolean {
    const a = murmur3Ascii(bytes, start, end, 0x9747b28c);
    const b = murmur3Ascii(bytes, start, end, 0x5bd1e995);
    this.addHash(fmix(a ^ Math.imul(b, 0x9e3779b1)), fmix(b ^ Math.imul(a, 0x85ebca77)));
    return true;
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

/** The relative standard error of a HyperLogLog sketch of precision p: 1.04 / sqrt(2^p) (0.81% at 14, 1.63% at 12). */
export function hyperLogLogStandardError(precision: number): number {
  return 1.04 / Math.sqrt(2 ** precision);
}

/**
 * Max-merges registers of precision `from` into `into`, of precision `to` <= `from`
 * (HyperLogLog.foldTo). `dropped` = from − to index bits become the top of the suffix.
 */
export function foldRegisters(registers: Uint8Array, from: number, into: Uint8Array, to: number): void {
  const dropped = from - to;
  if (dropped === 0) {
    for (let i = 0; i < into.length; i++) if (registers[i] > into[i]) into[i] = registers[i];
    return;
  }
  const lowMask = (1 << dropped) - 1;
  for (let i = 0; i < registers.length; i++) {
    const rank = registers[i];
    if (rank === 0) continue;
    const low = i & lowMask;
    // Leading zeros of the `dropped` bits, + 1; all zero: they lengthen the run before the old rank.
    const folded = low !== 0 ? Math.clz32(low) - (32 - dropped) + 1 : dropped + rank;
    const j = i >>> dropped;
    if (folded > into[j]) into[j] = folded;
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
  for (; i + 1 < length; i += 2) h = murmurBlock(h, text.charCodeAt(i) | (text.charCodeAt(i + 1) << 16));
  if (i < length) h ^= murmurTail(text.charCodeAt(i));
  return murmurFinish(h, length);
}

/** murmur3 of the ASCII string spelt by bytes [start, end): each byte is a code unit. */
export function murmur3Ascii(bytes: Uint8Array, start: number, end: number, seed: number): number {
  let h = seed | 0;
  let i = start;
  for (; i + 1 < end; i += 2) h = murmurBlock(h, bytes[i] | (bytes[i + 1] << 16));
  if (i < end) h ^= murmurTail(bytes[i]);
  return murmurFinish(h, end - start);
}

function murmurTail(k: number): number {
  k = Math.imul(k, 0xcc9e2d51);
  k = (k << 15) | (k >>> 17);
  return Math.imul(k, 0x1b873593);
}

function murmurBlock(h: number, k: number): number {
  h ^= murmurTail(k);
  h = (h << 13) | (h >>> 19);
  return (Math.imul(h, 5) + 0xe6546b64) | 0;
}

function murmurFinish(h: number, units: number): number {
  h ^= units * 2;
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}
