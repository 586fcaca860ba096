import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { SymbolIndicators } from '../../src/core/indicators.ts';
import { decodePriceMessage, encodeIndicatorMessage } from '../../src/core/price-message.ts';
import { close, randomWalk, referenceEma, referenceVolatility, seededRandom } from '../indicators/reference.ts';

describe('SymbolIndicators: 50 symbols interleaved', () => {
  it('each symbol gets exactly the reference of its own subsequence, whatever the gaps between its points', () => {
    const random = seededRandom(50);
    const symbols = Array.from({ length: 50 }, (_, i) => `S${i}`);
    // Uneven interleaving: a few symbols are hot, many are rare; some vanish for long gaps.
    const weights = symbols.map((_, i) => 1 / (1 + i));
    const total = weights.reduce((a, b) => a + b, 0);
    const walks = new Map(symbols.map((s, i) => [s, randomWalk(random, 2000, 10 + i * 7, 0.005 + i * 0.0005)]));
    const seen = new Map(symbols.map((s) => [s, 0]));
    const state = new Map<string, SymbolIndicators>();
    for (let tick = 0; tick < 12_000; tick++) {
      let pick = random() * total;
      let index = 0;
      while (pick > weights[index] && index < symbols.length - 1) pick -= weights[index++];
      const symbol = symbols[index];
      if (index % 10 === 3 && tick > 3000 && tick < 9000) continue; // a gap of 6000 ticks for some symbols
      const i = seen.get(symbol)!;
      seen.set(symbol, i + 1);
      const prices = walks.get(symbol)!;
      if (i >= prices.length) continue;
      let indicators = state.get(symbol);
      if (!indicators) state.set(symbol, (indicators = new SymbolIndicators(100)));
      const values = indicators.update(prices[i]);
      assert.ok(close(values.ema, referenceEma(prices, 100, i), 1e-12), `${symbol} point ${i} ema`);
      assert.ok(close(values.volatility, referenceVolatility(prices, 100, i), 1e-9), `${symbol} point ${i} volatility`);
      assert.equal(values.points, Math.min(i + 1, 100));
      assert.equal(values.seq, i + 1);
    }
    assert.ok([...seen.values()].filter((n) => n > 100).length >= 10, 'enough symbols fill their window');
    assert.ok([...seen.values()].some((n) => n > 0 && n < 100), 'some symbols stay in warm-up');
  });

  it('refuses a snapshot taken with another window', () => {
    const snapshot = new SymbolIndicators(100).snapshot();
    assert.throws(() => new SymbolIndicators(50, snapshot), /window of 100 points/);
  });
});

describe('price messages (the decoder itself: test/core/price-message.test.ts)', () => {
  it('gives indicators the one rule set, ts kept as it came', () => {
    assert.deepEqual(decodePriceMessage('{"ts": "2021-03-10 16:21:32.000", "symbol": "AAPL", "price": 238.32}'), {
      ok: true,
      value: { ts: '2021-03-10 16:21:32.000', symbol: 'AAPL', price: 238.32, timeMs: Date.UTC(2021, 2, 10, 16, 21, 32) },
    });
    const invalid = decodePriceMessage('{"ts": "2021-03-10 16:21:32.000", "symbol": "A", "price": -3}');
    assert.ok(!invalid.ok && invalid.reason === 'bad-price', 'log returns need a price above 0');
  });

  it('encodes the volatility message with its fields in order', () => {
    assert.equal(
      encodeIndicatorMessage({ symbol: 'AAPL', ts: '2021-03-10 16:21:32.000', price: 238.32, ema: 238.32, volatility: null, points: 1, seq: 1 }),
      '{"symbol":"AAPL","ts":"2021-03-10 16:21:32.000","price":238.32,"ema":238.32,"volatility":null,"points":1,"seq":1}',
    );
  });

  it('encodes exactly what JSON.stringify would, for awkward symbols, times and numbers', () => {
    const cases = [
      { symbol: 'BRK"B\\\n', ts: 'ünïcode ✓', price: 1e-7, ema: 123456789012345680000, volatility: 5e-324, points: 3, seq: 3 },
      { symbol: 'A', ts: 1615393292000, price: 0.1 + 0.2, ema: -0, volatility: null, points: 1, seq: 1 },
      { symbol: '\u2028x', ts: '2021-03-10 16:21:32.000', price: 238.32, ema: 238.3199999999, volatility: 0.004213, points: 100, seq: 123456 },
    ];
    for (const message of cases) {
      assert.equal(encodeIndicatorMessage(message), JSON.stringify(message));
    }
  });
});
