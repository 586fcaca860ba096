import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { PriceLevel } from '../../src/core/price-level.ts';
import type { PriceLevelSnapshot } from '../../src/core/price-level.ts';
import { seededRandom } from '../../src/core/random.ts';

type Decision = ['take' | 'implausible', number];

/** Feeds prices (item = index) and returns every decision in the order made, then the level. */
function run(prices: readonly number[], options = { maxRatio: 10 }, end = true): { decisions: Decision[]; level: PriceLevel<number> } {
  const level = new PriceLevel<number>(options);
  const decisions: Decision[] = [];
  const sink = { take: (i: number) => decisions.push(['take', i]), implausible: (i: number) => decisions.push(['implausible', i]) };
  prices.forEach((price, i) => {
    if (level.check(price, sink)) decisions.push(['take', i]);
    else level.wait(price, i, sink);
  });
  if (end) level.drain(sink);
  return { decisions, level };
}

const taken = (d: Decision[]) => d.filter(([kind]) => kind === 'take').map(([, i]) => i);
const refused = (d: Decision[]) => d.filter(([kind]) => kind === 'implausible').map(([, i]) => i).sort((a, b) => a - b);

describe('PriceLevel: the per-symbol sanity bound', () => {
  it('sets the reference from a majority of the first five prices: absurd first prices cannot poison it', () => {
    const { decisions, level } = run([1e300, 238.1, 0.000001, 237.5, 239, 238.4], undefined, false);
    assert.deepEqual(decisions, [['implausible', 0], ['take', 1], ['implausible', 2], ['take', 3], ['take', 4], ['take', 5]]);
    assert.equal(level.reference, 238.1);
  });

  it('takes plausible prices at once; a stray waits and is refused when the next plausible price comes', () => {
    const { decisions } = run([100, 101, 99, 100, 102, 1e300, 101, 0.5, 0.6, 100.5], undefined, false);
    assert.deepEqual(decisions, [
      ['take', 0], ['take', 1], ['take', 2], ['take', 3], ['take', 4],
      ['implausible', 5], ['take', 6], ['implausible', 7], ['implausible', 8], ['take', 9],
    ]);
  });

  it('follows a real change of level (a 20:1 split) once five prices in a row agree on it', () => {
    const before = [2000, 2010, 1990, 2005, 1995, 2002];
    const after = [100, 101, 99.5, 100.2, 100.8, 101.1, 99.9];
    const { decisions, level } = run([...before, ...after]);
    assert.deepEqual(refused(decisions), []);
    assert.deepEqual(taken(decisions), [...before, ...after].map((_, i) => i));
    assert.ok(level.reference! < 102 && level.reference! > 99, String(level.reference));
  });

  it('refuses five scattered prices that agree on nothing, and keeps the old level', () => {
    const { decisions, level } = run([100, 100, 100, 100, 100, 1e-9, 1e9, 1e300, 1e-300, 5e12, 100]);
    assert.deepEqual(refused(decisions), [5, 6, 7, 8, 9]);
    assert.equal(level.reference, 100);
  });

  it('at the end of the input: a symbol without a reference decides by majority; with one, waiting prices are implausible', () => {
    assert.deepEqual(run([238]).decisions, [['take', 0]]);
    assert.deepEqual(run([238, 1e300, 239]).decisions, [['take', 0], ['implausible', 1], ['take', 2]]);
    assert.deepEqual(refused(run([238, 1e300]).decisions), [0, 1]); // no majority of two
    assert.deepEqual(refused(run([10, 10, 10, 10, 10, 1e6, 1e6]).decisions), [5, 6]);
  });

  it('follows drift through the block median: a price doubling slowly is never refused', () => {
    const prices = Array.from({ length: 5000 }, (_, i) => 100 * 2 ** (i / 1000));
    assert.deepEqual(refused(run(prices).decisions), []);
  });

  it('never refuses a good price nor takes an absurd one, on random streams with 1% isolated absurd prices', () => {
    const r = seededRandom('price-level');
    for (let stream = 0; stream < 200; stream++) {
      let price = 10 ** r.int(-2, 5);
      const prices: number[] = [];
      const bad = new Set<number>();
      for (let i = 0; i < 500; i++) {
        price *= Math.exp(r.normal() * 0.01);
        if (i > 0 && !bad.has(i - 1) && r.next() < 0.01) {
          bad.add(i);
          prices.push(price * (r.next() < 0.5 ? 10 ** r.int(2, 300) : 10 ** -r.int(2, 300)));
        } else {
          prices.push(price);
        }
      }
      const { decisions } = run(prices);
      assert.equal(decisions.length, prices.length);
      assert.deepEqual(refused(decisions), [...bad].sort((a, b) => a - b), `stream ${stream}`);
    }
  });

  it('restored from a snapshot at any point, decides exactly as the uninterrupted run', () => {
    const r = seededRandom('price-level-restore');
    const prices = Array.from({ length: 300 }, (_, i) => (i % 37 === 5 ? 1e200 : i === 150 ? 0.001 : i >= 200 ? 5 + r.next() : 100 + r.next() * 5));
    const whole = run(prices).decisions;
    for (let cut = 0; cut <= prices.length; cut++) {
      const first = run(prices.slice(0, cut), undefined, false);
      const snapshot = JSON.parse(JSON.stringify(first.level.snapshot())) as PriceLevelSnapshot<number>;
      const level = new PriceLevel<number>({ maxRatio: 10 }, snapshot);
      const decisions = [...first.decisions];
      const sink = { take: (i: number) => decisions.push(['take', i]), implausible: (i: number) => decisions.push(['implausible', i]) };
      prices.slice(cut).forEach((price, k) => {
        if (level.check(price, sink)) decisions.push(['take', cut + k]);
        else level.wait(price, cut + k, sink);
      });
      level.drain(sink);
      assert.deepEqual(decisions, whole, `cut at ${cut}`);
    }
  });
});
