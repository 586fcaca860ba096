import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { seededRandom } from '../../src/core/random.ts';
import { DEFAULT_TICKERS, decodeStockTick, encodeStockTick, parseInstant, priceRange, stockTicks } from '../../src/core/stock-ticks.ts';

const START = Date.UTC(2024, 0, 1);

describe('stock tick generator', () => {
  it('draws integer prices from [ceil(0.9·mean), floor(1.1·mean)]', () => {
    assert.deepEqual(priceRange(1902, 0.1), [1712, 2092]);
    assert.deepEqual(priceRange(107, 0.1), [97, 117]);
    assert.deepEqual(priceRange(215, 0.1), [194, 236]);
    assert.deepEqual(priceRange(0.4, 0.1), [1, 1]);
  });

  it('is reproducible from its seed, and another seed gives another stream', () => {
    const run = (seed: string) => {
      const next = stockTicks({ random: seededRandom(seed), tickers: DEFAULT_TICKERS, spread: 0.1 });
      return Array.from({ length: 200 }, (_, i) => encodeStockTick(next(START + i * 100)));
    };
    assert.deepEqual(run('42'), run('42'));
    assert.notDeepEqual(run('42'), run('43'));
  });

  it('puts 1 to 3 distinct tickers in every message, prices uniform within ±10 %', () => {
    const next = stockTicks({ random: seededRandom(7), tickers: DEFAULT_TICKERS, spread: 0.1 });
    const sizes = new Map<number, number>();
    const seen = new Map<string, { min: number; max: number; n: number }>();
    for (let i = 0; i < 20_000; i++) {
      const tick = next(START + i);
      assert.equal(tick.eventTime, START + i);
      assert.equal(new Set(tick.tickers.map((t) => t.name)).size, tick.tickers.length);
      sizes.set(tick.tickers.length, (sizes.get(tick.tickers.length) ?? 0) + 1);
      for (const { name, price } of tick.tickers) {
        const [low, high] = priceRange(DEFAULT_TICKERS.find((t) => t.name === name)!.mean, 0.1);
        assert.ok(Number.isInteger(price) && price >= low && price <= high, `${name} ${price} in [${low}, ${high}]`);
        const s = seen.get(name) ?? { min: Infinity, max: -Infinity, n: 0 };
        seen.set(name, { min: Math.min(s.min, price), max: Math.max(s.max, price), n: s.n + 1 });
      }
    }
    assert.deepEqual([...sizes.keys()].sort(), [1, 2, 3]);
    for (const size of [1, 2, 3]) assert.ok(sizes.get(size)! > 6000, `about a third of messages hold ${size} tickers`);
    for (const { name, mean } of DEFAULT_TICKERS) {
      const [low, high] = priceRange(mean, 0.1);
      assert.deepEqual([seen.get(name)!.min, seen.get(name)!.max], [low, high], `${name} reaches both ends of its range`);
    }
  });

  it('never draws more tickers than configured', () => {
    const next = stockTicks({ random: seededRandom(1), tickers: [{ name: 'ONLY', mean: 10 }], spread: 0.1 });
    for (let i = 0; i < 100; i++) assert.equal(next(i).tickers.length, 1);
  });
});

