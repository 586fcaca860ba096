/**
 * HyperLogLog registers as bytes, for storage (one sketch per minute, and rollups).
 * Format 1, three header bytes then the registers in the smaller of two encodings:
 *
 *   byte 0   format version (1)
 *   byte 1   precision p (4..18)
 *   byte 2   encoding: 0 dense, 1 sparse
 *   dense    every register in 6 bits (ranks are at most 64 − p + 1 ≤ 61), little-endian
 *            bit order: 4 registers in 3 bytes, 0.75 · 2^p bytes (3 KiB at p = 12)
 *   sparse   varint n, then per non-zero register in index order one varint
 *            (gap << 6 | rank), gap = index − previous index − 1 (previous starts at −1)
 *
 * A sketch of few users is sparse (about 2 bytes per user); one that has set more than
 * ~3/8 of its registers is dense. Unknown versions or encodings and malformed bytes are
 * refused with a RangeError naming what is wrong, never read as a wrong count.
 */
import { HyperLogLog, foldRegisters } from './hyperloglog.ts';

export const SKETCH_FORMAT = 1;
const DENSE = 0;
const SPARSE = 1;
const HEADER = 3;

/** The bytes of a sketch, in whichever encoding is smaller. */
export function encodeSketch(sketch: HyperLogLog): Uint8Array {
  const registers = sketch.registers;
  let nonZero = 0;
  let sparseBytes = 0;
  let previous = -1;
  for (let i = 0; i < registers.length; i++) {
    if (registers[i] === 0) continue;
    nonZero++;
    sparseBytes += varintLength(((i - previous - 1) << 6) | registers[i]);
    previous = i;
  }
  sparseBytes += varintLength(nonZero);
  const denseBytes = (registers.length * 3) / 4;
  if (sparseBytes < denseBytes) return encodeSparse(sketch.precision, registers, nonZero, sparseBytes);
  return encodeDense(sketch.precision, registers, denseBytes);
}

function encodeSparse(precision: number, registers: Uint8Array, nonZero: number, size: number): Uint8Array {
  const out = new Uint8Array(HEADER + size);
  out[0] = SKETCH_FORMAT;
  out[1] = precision;
  out[2] = SPARSE;
  let at = writeVarint(out, HEADER, nonZero);
  let previous = -1;
  for (let i = 0; i < registers.length; i++) {
    if (registers[i] === 0) continue;
    at = writeVarint(out, at, ((i - previous - 1) << 6) | registers[i]);
    previous = i;
  }
  return out;
}

function encodeDense(precision: number, registers: Uint8Array, size: number): Uint8Array {
  const out = new Uint8Array(HEADER + size);
  out[0] = SKETCH_FORMAT;
  out[1] = precision;
  out[2] = DENSE;
  for (let i = 0, at = HEADER; i < registers.length; i += 4, at += 3) {
    const a = registers[i];
    const b = registers[i + 1];
    const c = registers[i + 2];
    const d = registers[i + 3];
    out[at] = a | (b << 6);
    out[at + 1] = (b >>> 2) | (c << 4);
    out[at + 2] = (c >>> 4) | (d << 2);
  }
  return out;
}

/** The precision a sketch's bytes hold (the header only; `decodeSketch` checks the rest). */
export function sketchPrecision(bytes: Uint8Array): number {
  checkHeader(bytes);
  return bytes[1];
}

export function decodeSketch(bytes: Uint8Array): HyperLogLog {
  const sketch = new HyperLogLog(sketchPrecision(bytes));
  mergeSketchBytes(sketch, bytes);
  return sketch;
}

/**
 * Max-merges the sketch in `bytes` into `into` without making a sketch of it. Bytes of a
 * higher precision than `into` are folded down (HyperLogLog.foldTo); a lower one is refused.
 */
