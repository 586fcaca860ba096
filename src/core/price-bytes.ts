/**
 * The fast path for price messages: reads `{"ts": "...", "symbol": "...", "price": N}`
 * straight from the message bytes, without a string or an object per message, under the
 * rules of price-message.ts (one rule set). Strict: it accepts only a valid price in a
 * flat JSON object whose values are ASCII strings without escapes or plain numbers (`ts`
 * as a string, or as whole epoch milliseconds), with
 * each wanted key at most once; anything else returns false and the caller takes the full
 * path (`decodePriceMessage`), which gives the reason, so the answer never depends on the
 * path taken (fuzzed against each other in test/core/price-bytes.test.ts).
 *
 * Numbers: the digits form an integer mantissa m < 2^53 and a decimal scale 10^k
 * (k ≤ 22), both exact in binary, so m / 10^k is the correctly rounded value — the same
 * double JSON.parse produces. Exponents and longer mantissas fall back.
 */

import { MAX_SYMBOL_LENGTH } from './price-message.ts';
import { parseStrictTsBytes, parseTsBytes } from './timestamp-bytes.ts';

export interface PriceBytes {
  timeMs: number;
  price: number;
  symbolStart: number;
  symbolEnd: number;
}

/** Wanted keys as byte arrays, and the `ts` rules (precomputed once per job). */
export interface PriceKeys {
  ts: Uint8Array;
  symbol: Uint8Array;
  price: Uint8Array;
  /** `--strict-ts`: only `yyyy-mm-dd hh:mm:ss[.fff|.ffffff]` UTC strings. */
  strictTs: boolean;
}

export function priceKeys(fields: { ts: string; symbol: string; price: string }, rules: { strictTs?: boolean } = {}): PriceKeys {
  const encode = (s: string) => new TextEncoder().encode(s);
  return { ts: encode(fields.ts), symbol: encode(fields.symbol), price: encode(fields.price), strictTs: rules.strictTs ?? false };
}

const POW10 = [1, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22];

function skipSpace(b: Uint8Array, i: number, end: number): number {
  while (i < end) {
    const c = b[i];
    if (c === 32 || c === 9 || c === 10 || c === 13) i++;
    else break;
  }
  return i;
}

function sameKey(b: Uint8Array, start: number, end: number, key: Uint8Array): boolean {
  if (end - start !== key.length) return false;
  for (let i = 0; i < key.length; i++) if (b[start + i] !== key[i]) return false;
  return true;
}

/** Fills `out` and returns true when the message is a valid, complete flat price record. */
export function scanPriceBytes(b: Uint8Array, start: number, end: number, keys: PriceKeys, out: PriceBytes): boolean {
  let i = skipSpace(b, start, end);
  if (b[i] !== 123) return false; // {
  i = skipSpace(b, i + 1, end);
  let seen = 0;
  if (b[i] === 125) return false; // {} lacks every field: let the full path name what is missing
  for (;;) {
    if (b[i] !== 34) return false;
    const keyStart = ++i;
    while (i < end && b[i] !== 34) {
      if (b[i] === 92 || b[i] < 32 || b[i] > 126) return false;
      i++;
    }
    if (i >= end) return false;
    const keyEnd = i;
    i = skipSpace(b, i + 1, end);
    if (b[i] !== 58) return false; // :
    i = skipSpace(b, i + 1, end);
    const which = sameKey(b, keyStart, keyEnd, keys.ts) ? 1 : sameKey(b, keyStart, keyEnd, keys.symbol) ? 2 : sameKey(b, keyStart, keyEnd, keys.price) ? 4 : 0;
    if (which !== 0 && (seen & which) !== 0) return false; // duplicate: JSON.parse keeps the last one
    seen |= which;
    if (b[i] === 34) {
      const valueStart = ++i;
      while (i < end && b[i] !== 34) {
        if (b[i] === 92 || b[i] < 32 || b[i] > 126) return false;
        i++;
      }
      if (i >= end) return false;
      if (which === 1) {
        out.timeMs = keys.strictTs ? parseStrictTsBytes(b, valueStart, i) : parseTsBytes(b, valueStart, i);
        if (Number.isNaN(out.timeMs)) return false;
      } else if (which === 2) {
        // 1..32 characters, no space at either end (other white space is not printable ASCII)
        if (i === valueStart || i - valueStart > MAX_SYMBOL_LENGTH || b[valueStart] === 32 || b[i - 1] === 32) return false;
        out.symbolStart = valueStart;
        out.symbolEnd = i;
      } else if (which === 4) {
        return false; // a string price: the full path reports it
      }
      i++;
    } else {
      // A JSON number: -?(0|[1-9][0-9]*)(\.[0-9]+)?, exponents fall back.
      let negative = false;
      if (b[i] === 45) {
        negative = true;
        i++;
      }
      let mantissa = 0;
      let digits = 0;
      let scale = 0;
      if (b[i] === 48) {
        i++;
        digits = 1;
      } else if (b[i] >= 49 && b[i] <= 57) {
        while (i < end && b[i] >= 48 && b[i] <= 57) {
          mantissa = mantissa * 10 + (b[i++] - 48);
          digits++;
        }
      } else {
        return false;
      }
      if (b[i] === 46) {
        i++;
        if (!(b[i] >= 48 && b[i] <= 57)) return false;
        while (i < end && b[i] >= 48 && b[i] <= 57) {
          mantissa = mantissa * 10 + (b[i++] - 48);
          digits++;
          scale++;
        }
      }
      if (b[i] === 101 || b[i] === 69 || digits > 15 || scale > 22) return false;
      if (which === 4) {
        if (negative || mantissa === 0) return false; // not above 0: the full path reports it
        out.price = mantissa / POW10[scale];
      } else if (which === 1) {
        // Epoch milliseconds: whole numbers here (under 10^15, exact); fractions go the full path.
        if (scale > 0 || keys.strictTs) return false;
        out.timeMs = negative && mantissa !== 0 ? -mantissa : mantissa;
      } else if (which !== 0) {
        return false; // a number where a string belongs: the full path reports it
      }
    }
    i = skipSpace(b, i, end);
    if (b[i] === 44) {
      i = skipSpace(b, i + 1, end);
      continue;
    }
    if (b[i] === 125) return seen === 7 && skipSpace(b, i + 1, end) === end;
    return false;
  }
}

/**
 * Symbol names without a string per message: short ASCII names (up to 6 bytes, 48 bits)
 * are packed into an exact number and looked up; longer ones are decoded each time.
 */
export class SymbolNames {
  readonly #byKey = new Map<number, string>();

  name(b: Uint8Array, start: number, end: number): string {
    const length = end - start;
    if (length > 6) return new TextDecoder().decode(b.subarray(start, end));
    let key = length;
    for (let i = start; i < end; i++) key = key * 256 + b[i];
    let name = this.#byKey.get(key);
    if (name === undefined) {
      name = String.fromCharCode(...b.subarray(start, end));
      this.#byKey.set(key, name);
    }
    return name;
  }
}
