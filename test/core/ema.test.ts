import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { Ema } from '../../src/core/ema.ts';
import { close, randomWalk, referenceEma, seededRandom } from '../indicators/reference.ts';

describe('Ema (window N, alpha = 2/(N+1), mean-seeded)', () => {
  it('averages the points seen while the window fills, then is SMA(N) at point N', () => {
    const ema = new Ema(4);
    const table: Array<[number, number, number]> = [
      // x, expected value, expected points
      [10, 10, 1],
      [20, 15, 2],
      [30, 20, 3],
      [40, 25, 4], // SMA(4)
      [50, 25 + 0.4 * (50 - 25), 4], // alpha = 2/5
      [0, 35 + 0.4 * (0 - 35), 4],
    ];
    for (const [x, value, points] of table) {
      assert.equal(ema.update(x), value);
      assert.equal(ema.points, points);
    }
    assert.equal(ema.alpha, 0.4);
  });

  it('matches the closed-form windowed reference on random walks, the first 100 points included', () => {
    const random = seededRandom(7);
    for (const window of [1, 2, 10, 100]) {
      const prices = randomWalk(random, 600);
      const ema = new Ema(window);
      prices.forEach((price, i) => {
        const value = ema.update(price);
        const expected = referenceEma(prices, window, i);
        assert.ok(close(value, expected, 1e-12), `window ${window}, point ${i}: ${value} vs ${expected}`);
        assert.equal(ema.points, Math.min(i + 1, window));
      });
    }
  });

  it('is NaN before the first point and rejects a bad window', () => {
    assert.ok(Number.isNaN(new Ema(100).value));
    assert.throws(() => new Ema(0), RangeError);
    assert.throws(() => new Ema(2.5), RangeError);
  });

  it('continues bit for bit from a JSON snapshot', () => {
    const prices = randomWalk(seededRandom(11), 400);
    const straight = new Ema(100);
    const straightValues = prices.map((p) => straight.update(p));
    for (const cut of [0, 1, 50, 99, 100, 101, 250]) {
      const first = new Ema(100);
      for (const p of prices.slice(0, cut)) first.update(p);
      const restored = new Ema(100, JSON.parse(JSON.stringify(first.snapshot())));
      prices.slice(cut).forEach((p, k) => assert.equal(restored.update(p), straightValues[cut + k], `cut ${cut}`));
    }
  });
});
