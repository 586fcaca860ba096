import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { AsciiSet, BoundedDistinct, ExactDistinct, HyperLogLog, murmur3, murmur3Ascii } from '../../src/core/hyperloglog.ts';
import { seededRandom } from '../../src/core/random.ts';

function estimate(precision: number, n: number, prefix: string): number {
  const sketch = new HyperLogLog(precision);
  for (let i = 0; i < n; i++) sketch.add(`${prefix}${i}`);
  return sketch.count();
}

describe('HyperLogLog', () => {
  it('documents its standard error: 1.04/sqrt(2^p), 0.81% at p = 14', () => {
    assert.equal(new HyperLogLog(14).standardError.toFixed(4), '0.0081');
    assert.equal(new HyperLogLog(14).registers.length, 16384);
  });

  it('is exact or nearly so for small counts (no bias at the low end)', () => {
    for (const n of [0, 1, 2, 10, 100]) assert.equal(estimate(14, n, 'small-'), n);
    assert.ok(Math.abs(estimate(14, 1000, 'small-') - 1000) <= 5);
  });

  it('measured error: root mean square over 8 cardinalities × 4 seeds stays near 0.81%, no estimate beyond 4 standard errors', () => {
    const errors: number[] = [];
    for (const n of [2_000, 5_000, 10_000, 20_000, 50_000, 100_000, 200_000, 400_000]) {
      for (const seed of ['a', 'b', 'c', 'd']) errors.push((estimate(14, n, `${seed}:${n}:`) - n) / n);
    }
    const rms = Math.sqrt(errors.reduce((sum, e) => sum + e * e, 0) / errors.length);
    const worst = Math.max(...errors.map(Math.abs));
    assert.ok(rms < 0.0115, `rms error ${(rms * 100).toFixed(2)}%`);
    assert.ok(worst < 4 * 0.0081, `worst error ${(worst * 100).toFixed(2)}%`);
  });

  it('lower precision trades memory for error in proportion (p = 10: 3.25%)', () => {
    const errors = ['x', 'y', 'z', 'w'].map((seed) => (estimate(10, 100_000, seed) - 100_000) / 100_000);
    const rms = Math.sqrt(errors.reduce((sum, e) => sum + e * e, 0) / errors.length);
    assert.ok(rms < 0.065, `rms error ${(rms * 100).toFixed(2)}%`);
  });

  it('ignores repeats', () => {
    const sketch = new HyperLogLog(14);
    for (let round = 0; round < 5; round++) for (let i = 0; i < 10_000; i++) sketch.add(`u${i}`);
    assert.equal(sketch.count(), estimate(14, 10_000, 'u'));
  });

  it('merges into the sketch of the union', () => {
    const a = new HyperLogLog(12);
    const b = new HyperLogLog(12);
    const union = new HyperLogLog(12);
    for (let i = 0; i < 30_000; i++) {
      (i % 2 === 0 ? a : b).add(`m${i}`);
      union.add(`m${i}`);
    }
    a.merge(b);
    assert.deepEqual(a.registers, union.registers);
    assert.throws(() => a.merge(new HyperLogLog(14)), RangeError);
  });

  it('rejects precisions outside 4..18', () => {
    assert.throws(() => new HyperLogLog(3), RangeError);
    assert.throws(() => new HyperLogLog(19), RangeError);
  });

  it('hashes with MurmurHash3 x86_32 (reference vectors for ASCII input)', () => {
    // Pairs of UTF-16 units make the same blocks as the UTF-16LE bytes of the text.
    assert.equal(murmur3('', 0), 0);
    assert.equal(murmur3('', 1), 0x514e28b7);
    assert.notEqual(murmur3('uid-1', 0), murmur3('uid-2', 0));
  });

  it('the exact counter counts exactly', () => {
    const exact = new ExactDistinct();
    for (const v of ['a', 'b', 'a', 'é', 'e\u0301']) exact.add(v);
    assert.equal(exact.count(), 4);
  });

  it('hashes ASCII bytes exactly as the string they spell, so both ways of adding agree', () => {
    const random = seededRandom('murmur-ascii');
    for (let n = 0; n < 2000; n++) {
      const text = Array.from({ length: random.int(0, 40) }, () => String.fromCharCode(random.int(0, 127))).join('');
      const bytes = Buffer.from(`..${text}.`, 'latin1');
      for (const seed of [0, 0x9747b28c]) assert.equal(murmur3Ascii(bytes, 2, 2 + text.length, seed), murmur3(text, seed), JSON.stringify(text));
    }
    const byString = new HyperLogLog(12);
    const byBytes = new HyperLogLog(12);
    for (let i = 0; i < 20_000; i++) {
      const text = `user-${i}`;
      byString.add(text);
      byBytes.addAscii(Buffer.from(text), 0, text.length);
    }
    assert.deepEqual(byBytes.registers, byString.registers);
  });
});

