import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { encodePrice, formatTs, generatePrices, PriceWriter, DEFAULT_SYMBOLS } from '../../src/core/prices.ts';
import { decodePriceMessage, parseTs } from '../../src/core/price-message.ts';
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

  it('writes prices with exactly two decimals', () => {
    assert.equal(encodePrice({ ts: '2021-03-10 16:21:32.000', symbol: 'AAPL', price: 238.3 }), '{"ts":"2021-03-10 16:21:32.000","symbol":"AAPL","price":238.30}');
    assert.deepEqual(JSON.parse(encodePrice({ ts: 'x', symbol: 'A"B', price: 1 })), { ts: 'x', symbol: 'A"B', price: 1 });
  });

  it('writes what the decoder reads back', () => {
    const r = seededRandom('round-trip');
    for (const tick of generatePrices({ count: 2000, symbols: DEFAULT_SYMBOLS, anomalyRate: 0.05, anomalySigmas: 6, startMs: Date.UTC(2021, 0, 1), stepMs: 1234, random: r })) {
      const decoded = decodePriceMessage(encodePrice(tick));
      assert.ok(decoded.ok);
      assert.deepEqual(decoded.value, { ts: tick.ts, symbol: tick.symbol, price: tick.price, timeMs: parseTs(tick.ts) });
    }
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

  it('writes the same bytes as encodePrice straight into a buffer (the producer path)', () => {
    const writer = new PriceWriter();
    const r = seededRandom('bytes');
    const out = Buffer.alloc(1 << 16);
    const symbols = ['AAPL', 'A"B', 'Zürich AG', '株式', 'X'];
    const prices = [0.01, 0.1, 1, 9.99, 10, 99.5, 238.3, 1e6 + 0.07, 123456789.12, 5e12 + 0.01, 1e14, 1e22, 0.005, 1 / 3];
    for (let i = 0; i < 20_000; i++) {
      const timeMs = Math.floor((r.next() * 2 - 0.5) * 4e12);
      const symbol = symbols[i % symbols.length];
      const price = i < prices.length ? prices[i] : Math.round(r.next() * 10 ** Math.floor(r.next() * 9)) / 100 || 0.01;
      const pos = Math.floor(r.next() * 100);
      const end = writer.write(timeMs, symbol, price, out, pos);
      assert.ok(end - pos <= writer.maxBytes(symbol), 'within maxBytes');
      assert.equal(out.toString('utf8', pos, end), encodePrice({ ts: formatTs(timeMs), symbol, price }), `${timeMs} ${symbol} ${price}`);
    }
    assert.deepEqual(writer.key('Zürich AG'), Buffer.from('Zürich AG'));
  });
});