describe('stock tick codec', () => {
  it('writes ts as ISO 8601 UTC with milliseconds and reads it back', () => {
    const tick = { eventTime: Date.UTC(2024, 4, 1, 12, 0, 0, 100), tickers: [{ name: 'AMZN', price: 1902 }, { name: 'MSFT', price: 107 }] };
    const text = encodeStockTick(tick);
    assert.equal(text, '{"tickers":[{"name":"AMZN","price":1902},{"name":"MSFT","price":107}],"ts":"2024-05-01T12:00:00.100Z"}');
    assert.deepEqual(decodeStockTick(text), { ok: true, tick });
  });

  it('accepts epoch milliseconds and offsets for ts', () => {
    const epoch = decodeStockTick('{"tickers":[{"name":"A","price":1}],"ts":1714564800100}');
    const offset = decodeStockTick('{"tickers":[{"name":"A","price":1}],"ts":"2024-05-01T14:00:00.100+02:00"}');
    assert.ok(epoch.ok && offset.ok);
    assert.equal(epoch.tick.eventTime, Date.UTC(2024, 4, 1, 12, 0, 0, 100));
    assert.equal(offset.tick.eventTime, Date.UTC(2024, 4, 1, 12, 0, 0, 100));
  });

  const malformed: Array<[string | null, string]> = [
    [null, 'empty'],
    ['', 'empty'],
    ['{"tickers": [', 'not-json'],
    ['[1, 2]', 'not-an-object'],
    ['"text"', 'not-an-object'],
    ['{"tickers":[{"name":"A","price":1}]}', 'bad-ts'],
    ['{"tickers":[{"name":"A","price":1}],"ts":"2024-02-30T00:00:00Z"}', 'bad-ts'],
    ['{"tickers":[{"name":"A","price":1}],"ts":"yesterday"}', 'bad-ts'],
    ['{"tickers":[{"name":"A","price":1}],"ts":true}', 'bad-ts'],
    ['{"tickers":[],"ts":0}', 'no-tickers'],
    ['{"tickers":{"name":"A"},"ts":0}', 'no-tickers'],
    ['{"tickers":[null],"ts":0}', 'bad-ticker'],
    ['{"tickers":[{"name":"","price":1}],"ts":0}', 'bad-ticker'],
    ['{"tickers":[{"name":"A B","price":1}],"ts":0}', 'bad-ticker'],
    ['{"tickers":[{"name":"A\'; DROP TABLE x;--","price":1}],"ts":0}', 'bad-ticker'],
    ['{"tickers":[{"price":1}],"ts":0}', 'bad-ticker'],
    ['{"tickers":[{"name":"A","price":1},{"name":"A","price":2}],"ts":0}', 'duplicate-ticker'],
    ['{"tickers":[{"name":"A","price":1.5}],"ts":0}', 'bad-price'],
    ['{"tickers":[{"name":"A","price":-1}],"ts":0}', 'bad-price'],
    ['{"tickers":[{"name":"A","price":0}],"ts":0}', 'bad-price'],
    ['{"tickers":[{"name":"A","price":"10"}],"ts":0}', 'bad-price'],
    ['{"tickers":[{"name":"A","price":1e12}],"ts":0}', 'bad-price'],
  ];
  for (const [text, reason] of malformed) {
    it(`rejects ${JSON.stringify(text)} as ${reason}`, () => {
      const decoded = decodeStockTick(text);
      assert.equal(decoded.ok, false);
      assert.equal(!decoded.ok && decoded.reason, reason);
    });
  }
});

describe('parseInstant', () => {
  const cases: Array<[unknown, number | null]> = [
    ['2024-05-01T12:00:00Z', Date.UTC(2024, 4, 1, 12)],
    ['2024-05-01T12:00:00.123456Z', Date.UTC(2024, 4, 1, 12, 0, 0, 123)],
    ['2024-05-01 12:00', Date.UTC(2024, 4, 1, 12)],
    ['2024-05-01', Date.UTC(2024, 4, 1)],
    ['2024-05-01T12:00:00-0130', Date.UTC(2024, 4, 1, 13, 30)],
    ['1714564800000', Date.UTC(2024, 4, 1, 12)],
    [1714564800000, Date.UTC(2024, 4, 1, 12)],
    ['0001-01-01T00:00:00Z', -62135596800000],
    ['2024-02-29T00:00:00Z', Date.UTC(2024, 1, 29)],
    ['2023-02-29T00:00:00Z', null],
    ['2024-01-01T24:00:00Z', null],
    ['2024-01-01T12:00:00+25:00', null],
    ['10000-01-01T00:00:00Z', null],
    ['99999999999999999', null],
    [1.5, null],
    ['', null],
    ["2024-01-01' OR '1'='1", null],
    [null, null],
  ];
  for (const [input, expected] of cases) {
    it(`${JSON.stringify(input)} → ${expected === null ? 'invalid' : new Date(expected).toISOString()}`, () => {
      assert.equal(parseInstant(input), expected);
    });
  }
});