export function mergeSketchBytes(into: HyperLogLog, bytes: Uint8Array): void {
  checkHeader(bytes);
  const precision = bytes[1];
  if (precision < into.precision) throw new RangeError(`sketch bytes: precision ${precision} cannot merge into a sketch of precision ${into.precision}; fold that one down first`);
  const target = into.registers;
  const m = 2 ** precision;
  const maxRank = 64 - precision + 1;
  // Registers of a higher precision go through a scratch array and fold.
  const registers = precision === into.precision ? target : new Uint8Array(m);
  if (bytes[2] === DENSE) {
    if (bytes.length !== HEADER + (m * 3) / 4) throw new RangeError(`sketch bytes: a dense sketch of precision ${precision} has ${HEADER + (m * 3) / 4} bytes, got ${bytes.length}`);
    for (let i = 0, at = HEADER; i < m; i += 4, at += 3) {
      const x = bytes[at];
      const y = bytes[at + 1];
      const z = bytes[at + 2];
      const a = x & 63;
      const b = (x >>> 6) | ((y & 15) << 2);
      const c = (y >>> 4) | ((z & 3) << 4);
      const d = z >>> 2;
      if (a > maxRank || b > maxRank || c > maxRank || d > maxRank) throw new RangeError(`sketch bytes: a rank above ${maxRank} near register ${i}`);
      if (a > registers[i]) registers[i] = a;
      if (b > registers[i + 1]) registers[i + 1] = b;
      if (c > registers[i + 2]) registers[i + 2] = c;
      if (d > registers[i + 3]) registers[i + 3] = d;
    }
  } else {
    const count = readVarint(bytes, HEADER);
    let at = count.next;
    let index = -1;
    for (let n = 0; n < count.value; n++) {
      const entry = readVarint(bytes, at);
      at = entry.next;
      index += Math.floor(entry.value / 64) + 1;
      const rank = entry.value % 64;
      if (index >= m) throw new RangeError(`sketch bytes: register ${index} is past the ${m} of precision ${precision}`);
      if (rank === 0 || rank > maxRank) throw new RangeError(`sketch bytes: rank ${rank} at register ${index} is outside 1..${maxRank}`);
      if (rank > registers[index]) registers[index] = rank;
    }
    if (at !== bytes.length) throw new RangeError(`sketch bytes: ${bytes.length - at} bytes after the last register`);
  }
  if (registers !== target) foldRegisters(registers, precision, target, into.precision);
}

function checkHeader(bytes: Uint8Array): void {
  if (bytes.length < HEADER + 1) throw new RangeError(`sketch bytes: ${bytes.length} bytes are too few for a sketch`);
  if (bytes[0] !== SKETCH_FORMAT) throw new RangeError(`sketch bytes: format version ${bytes[0]} is not one this version reads (${SKETCH_FORMAT})`);
  if (bytes[1] < 4 || bytes[1] > 18) throw new RangeError(`sketch bytes: precision ${bytes[1]} is outside 4..18`);
  if (bytes[2] !== DENSE && bytes[2] !== SPARSE) throw new RangeError(`sketch bytes: unknown encoding ${bytes[2]}`);
}

/** Bytes of `value` as an unsigned LEB128 varint (also used by src/core/unique-users-state.ts). */
export function varintLength(value: number): number {
  let n = 1;
  while (value >= 0x80) {
    value = Math.floor(value / 128);
    n++;
  }
  return n;
}

/** Writes `value` as an unsigned LEB128 varint at `at`; returns the offset after it. */
export function writeVarint(out: Uint8Array, at: number, value: number): number {
  while (value >= 0x80) {
    out[at++] = (value & 0x7f) | 0x80;
    value = Math.floor(value / 128);
  }
  out[at++] = value;
  return at;
}

function readVarint(bytes: Uint8Array, at: number): { value: number; next: number } {
  let value = 0;
  let scale = 1;
  for (let i = 0; i < 5; i++) {
    if (at >= bytes.length) throw new RangeError('sketch bytes: they end inside a number');
    const byte = bytes[at++];
    value += (byte & 0x7f) * scale;
    if (byte < 0x80) return { value, next: at };
    scale *= 128;
  }
  throw new RangeError('sketch bytes: a number longer than 5 bytes');
}
