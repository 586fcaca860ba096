import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { MovingVolatility } from '../../src/core/volatility.ts';
import { close, gaussian, randomWalk, referenceVolatility, sampleStdDev, seededRandom } from '../indicators/reference.ts';

describe('MovingVolatility (sample stddev of the log returns among the last N prices)', () => {
  it('is null until 3 prices, then the sample stddev of the returns', () => {
    const vol = new MovingVolatility(4);
    assert.equal(vol.update(100), null);
    assert.equal(vol.points, 1);
    assert.equal(vol.update(110), null);
    const r1 = Math.log(110 / 100);
    const r2 = Math.log(99 / 110);
    assert.ok(close(vol.update(99), sampleStdDev([r1, r2])));
    const r3 = Math.log(121 / 99);
    assert.ok(close(vol.update(121), sampleStdDev([r1, r2, r3])));
    assert.equal(vol.points, 4);
    const r4 = Math.log(121 / 121);
    assert.ok(close(vol.update(121), sampleStdDev([r2, r3, r4])), 'the oldest return slides out');
    assert.equal(vol.points, 4);
    assert.deepEqual(vol.returns(), [r2, r3, r4]);
  });

  it('is exactly 0 on a constant price', () => {
    const vol = new MovingVolatility(100);
    for (let i = 0; i < 1000; i++) vol.update(42.5);
    assert.equal(vol.value, 0);
  });

  it('matches the direct windowed formula on random walks, the first 100 points included', () => {
    const random = seededRandom(3);
    for (const window of [3, 5, 100]) {
      const prices = randomWalk(random, 1500);
      const vol = new MovingVolatility(window);
      prices.forEach((price, i) => {
        const value = vol.update(price);
        const expected = referenceVolatility(prices, window, i);
        assert.ok(close(value, expected, 1e-9), `window ${window}, point ${i}: ${value} vs ${expected}`);
        assert.equal(vol.points, Math.min(i + 1, window));
      });
    }
  });

  it('survives jumps and calm stretches (price gaps) without losing precision', () => {
    // Regimes 1e-7 .. 1e-1 of volatility and price jumps of x1000: where running sums of
    // squares cancel catastrophically.
    const random = seededRandom(5);
    const normal = gaussian(random);
    const prices: number[] = [];
    let p = 50;
    for (let i = 0; i < 5000; i++) {
      if (i % 700 === 0) p *= i % 1400 === 0 ? 1000 : 0.001;
      const sigma = 10 ** -(1 + Math.floor(i / 500) % 7);
      p *= Math.exp(sigma * normal());
      prices.push(p);
    }
    const vol = new MovingVolatility(100);
    prices.forEach((price, i) => {
      const value = vol.update(price);
      const expected = referenceVolatility(prices, 100, i);
      assert.ok(close(value, expected, 1e-7, 1e-18), `point ${i}: ${value} vs ${expected}`);
    });
  });

  it('does not drift: 10 million updates agree with a fresh recomputation of the window', () => {
    const window = 100;
    const updates = 10_000_000;
    const random = seededRandom(2024);
    const vol = new MovingVolatility(window);
    const last = new Float64Array(window); // the test's own ring of prices
    let price = 100;
    let maxError = 0;
    let checks = 0;
    for (let i = 0; i < updates; i++) {
      // Cheap random walk (uniform steps): the generator must not dominate the run.
      price *= 1 + (random() - 0.5) * (i % 2_000_000 < 1_000_000 ? 0.02 : 0.0002);
      last[i % window] = price;
      const value = vol.update(price);
      if (i % 9973 === 0 || i >= updates - 200) {
        checks++;
        const returns: number[] = [];
        const first = Math.max(0, i - window + 1);
        for (let k = first + 1; k <= i; k++) returns.push(Math.log(last[k % window] / last[(k - 1) % window]));
        const expected = sampleStdDev(returns);
        if (expected === null || value === null) {
          assert.equal(value, expected);
          continue;
        }
        maxError = Math.max(maxError, Math.abs(value - expected) / expected);
      }
    }
    assert.ok(checks > 1000);
    assert.ok(maxError < 1e-10, `max relative error ${maxError}`);
  });

  it('continues bit for bit from a JSON snapshot, wherever it is cut', () => {
    const prices = randomWalk(seededRandom(9), 700);
    const straight = new MovingVolatility(100);
    const straightValues = prices.map((p) => straight.update(p));
    for (const cut of [0, 1, 2, 3, 99, 100, 101, 198, 199, 200, 357]) {
      const first = new MovingVolatility(100);
      for (const p of prices.slice(0, cut)) first.update(p);
      const restored = new MovingVolatility(100, JSON.parse(JSON.stringify(first.snapshot())));
      prices.slice(cut).forEach((p, k) => assert.equal(restored.update(p), straightValues[cut + k], `cut ${cut}, point ${cut + k}`));
    }
  });

  it('rejects non-positive prices and a window under 3', () => {
    const vol = new MovingVolatility(100);
    assert.throws(() => vol.update(0), RangeError);
    assert.throws(() => vol.update(-1), RangeError);
    assert.throws(() => vol.update(Number.NaN), RangeError);
    assert.throws(() => vol.update(Number.POSITIVE_INFINITY), RangeError);
    assert.throws(() => new MovingVolatility(2), RangeError);
  });
});
