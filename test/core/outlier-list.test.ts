import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { OutlierList } from '../../src/core/outliers.ts';
import type { Outlier } from '../../src/core/outliers.ts';
import { seededRandom } from '../../src/core/random.ts';

/** The report order, computed on plain objects: ts text, then symbol, then price. */
function reportOrder(outliers: Outlier[]): Outlier[] {
  return [...outliers].sort((a, b) => (a.ts < b.ts ? -1 : a.ts > b.ts ? 1 : a.symbol < b.symbol ? -1 : a.symbol > b.symbol ? 1 : a.price - b.price));
}

/** `yyyy-mm-dd hh:mm:ss.fff` of an epoch millisecond, written independently of core/prices.ts. */
const ts = (ms: number) => new Date(Math.floor(ms)).toISOString().replace('T', ' ').slice(0, 23);

describe('OutlierList', () => {
  it('keeps every outlier and sorts them as a plain sort of the reported objects does', () => {
    const random = seededRandom(7);
    const next = () => random.next();
    const symbols = ['TSLA', 'AAPL', 'ÄPFEL', 'MSFT', 'A', 'AA'];
    const list = new OutlierList();
    const plain: Outlier[] = [];
    const base = Date.UTC(2021, 2, 10, 16);
    for (let i = 0; i < 30_000; i++) {
      // Few distinct milliseconds (with sub-millisecond fractions), so ties on time are common.
      const timeMs = base + Math.floor(next() * 2_000) * 7 + next();
      const symbol = random.pick(symbols);
      const price = Math.round(next() * 50_000) / 100;
      list.push(symbol, price, timeMs);
      plain.push({ ts: ts(timeMs), symbol, price });
    }
    assert.equal(list.length, 30_000);
    list.sort();
    const expected = reportOrder(plain);
    assert.deepEqual([...list], expected);
    assert.deepEqual(list.slice(29_990), expected.slice(29_990));
    assert.deepEqual(list.slice(100, 102), expected.slice(100, 102));
    assert.deepEqual(list.at(12_345), expected[12_345]);
    assert.equal(JSON.stringify({ outliers: list }), JSON.stringify({ outliers: expected }));
    assert.deepEqual([...list.symbols].sort(), [...symbols].sort());
  });

  it('is empty until pushed, and grows past its first capacity', () => {
    const list = new OutlierList();
    list.sort();
    assert.deepEqual(list.slice(0), []);
    assert.equal(JSON.stringify(list), '[]');
    for (let i = 999; i >= 0; i--) list.push('X', i, Date.UTC(2024, 0, 1) + i);
    list.sort();
    assert.deepEqual(list.slice(0, 2), [
      { ts: '2024-01-01 00:00:00.000', symbol: 'X', price: 0 },
      { ts: '2024-01-01 00:00:00.001', symbol: 'X', price: 1 },
    ]);
    assert.equal(list.at(999).price, 999);
  });
});
