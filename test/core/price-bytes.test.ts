import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { priceKeys, scanPriceBytes, SymbolNames } from '../../src/core/price-bytes.ts';
import type { PriceBytes } from '../../src/core/price-bytes.ts';
import { decodePriceMessage, DEFAULT_PRICE_FIELDS } from '../../src/core/price-message.ts';
import { seededRandom } from '../../src/core/random.ts';

const keys = priceKeys(DEFAULT_PRICE_FIELDS);
const strictKeys = priceKeys(DEFAULT_PRICE_FIELDS, { strictTs: true });
const scan = (text: string, k = keys) => {
  const bytes = Buffer.from(`xx${text}yy`); // an offset range inside a larger buffer
  const out: PriceBytes = { timeMs: 0, price: 0, symbolStart: 0, symbolEnd: 0 };
  if (!scanPriceBytes(bytes, 2, bytes.length - 2, k, out)) return undefined;
  return { timeMs: out.timeMs, price: out.price, symbol: bytes.toString('utf8', out.symbolStart, out.symbolEnd) };
};

describe('scanPriceBytes (the byte fast path)', () => {
  it('reads the canonical message', () => {
    assert.deepEqual(scan('{"ts":"2021-03-10 16:21:32.000","symbol":"AAPL","price":238.32}'), {
      timeMs: Date.UTC(2021, 2, 10, 16, 21, 32),
      price: 238.32,
      symbol: 'AAPL',
    });
  });

  it('accepts whitespace, any key order and extra flat fields', () => {
    assert.deepEqual(scan(' { "price" : 0.5 , "extra": "x", "n": -3, "symbol":"B", "ts":"2000-02-29 00:00:00.000" } '), {
      timeMs: Date.UTC(2000, 1, 29),
      price: 0.5,
      symbol: 'B',
    });
  });

  it('reads ts with six or no fractional digits, as the rules say', () => {
    assert.deepEqual(scan('{"ts":"2026-11-30 19:31:43.015327","symbol":"AAPL","price":1}'), { timeMs: Date.UTC(2026, 10, 30, 19, 31, 43, 15), price: 1, symbol: 'AAPL' });
    assert.deepEqual(scan('{"ts":"2026-11-30 19:31:43","symbol":"AAPL","price":1}'), { timeMs: Date.UTC(2026, 10, 30, 19, 31, 43), price: 1, symbol: 'AAPL' });
  });

  it('reads ts with T, Z, offsets, 1 to 9 fractional digits and whole epoch milliseconds', () => {
    const at = (ts: string) => scan(`{"ts":${ts},"symbol":"AAPL","price":1}`)?.timeMs;
    assert.equal(at('"2021-03-10T16:21:32.5Z"'), Date.UTC(2021, 2, 10, 16, 21, 32, 500));
    assert.equal(at('"2021-03-10T17:21:32.123456789+01:00"'), Date.UTC(2021, 2, 10, 16, 21, 32, 123));
    assert.equal(at('"2021-03-10 16:21:32.01-00:30"'), Date.UTC(2021, 2, 10, 16, 51, 32, 10));
    assert.equal(at('1615393292000'), 1615393292000);
    assert.equal(at('-1000'), -1000);
    assert.equal(at('-0'), 0);
  });

  it('with strictTs reads only the three UTC layouts', () => {
    assert.ok(scan('{"ts":"2021-03-10 16:21:32.000","symbol":"AAPL","price":1}', strictKeys));
    for (const ts of ['"2021-03-10T16:21:32.000"', '"2021-03-10 16:21:32.000Z"', '"2021-03-10 16:21:32.00"', '1615393292000']) {
      assert.equal(scan(`{"ts":${ts},"symbol":"AAPL","price":1}`, strictKeys), undefined, ts);
    }
  });

  const fallbacks = [
    '{"ts":"2021-03-10 16:21:32.000","symbol":"AAPL","price":2.5e2}', // exponent
    '{"ts":"2021-03-10 16:21:32.000","symbol":"A\\u0041","price":1}', // escape
    '{"ts":"2021-03-10 16:21:32.000","symbol":"Ä","price":1}', // non-ASCII
    '{"ts":"2021-03-10 16:21:32.000","symbol":"AAPL","price":1,"price":2}', // duplicate
    '{"ts":"2021-03-10 16:21:32.000","symbol":"AAPL","price":"1"}', // string price
    '{"ts":"2021-03-10 16:21:32.000","symbol":"AAPL"}', // missing price
    '{"ts":"2021-03-10 16:21:32.000","symbol":"AAPL","price":1,"x":{}}', // nested
    '{"ts":"2021-03-10 16:21:32.000","symbol":"AAPL","price":12345678901234567}', // long mantissa
    '{"ts":"2021-02-30 16:21:32.000","symbol":"AAPL","price":1}', // no such date
    '{"ts":"2021-03-10 16:21:32.000","symbol":"AAPL","price":1,}',
    '{"ts":"2021-03-10 16:21:32.000","symbol":"AAPL","price":01}',
    '{"ts":"2021-03-10 16:21:32.000","symbol":"AAPL","price":-1}', // not above 0
    '{"ts":"2021-03-10 16:21:32.000","symbol":"AAPL","price":0.00}',
    '{"ts":"2021-03-10 16:21:32.000","symbol":"AAPL","price":-0}',
    '{"ts":"2021-03-10 16:21:32.000","symbol":"AAPL ","price":1}', // space at an end
    '{"ts":"2021-03-10 16:21:32.000","symbol":" AAPL","price":1}',
    `{"ts":"2021-03-10 16:21:32.000","symbol":"${'A'.repeat(33)}","price":1}`, // over 32 characters
    '{"ts":"2021-03-10 16:21:32.","symbol":"AAPL","price":1}',
    '{"ts":"2021-03-10 16:21:32.0153270001","symbol":"AAPL","price":1}', // ten fractional digits
    '{"ts":"2021-03-10T16:21:32+0100","symbol":"AAPL","price":1}',
    '{"ts":1615393292000.5,"symbol":"AAPL","price":1}', // fractional epoch ms: the full path truncates it
    '{"ts":1.615393292e12,"symbol":"AAPL","price":1}', // exponent
    '{"ts":1234567890123456,"symbol":"AAPL","price":1}', // 16 digits
    '{}',
  ];
  for (const text of fallbacks) {
    it(`leaves ${text} to the full path`, () => assert.equal(scan(text), undefined));
  }

  for (const [name, k, rules] of [['default', keys, {}], ['strictTs', strictKeys, { strictTs: true }]] as const) {
    it(`never disagrees with decodePriceMessage (JSON.parse) on 100,000 mutated messages (${name} ts rules)`, () => {
      const r = seededRandom(`price-bytes-${name}`);
      const bases = [
        '{"ts":"2021-03-10 16:21:32.000","symbol":"AAPL","price":238.32}',
        '{"ts":"2026-11-30 19:31:43.015327","symbol":"BRK.B","price":0.5}',
        '{"ts":"2026-11-30 19:31:43","symbol":"ABCDEFGHIJKLMNOPQRSTUVWXYZ012345","price":1}',
        '{"ts":"2026-11-30T19:31:43.123456789Z","symbol":"MSFT","price":415.5}',
        '{"ts":"2026-11-30T20:31:43.5+01:00","symbol":"GOOG","price":165}',
        '{"ts":1615393292000,"symbol":"TSLA","price":250.01}',
      ];
      const alphabet = '{}[]":,.-+eE0123456789 \\tnulAPLsymbolpricetsTZ:';
      let fast = 0;
      for (let i = 0; i < 100_000; i++) {
        const chars = [...bases[i % bases.length]!];
        for (let n = r.int(1, 3); n > 0; n--) {
          const at = r.int(0, chars.length - 1);
          const op = r.int(0, 2);
          const ch = alphabet[r.int(0, alphabet.length - 1)];
          if (op === 0) chars[at] = ch;
          else if (op === 1) chars.splice(at, 0, ch);
          else chars.splice(at, 1);
        }
        const text = chars.join('');
        const scanned = scan(text, k);
        if (scanned === undefined) continue;
        fast++;
        const full = decodePriceMessage(text, DEFAULT_PRICE_FIELDS, rules);
        assert.ok(full.ok, `fast path accepted what the full path refuses: ${text}`);
        assert.deepEqual(scanned, { timeMs: full.value.timeMs, price: full.value.price, symbol: full.value.symbol }, text);
      }
      assert.ok(fast > 1000, `the fast path was exercised (${fast})`);
    });
  }

  it('gives the correctly rounded double for every two-decimal price up to 100,000', () => {
    const out: PriceBytes = { timeMs: 0, price: 0, symbolStart: 0, symbolEnd: 0 };
    for (let cents = 1; cents <= 10_000_000; cents += 7) { // prices above 0
      const text = (cents / 100).toFixed(2);
      const bytes = Buffer.from(`{"ts":"2021-03-10 16:21:32.000","symbol":"A","price":${text}}`);
      assert.ok(scanPriceBytes(bytes, 0, bytes.length, keys, out));
      if (out.price !== Number(text)) assert.fail(`${text}: ${out.price}`);
    }
  });

  it('names symbols once and reuses the string', () => {
    const names = new SymbolNames();
    const bytes = Buffer.from('AAPL MSFT LONGSYMBOLNAME');
    assert.equal(names.name(bytes, 0, 4), 'AAPL');
    assert.equal(names.name(bytes, 5, 9), 'MSFT');
    assert.equal(names.name(bytes, 0, 4), 'AAPL');
    assert.equal(names.name(bytes, 10, 24), 'LONGSYMBOLNAME');
  });
});