describe('exact distinct counting', () => {
  it('equals a Set of strings over 200,000 values added as bytes and as strings, ASCII or not', () => {
    const random = seededRandom('exact-distinct');
    const exact = new ExactDistinct();
    const reference = new Set<string>();
    const alphabet = ['a', 'b', 'Z', '0', '-', '~', ' ', 'é', '😀', '\u0000'];
    for (let i = 0; i < 200_000; i++) {
      // Short values repeat often; long ones (past the arena's first size) rarely.
      const length = random.next() < 0.9 ? random.int(1, 6) : random.int(30, 5000);
      let text = '';
      for (let k = 0; k < length; k++) text += alphabet[random.int(0, random.next() < 0.95 ? 6 : 9)];
      reference.add(text);
      const bytes = Buffer.from(`{"uid":"${text}"}`);
      if (/^[\x00-\x7f]*$/.test(text) && random.next() < 0.7) exact.addAscii(bytes, 8, 8 + text.length);
      else exact.add(text);
      if (i % 50_000 === 0) assert.equal(exact.count(), reference.size);
    }
    assert.equal(exact.count(), reference.size);
    assert.ok(reference.size > 50_000, `only ${reference.size} distinct values`);
  });

  it('AsciiSet reports members it already holds, across growth', () => {
    const set = new AsciiSet();
    const bytes = (text: string) => Buffer.from(text, 'latin1');
    for (let i = 0; i < 10_000; i++) assert.equal(set.add(bytes(`k${i}`), 0, `k${i}`.length), true);
    for (let i = 0; i < 10_000; i++) assert.equal(set.addString(`k${i}`), false, `k${i}`);
    assert.equal(set.add(bytes('xk1x'), 1, 3), false);
    assert.equal(set.add(bytes('k'), 0, 1), true);
    assert.equal(set.size, 10_001);
  });
});

describe('BoundedDistinct: exact within a memory budget, then a sketch', () => {
  const values = Array.from({ length: 30_000 }, (_, i) => (i % 7 === 0 ? `üser-${i}` : `user-${i}`));

  it('stays exact while the set fits, and reports the memory it takes', () => {
    const counter = new BoundedDistinct(64 << 20);
    for (const v of values) counter.add(v);
    assert.equal(counter.approximate, false);
    assert.equal(counter.count(), values.length);
    const bytes = counter.exact!.memoryBytes;
    assert.ok(bytes > 30_000 * 20 && bytes < 30_000 * 100, `${bytes} bytes for 30,000 members`);
  });

  it('switches once the set outgrows the budget, seeded with its members: the same registers whatever the order, within 3 standard errors', () => {
    const forward = new BoundedDistinct(256 * 1024, 12);
    const backward = new BoundedDistinct(256 * 1024, 12);
    const reference = new HyperLogLog(12);
    const encoder = new TextEncoder();
    for (const v of values) {
      const bytes = encoder.encode(v);
      if (v.startsWith('user')) forward.addAscii(bytes, 0, bytes.length);
      else forward.add(v);
      reference.add(v);
    }
    for (const v of [...values].reverse()) backward.add(v);
    assert.equal(forward.approximate, true);
    assert.equal(backward.approximate, true);
    assert.deepEqual(forward.sketch!.registers, reference.registers, 'the same sketch as adding every value to one');
    assert.deepEqual(backward.sketch!.registers, reference.registers);
    assert.ok(Math.abs(forward.count() - values.length) <= 3 * forward.sketch!.standardError * values.length, `${forward.count()} vs ${values.length}`);
  });
});
