import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { decodePrice, encodePrice, formatTs, generatePrices, parseTs, DEFAULT_SYMBOLS } from '../../src/core/prices.ts';
import { seededRandom } from '../../src/core/random.ts';

describe('price ticks', () => {
  it('formats event time exactly as yyyy-mm-dd hh:mm:ss.fff in UTC and parses it back', () => {
    const ms = Date.UTC(2021, 2, 10, 16, 21, 32, 7);
    assert.equal(formatTs(ms), '2021-03-10 16:21:32.007');
    assert.equal(parseTs('2021-03-10 16:21:32.007'), ms);
  });

  it('agrees with Date.UTC on random instants across four centuries, leap days included', () => {
    const r = seededRandom('ts');
    for (let i = 0; i < 20_000; i++) {
      const ms = Math.floor((r.next() * 2 - 0.5) * 4e12);
      assert.equal(parseTs(formatTs(ms)), ms);
    }
    assert.equal(parseTs('2024-02-29 23:59:59.999'), Date.UTC(2024, 1, 29, 23, 59, 59, 999));
    assert.ok(Number.isNaN(parseTs('2023-02-29 00:00:00.000')));
    assert.ok(Number.isNaN(parseTs('1900-02-29 00:00:00.000')));
    assert.equal(parseTs('2000-02-29 00:00:00.000'), Date.UTC(2000, 1, 29));
  });

  for (const bad of ['2021-13-01 00:00:00.000', '2021-00-10 00:00:00.000', '2021-03-10 24:00:00.000', '2021-03-10 16:60:00.000', '2021-03-1a 16:21:32.000', '2021-03-10T16:21:32.000', '2021-03-10 16:21:32', '2021-02-30 00:00:00.000', '2021-3-10 16:21:32.000', ' 2021-03-10 16:21:32.000']) {
    it(`rejects the timestamp ${JSON.stringify(bad)}`, () => {
      assert.ok(Number.isNaN(parseTs(bad)));
    });
  }

  it('writes prices with exactly two decimals', () => {
    assert.equal(encodePrice({ ts: '2021-03-10 16:21:32.000', symbol: 'AAPL', price: 238.3 }), '{"ts":"2021-03-10 16:21:32.000","symbol":"AAPL","price":238.30}');
    assert.deepEqual(JSON.parse(encodePrice({ ts: 'x', symbol: 'A"B', price: 1 })), { ts: 'x', symbol: 'A"B', price: 1 });
  });

  const invalid: Array<[string | null, string]> = [
    [null, 'empty value'],
    ['{"ts": "2021-03-10 16:21:32.000", "symbol": "AAPL", "price": 1', 'not JSON'],
    ['[1,2]', 'not a JSON object'],
    ['"text"', 'not a JSON object'],
    ['{"symbol": "AAPL", "price": 1}', 'missing ts'],
    ['{"ts": 5, "symbol": "AAPL", "price": 1}', 'ts is not a string'],
    ['{"ts": "yesterday", "symbol": "AAPL", "price": 1}', 'ts is not yyyy-mm-dd hh:mm:ss.fff'],
    ['{"ts": "2021-03-10 16:21:32.000", "price": 1}', 'missing symbol'],
    ['{"ts": "2021-03-10 16:21:32.000", "symbol": "", "price": 1}', 'symbol is not a non-empty string'],
    ['{"ts": "2021-03-10 16:21:32.000", "symbol": "AAPL"}', 'missing price'],
    ['{"ts": "2021-03-10 16:21:32.000", "symbol": "AAPL", "price": "238.32"}', 'price is not a number'],
  ];
  for (const [text, reason] of invalid) {
    it(`refuses ${text === null ? 'a null value' : text} as "${reason}"`, () => {
      assert.deepEqual(decodePrice(text), { ok: false, reason });
    });
  }

  it('decodes a valid tick with configurable field names', () => {
    const decoded = decodePrice('{"t": "2021-03-10 16:21:32.000", "s": "AAPL", "p": 238.32}', { ts: 't', symbol: 's', price: 'p' });
    assert.deepEqual(decoded, { ok: true, tick: { ts: '2021-03-10 16:21:32.000', symbol: 'AAPL', price: 238.32 }, timeMs: Date.UTC(2021, 2, 10, 16, 21, 32) });
  });

  it('generates reproducible ticks for a seed, with cents, all symbols and the asked share of anomalies', () => {
    const options = { count: 20_000, symbols: DEFAULT_SYMBOLS, anomalyRate: 0.01, anomalySigmas: 6, startMs: 0, stepMs: 1000 };
    const a = [...generatePrices({ ...options, random: seededRandom(5) })];
    const b = [...generatePrices({ ...options, random: seededRandom(5) })];
    assert.deepEqual(a, b);
    assert.equal(new Set(a.map((t) => t.symbol)).size, 5);
    assert.ok(a.every((t) => Math.round(t.price * 100) / 100 === t.price && t.price > 0));
    const anomalies = a.filter((t) => t.anomaly).length;
    assert.ok(anomalies > 150 && anomalies < 250, `anomalies ${anomalies}`);
    assert.equal(a[1].ts, '1970-01-01 00:00:01.000');
  });
});
