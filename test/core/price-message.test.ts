import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { MALFORMED_REASONS, decodePriceMessage, parseTs } from '../../src/core/price-message.ts';
import { seededRandom } from '../../src/core/random.ts';

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

  describe('ts: yyyy-mm-dd hh:mm:ss with 0 to 9 fractional digits, T or space, UTC / Z / ±hh:mm; epoch ms', () => {
    const accepted: Array<[string, number]> = [
      ['2021-03-10 16:21:32.007', Date.UTC(2021, 2, 10, 16, 21, 32, 7)],
      ['2026-11-30 19:31:43.015327', Date.UTC(2026, 10, 30, 19, 31, 43, 15)], // Python str(datetime.now()): truncated to the ms
      ['2026-11-30 19:31:43.999999', Date.UTC(2026, 10, 30, 19, 31, 43, 999)],
      ['2026-11-30 19:31:43', Date.UTC(2026, 10, 30, 19, 31, 43)], // Python str() when the microseconds are 0
      ['2024-02-29 23:59:59.999', Date.UTC(2024, 1, 29, 23, 59, 59, 999)],
      ['2000-02-29 00:00:00.000', Date.UTC(2000, 1, 29)],
      ['1969-12-31 23:59:59.999', -1],
      ['2021-03-10 16:21:32.5', Date.UTC(2021, 2, 10, 16, 21, 32, 500)],
      ['2021-03-10 16:21:32.05', Date.UTC(2021, 2, 10, 16, 21, 32, 50)],
      ['2021-03-10 16:21:32.0153', Date.UTC(2021, 2, 10, 16, 21, 32, 15)],
      ['2021-03-10 16:21:32.123456789', Date.UTC(2021, 2, 10, 16, 21, 32, 123)], // nanoseconds: truncated
      ['2021-03-10T16:21:32.000Z', Date.UTC(2021, 2, 10, 16, 21, 32)], // JavaScript toISOString
      ['2021-03-10T16:21:32Z', Date.UTC(2021, 2, 10, 16, 21, 32)],
      ['2021-03-10T16:21:32', Date.UTC(2021, 2, 10, 16, 21, 32)], // no zone: UTC, as with a space
      ['2021-03-10 16:21:32Z', Date.UTC(2021, 2, 10, 16, 21, 32)],
      ['2021-03-10T17:21:32.250+01:00', Date.UTC(2021, 2, 10, 16, 21, 32, 250)],
      ['2026-11-30 19:31:43.015327+00:00', Date.UTC(2026, 10, 30, 19, 31, 43, 15)], // Python str() of an aware datetime
      ['2021-03-10T00:21:32-16:00', Date.UTC(2021, 2, 10, 16, 21, 32)],
      ['2021-01-01T00:30:00+05:45', Date.UTC(2020, 11, 31, 18, 45)], // the offset crosses the year
      ['1969-12-31 23:59:59.9999999', -1],
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
      '2021-03-1a 16:21:32.000', '2021-03-10 16:21:32.', '2021-03-10 16:21:32.1234567890', '2021-03-10 16:21:32.01532x', '2021-03-10 16:21:32,000',
      '2021-02-30 00:00:00.000', '2023-02-29 00:00:00.000', '1900-02-29 00:00:00.000', '2021-3-10 16:21:32.000', ' 2021-03-10 16:21:32.000',
      '2021-03-10 16:21:32.000 ', '2021-03-10 16:21:32.00٠', '', '2021-03-10t16:21:32Z', '2021-03-10T16:21:32z', '2021-03-10_16:21:32',
      '2021-03-10T16:21:32+0100', '2021-03-10T16:21:32+01', '2021-03-10T16:21:32+24:00', '2021-03-10T16:21:32+01:60', '2021-03-10T16:21:32Z+01:00',
      '2021-03-10T16:21:32+01:00Z', '2021-03-10T16:21', '2021-03-10', '1615393292000', '2021-03-10T16:21:32.+01:00',
    ];
    for (const ts of refused) {
      it(`refuses ${JSON.stringify(ts)} as bad-ts`, () => {
        assert.ok(Number.isNaN(parseTs(ts)));
        const decoded = decodePriceMessage(message({ ts }));
        assert.ok(!decoded.ok && decoded.reason === 'bad-ts', JSON.stringify(decoded));
      });
    }

    it('reads 20,000 random instants in every layout back to the millisecond (against Date)', () => {
      const r = seededRandom('ts-layouts');
      const pad = (n: number, w = 2) => String(n).padStart(w, '0');
      for (let i = 0; i < 20_000; i++) {
        const ms = r.int(Date.UTC(1, 0, 1), Date.UTC(9999, 11, 31, 23, 59, 59, 999));
        const sub = r.int(0, 999_999); // digits below the millisecond, truncated away
        const zone = r.int(0, 3);
        const offsetMin = zone === 3 ? r.int(-23 * 60 - 59, 23 * 60 + 59) : 0;
        const local = new Date(ms + offsetMin * 60_000);
        if (local.getUTCFullYear() < 1 || local.getUTCFullYear() > 9999) continue;
        const nanos = pad(ms - Math.floor(ms / 1000) * 1000, 3) + pad(sub, 6);
        const digits = r.int(0, 9);
        const fraction = digits === 0 ? '' : `.${nanos.slice(0, digits)}`;
        const head = `${pad(local.getUTCFullYear(), 4)}-${pad(local.getUTCMonth() + 1)}-${pad(local.getUTCDate())}${r.next() < 0.5 ? ' ' : 'T'}${pad(local.getUTCHours())}:${pad(local.getUTCMinutes())}:${pad(local.getUTCSeconds())}`;
        const tz = zone === 0 ? '' : zone === 1 || zone === 2 ? 'Z' : `${offsetMin < 0 ? '-' : '+'}${pad(Math.floor(Math.abs(offsetMin) / 60))}:${pad(Math.abs(offsetMin) % 60)}`;
        const text = head + fraction + tz;
        const millis = ms - Math.floor(ms / 1000) * 1000;
        const kept = digits >= 3 ? millis : Math.floor(millis / 10 ** (3 - digits)) * 10 ** (3 - digits);
        const expected = Math.floor(ms / 1000) * 1000 + kept;
        assert.equal(parseTs(text), expected, text);
      }
    });

    it('takes epoch milliseconds as a JSON number (truncated to the millisecond), keeping ts as it came', () => {
      for (const [text, ms] of [['1615393292000', 1615393292000], ['1615393292000.9', 1615393292000], ['-1.5', -2], ['1.615393292e12', 1615393292000], ['0', 0], ['-0', 0], ['8.64e15', 8.64e15]] as const) {
        const decoded = decodePriceMessage(`{"ts": ${text}, "symbol": "AAPL", "price": 1}`);
        assert.ok(decoded.ok, text);
        assert.equal(decoded.value.timeMs, ms, text);
        assert.equal(decoded.value.ts, JSON.parse(text));
      }
      for (const text of ['8.64e15000', '8.640000001e15', '-1e300']) {
        const decoded = decodePriceMessage(`{"ts": ${text}, "symbol": "AAPL", "price": 1}`);
        assert.ok(!decoded.ok && decoded.reason === 'bad-ts', text);
      }
    });

    describe('strictTs: only yyyy-mm-dd hh:mm:ss with no, three or six fractional digits, UTC (today\'s rule)', () => {
      const strict = { strictTs: true };
      for (const ts of ['2021-03-10 16:21:32.007', '2026-11-30 19:31:43.015327', '2026-11-30 19:31:43']) {
        it(`accepts ${ts}`, () => assert.equal(parseTs(ts, strict), parseTs(ts)));
      }
      for (const ts of ['2021-03-10T16:21:32.000', '2021-03-10 16:21:32.000Z', '2021-03-10 16:21:32.00', '2021-03-10 16:21:32.0000', '2021-03-10 16:21:32.01532',
        '2021-03-10 16:21:32.0153270', '2021-03-10 16:21:32.000+00:00', '2021-02-30 00:00:00.000']) {
        it(`refuses ${ts}`, () => {
          assert.ok(Number.isNaN(parseTs(ts, strict)));
          const decoded = decodePriceMessage(message({ ts }), undefined, strict);
          assert.ok(!decoded.ok && decoded.reason === 'bad-ts' && /yyyy-mm-dd hh:mm:ss\[\.fff\|\.ffffff\]/.test(decoded.detail), JSON.stringify(decoded));
        });
      }
      it('refuses epoch numbers', () => {
        const decoded = decodePriceMessage(message({ ts: 1615393292000 }), undefined, strict);
        assert.ok(!decoded.ok && decoded.reason === 'bad-ts');
      });
    });
  });

  const cases: Array<[string | null, string, RegExp]> = [
    [null, 'empty', /no value/],
    ['', 'empty', /no value/],
    ['{"ts": "2021-03-10 16:21:32.000", "symbol": "AAPL"', 'not-json', /not JSON/],
    ['[1,2]', 'not-an-object', /not a JSON object/],
    ['42', 'not-an-object', /not a JSON object/],
    ['null', 'not-an-object', /not a JSON object/],
    [message({ ts: undefined }), 'bad-ts', /"ts" is missing/],
    [message({ ts: '1615393292000' }), 'bad-ts', /got "1615393292000"/],
    [message({ ts: true }), 'bad-ts', /or epoch milliseconds, got true/],
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
