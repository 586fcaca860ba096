import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { MALFORMED_REASONS, decodePriceMessage, parseTs } from '../../src/core/price-message.ts';

const TS = '2021-03-10 16:21:32.000';
const message = (fields: Record<string, unknown>) => JSON.stringify({ ts: TS, symbol: 'AAPL', price: 238.32, ...fields });

describe('price messages: one rule set', () => {
  it('decodes the documented message, keeping ts as it came', () => {
    assert.deepEqual(decodePriceMessage('{"ts": "2021-03-10 16:21:32.000", "symbol": "AAPL", "price": 238.32}'), {
      ok: true,
      value: { ts: TS, symbol: 'AAPL', price: 238.32, timeMs: Date.UTC(2021, 2, 10, 16, 21, 32) },
    });
  });

  it('reads configurable field names, ignores other fields, takes the last of a repeated key (as JSON.parse)', () => {
    const decoded = decodePriceMessage('{"t": "2021-03-10 16:21:32.000", "s": "MSFT", "p": 1, "p": 107, "extra": {"price": -1}}', { symbol: 's', price: 'p', ts: 't' });
    assert.deepEqual(decoded, { ok: true, value: { ts: TS, symbol: 'MSFT', price: 107, timeMs: Date.UTC(2021, 2, 10, 16, 21, 32) } });
  });

  describe('ts: yyyy-mm-dd hh:mm:ss with no, three or six fractional digits, UTC', () => {
    const accepted: Array<[string, number]> = [
      ['2021-03-10 16:21:32.007', Date.UTC(2021, 2, 10, 16, 21, 32, 7)],
      ['2026-11-30 19:31:43.015327', Date.UTC(2026, 10, 30, 19, 31, 43, 15)], // Python str(datetime.now()): truncated to the ms
      ['2026-11-30 19:31:43.999999', Date.UTC(2026, 10, 30, 19, 31, 43, 999)],
      ['2026-11-30 19:31:43', Date.UTC(2026, 10, 30, 19, 31, 43)], // Python str() when the microseconds are 0
      ['2024-02-29 23:59:59.999', Date.UTC(2024, 1, 29, 23, 59, 59, 999)],
      ['2000-02-29 00:00:00.000', Date.UTC(2000, 1, 29)],
      ['1969-12-31 23:59:59.999', -1],
    ];
    for (const [ts, ms] of accepted) {
      it(`accepts ${ts}`, () => {
        assert.equal(parseTs(ts), ms);
        const decoded = decodePriceMessage(message({ ts }));
        assert.ok(decoded.ok && decoded.value.ts === ts && decoded.value.timeMs === ms);
      });
    }
    const refused = [
      '2021-13-01 00:00:00.000', '2021-00-10 00:00:00.000', '2021-03-10 24:00:00.000', '2021-03-10 16:60:00.000', '2021-03-10 16:21:60.000',
      '2021-03-1a 16:21:32.000', '2021-03-10T16:21:32.000', '2021-03-10 16:21:32.000Z', '2021-03-10 16:21:32.00', '2021-03-10 16:21:32.0000',
      '2021-03-10 16:21:32.01532', '2021-03-10 16:21:32.0153270', '2021-03-10 16:21:32.01532x', '2021-03-10 16:21:32,000', '2021-02-30 00:00:00.000',
      '2023-02-29 00:00:00.000', '1900-02-29 00:00:00.000', '2021-3-10 16:21:32.000', ' 2021-03-10 16:21:32.000', '2021-03-10 16:21:32.00٠', '',
    ];
    for (const ts of refused) {
      it(`refuses ${JSON.stringify(ts)} as bad-ts`, () => {
        assert.ok(Number.isNaN(parseTs(ts)));
        const decoded = decodePriceMessage(message({ ts }));
        assert.ok(!decoded.ok && decoded.reason === 'bad-ts', JSON.stringify(decoded));
      });
    }
  });

  const cases: Array<[string | null, string, RegExp]> = [
    [null, 'empty', /no value/],
    ['', 'empty', /no value/],
    ['{"ts": "2021-03-10 16:21:32.000", "symbol": "AAPL"', 'not-json', /not JSON/],
    ['[1,2]', 'not-an-object', /not a JSON object/],
    ['42', 'not-an-object', /not a JSON object/],
    ['null', 'not-an-object', /not a JSON object/],
    [message({ ts: undefined }), 'bad-ts', /"ts" is missing/],
    [message({ ts: 1615393292000 }), 'bad-ts', /got 1615393292000/],
    [message({ ts: null }), 'bad-ts', /got null/],
    [message({ ts: 'yesterday', symbol: '', price: 'x' }), 'bad-ts', /got "yesterday"/], // the first rule broken
    [message({ symbol: undefined }), 'bad-symbol', /"symbol" is missing/],
    [message({ symbol: '' }), 'bad-symbol', /1 to 32 characters/],
    [message({ symbol: 'A'.repeat(33) }), 'bad-symbol', /1 to 32/],
    [message({ symbol: ' AAPL' }), 'bad-symbol', /surrounding spaces/],
    [message({ symbol: 'AAPL\u00a0' }), 'bad-symbol', /surrounding spaces/],
    [message({ symbol: 'AA\nPL' }), 'bad-symbol', /control characters/],
    [message({ symbol: 'AA\u0085PL' }), 'bad-symbol', /control/],
    [message({ symbol: 7 }), 'bad-symbol', /got 7/],
    [message({ price: undefined }), 'bad-price', /"price" is missing/],
    [message({ price: '238.32' }), 'bad-price', /got "238.32"/],
    [message({ price: 0 }), 'bad-price', /greater than 0/],
    [message({ price: -3 }), 'bad-price', /greater than 0/],
    [message({ price: null }), 'bad-price', /got null/],
    ['{"ts": "2021-03-10 16:21:32.000", "symbol": "AAPL", "price": 1e999}', 'bad-price', /greater than 0/], // JSON.parse gives Infinity
  ];
  for (const [text, reason, detail] of cases) {
    it(`${text === null ? 'a null value' : JSON.stringify(text)}: ${reason}`, () => {
      const decoded = decodePriceMessage(text);
      assert.equal(decoded.ok, false);
      if (!decoded.ok) {
        assert.equal(decoded.reason, reason);
        assert.match(decoded.detail, detail);
      }
    });
  }

  it('accepts symbols of 1 to 32 characters, unicode included', () => {
    for (const symbol of ['A', 'BRK.B', 'A'.repeat(32), 'ÄÖÜ', 'BTC-USD', 'A B']) {
      const decoded = decodePriceMessage(message({ symbol }));
      assert.ok(decoded.ok && decoded.value.symbol === symbol, symbol);
    }
  });

  it('every reason is a stable kebab-case code', () => {
    for (const reason of MALFORMED_REASONS) assert.match(reason, /^[a-z]+(-[a-z]+)*$/);
  });
});
