import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { HyperLogLog, hyperLogLogStandardError } from '../../src/core/hyperloglog.ts';
import { decodeSketch, encodeSketch, mergeSketchBytes, sketchPrecision } from '../../src/core/sketch-bytes.ts';
import { seededRandom } from '../../src/core/random.ts';

function sketchOf(precision: number, values: Iterable<string>): HyperLogLog {
  const sketch = new HyperLogLog(precision);
  for (const value of values) sketch.add(value);
  return sketch;
}

const ids = (n: number, prefix = 'u') => Array.from({ length: n }, (_, i) => `${prefix}${i}`);

describe('HyperLogLog additions', () => {
  it('standard error: 1.04/sqrt(2^p) for every precision', () => {
    for (let p = 4; p <= 18; p++) {
      assert.equal(hyperLogLogStandardError(p), 1.04 / Math.sqrt(2 ** p));
      assert.equal(new HyperLogLog(p).standardError, hyperLogLogStandardError(p));
    }
    assert.equal(hyperLogLogStandardError(12).toFixed(4), '0.0163');
  });

  it('foldTo gives register for register the sketch of the lower precision fed the same values', () => {
    for (const n of [0, 1, 50, 3_000, 60_000]) {
      const values = ids(n, `fold${n}-`);
      const high = sketchOf(16, values);
      for (const p of [16, 14, 12, 9, 4]) assert.deepEqual(high.foldTo(p).registers, sketchOf(p, values).registers, `n = ${n}, 16 → ${p}`);
    }
  });

  it('foldTo refuses to raise the precision; the copy at the same precision is independent', () => {
    const sketch = sketchOf(12, ids(10));
    assert.throws(() => sketch.foldTo(13), /cannot raise a HyperLogLog sketch from precision 12 to 13/);
    const copy = sketch.foldTo(12);
    copy.add('another');
    assert.notDeepEqual(copy.registers, sketch.registers);
  });

  it('registers reaching the highest rank fold to the highest rank of the lower precision', () => {
    const high = new HyperLogLog(14);
    high.addHash(16 << 18, 0); // index 16, suffix all zero: rank 64 − 14 + 1
    assert.equal(high.registers[16], 51);
    const low = high.foldTo(10);
    assert.equal(low.registers[1], 55); // index 16 >> 4, and the dropped bits are zero too: 64 − 10 + 1
    high.addHash(4 << 18, 0); // index 4: its dropped bits 0100 give rank 2 at index 0
    assert.equal(high.foldTo(10).registers[0], 2);
  });
});

describe('sketch bytes', () => {
  it('round-trips sketches of every size, sparse while that is smaller, dense after', () => {
    const random = seededRandom('sketch-bytes');
    for (const p of [4, 10, 12, 14]) {
      const m = 2 ** p;
      for (const n of [0, 1, 7, Math.floor(m / 10), Math.floor(m / 3), m, 8 * m]) {
        const sketch = sketchOf(p, ids(n, `${p}:${n}:${random.int(0, 1e9)}:`));
        const bytes = encodeSketch(sketch);
        assert.deepEqual(decodeSketch(bytes).registers, sketch.registers, `p = ${p}, n = ${n}`);
        assert.equal(sketchPrecision(bytes), p);
        assert.equal(bytes[0], 1, 'format version 1');
        const set = sketch.registers.filter((r) => r > 0).length;
        assert.ok(bytes.length <= 3 + (3 * m) / 4, `never more than the dense size: ${bytes.length}`);
        if (bytes[2] === 1) assert.ok(bytes.length <= 3 + 3 * set + 1, `sparse: about 2 bytes per register set (${set}), got ${bytes.length}`);
        if (set < m / 8) assert.equal(bytes[2], 1, `${set} of ${m} registers set: sparse`);
        if (set > 0.9 * m) assert.equal(bytes[2], 0, `${set} of ${m} registers set: dense`);
      }
    }
  });

  it('an empty sketch is four bytes; one user five or six', () => {
    assert.deepEqual([...encodeSketch(new HyperLogLog(12))], [1, 12, 1, 0]);
    assert.ok(encodeSketch(sketchOf(12, ['alice'])).length <= 7);
  });

  it('the dense layout: four 6-bit registers in three bytes, low bits first', () => {
    const sketch = new HyperLogLog(4);
    sketch.registers.set([1, 2, 3, 61, 0, 0, 0, 0, 5, 5, 5, 5, 5, 5, 5, 5]);
    const bytes = encodeSketch(sketch);
    assert.equal(bytes[2], 0);
    assert.equal(bytes.length, 3 + 12);
    // 1 | 2 << 6 = 0x81; 2 >> 2 | 3 << 4 = 0x30; 3 >> 4 | 61 << 2 = 0xf4
    assert.deepEqual([...bytes.subarray(3, 6)], [0x81, 0x30, 0xf4]);
    assert.deepEqual(decodeSketch(bytes).registers, sketch.registers);
  });

  it('merging bytes equals merging sketches, and folds a higher precision down', () => {
    const a = sketchOf(12, ids(5_000, 'a'));
    const b = sketchOf(14, ids(5_000, 'b'));
    const union = sketchOf(12, [...ids(5_000, 'a'), ...ids(5_000, 'b')]);
    const into = decodeSketch(encodeSketch(a));
    mergeSketchBytes(into, encodeSketch(b));
    assert.deepEqual(into.registers, union.registers);
    assert.throws(() => mergeSketchBytes(new HyperLogLog(14), encodeSketch(a)), /precision 12 cannot merge into a sketch of precision 14/);
  });

  it('refuses malformed bytes with a message naming the fault', () => {
    const good = encodeSketch(sketchOf(10, ids(20)));
    const dense = encodeSketch(sketchOf(4, ids(200)));
    const cases: Array<[string, Uint8Array, RegExp]> = [
      ['too short', Uint8Array.of(1, 12, 1), /3 bytes are too few/],
      ['another version', Uint8Array.of(2, 12, 1, 0), /format version 2 is not one this version reads \(1\)/],
      ['precision 3', Uint8Array.of(1, 3, 1, 0), /precision 3 is outside 4\.\.18/],
      ['precision 19', Uint8Array.of(1, 19, 1, 0), /precision 19 is outside 4\.\.18/],
      ['an unknown encoding', Uint8Array.of(1, 12, 7, 0), /unknown encoding 7/],
      ['cut short', good.subarray(0, good.length - 1), /end inside a number|bytes after the last register/],
      ['trailing bytes', Uint8Array.of(...good, 0), /1 bytes after the last register/],
      ['a register past the end', Uint8Array.of(1, 4, 1, 1, 0x80 | 1, 0x08), /register 16 is past the 16 of precision 4/],
      ['rank 0 in a sparse sketch', Uint8Array.of(1, 4, 1, 1, 0), /rank 0 at register 0 is outside 1\.\.61/],
      ['a dense sketch of the wrong length', dense.subarray(0, dense.length - 3), /a dense sketch of precision 4 has 15 bytes, got 12/],
      ['a dense rank above the highest', Uint8Array.of(1, 4, 0, 63, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0), /a rank above 61 near register 0/],
    ];
    for (const [name, bytes, message] of cases) assert.throws(() => decodeSketch(bytes), (error: Error) => error instanceof RangeError && message.test(error.message), name);
  });
});
