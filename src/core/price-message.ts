/**
 * The one decoder of `prices` messages, such as
 * `{"ts": "2021-03-10 16:21:32.000", "symbol": "AAPL", "price": 238.32}` (field names
 * configurable), used by `stats` and `indicators` alike (docs/prices.md). One rule set:
 *
 * - the value is a JSON object (other fields are ignored; of a repeated key the last counts);
 * - `ts` is a string `yyyy-mm-dd hh:mm:ss` with 0 to 9 fractional digits, `T` or a space
 *   between date and time, and no zone (UTC), `Z` or an offset `±hh:mm`; or epoch
 *   milliseconds as a JSON number. It names a real instant; `timeMs` is that instant
 *   truncated to the millisecond. With `strictTs`, only the string layouts
 *   `yyyy-mm-dd hh:mm:ss[.fff|.ffffff]` in UTC;
 * - `symbol` is a string of 1 to 32 characters, no control characters, no white space at
 *   either end;
 * - `price` is a JSON number, finite and greater than 0.
 *
 * The first rule broken, in that order, is the reason: a stable kebab-case code (for
 * metrics, dead-letter `x-reason`, reports), with a one-line `detail` for people.
 * Malformed input is a value, never a throw. `scanPriceBytes` (price-bytes.ts) reads the
 * common shape from bytes under the same rules; what it does not take, this decides.
 */
import { MAX_EPOCH_MS, parseStrictTsBytes, parseTsBytes } from './timestamp-bytes.ts';

export interface PriceFields {
  readonly symbol: string;
  readonly price: string;
  readonly ts: string;
}

export const DEFAULT_PRICE_FIELDS: PriceFields = Object.freeze({ symbol: 'symbol', price: 'price', ts: 'ts' });

/** The longest symbol accepted, in characters. */
export const MAX_SYMBOL_LENGTH = 32;

export interface PriceMessage {
  readonly symbol: string;
  readonly price: number;
  /** The event time exactly as it came: a string, or epoch milliseconds. */
  readonly ts: string | number;
  /** The event time in epoch milliseconds (UTC). */
  readonly timeMs: number;
}

/** Why a message is not a price: the value's shape, then the first field that breaks its rule. */
export type MalformedReason = 'empty' | 'not-json' | 'not-an-object' | 'bad-ts' | 'bad-symbol' | 'bad-price';

export const MALFORMED_REASONS: readonly MalformedReason[] = ['empty', 'not-json', 'not-an-object', 'bad-ts', 'bad-symbol', 'bad-price'];

export type Decoded<T> = { ok: true; value: T } | { ok: false; reason: MalformedReason; detail: string };

const malformed = (reason: MalformedReason, detail: string): Decoded<never> => ({ ok: false, reason, detail });

export interface PriceRules {
  /** Only `yyyy-mm-dd hh:mm:ss[.fff|.ffffff]` UTC strings for `ts` (`--strict-ts`). */
  readonly strictTs?: boolean;
}

/** What `ts` must look like, for error details. */
export function tsRule(rules: PriceRules = {}): string {
  return rules.strictTs
    ? 'a UTC time "yyyy-mm-dd hh:mm:ss[.fff|.ffffff]"'
    : 'a time "yyyy-mm-dd hh:mm:ss[.f…]" (T or space; no zone = UTC, Z or ±hh:mm) or epoch milliseconds';
}

export function decodePriceMessage(text: string | null, fields: PriceFields = DEFAULT_PRICE_FIELDS, rules: PriceRules = {}): Decoded<PriceMessage> {
  if (text === null || text.length === 0) return malformed('empty', 'the message has no value');
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    return malformed('not-json', 'the value is not JSON');
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) return malformed('not-an-object', 'the value is not a JSON object');
  const object = parsed as Record<string, unknown>;

  const ts = object[fields.ts];
  if (ts === undefined) return malformed('bad-ts', `"${fields.ts}" is missing`);
  const timeMs = typeof ts === 'string' ? parseTs(ts, rules) : typeof ts === 'number' && !rules.strictTs ? epochMs(ts) : Number.NaN;
  if (Number.isNaN(timeMs)) return malformed('bad-ts', `"${fields.ts}" must be ${tsRule(rules)}, got ${quote(ts)}`);

  const symbol = object[fields.symbol];
  if (symbol === undefined) return malformed('bad-symbol', `"${fields.symbol}" is missing`);
  if (typeof symbol !== 'string' || !isSymbol(symbol)) {
    return malformed('bad-symbol', `"${fields.symbol}" must be a string of 1 to ${MAX_SYMBOL_LENGTH} characters without control characters or surrounding spaces, got ${quote(symbol)}`);
  }

  const price = object[fields.price];
  if (price === undefined) return malformed('bad-price', `"${fields.price}" is missing`);
  if (typeof price !== 'number' || !Number.isFinite(price) || price <= 0) return malformed('bad-price', `"${fields.price}" must be a number greater than 0, got ${quote(price)}`);
  return { ok: true, value: { symbol, price, ts: ts as string | number, timeMs } };
}

/** Epoch ms of a `ts` string (see the rules above), or NaN. */
export function parseTs(text: string, rules: PriceRules = {}): number {
  const length = text.length;
  if (length < 19 || length > 35) return Number.NaN;
  const bytes = new Uint8Array(length);
  for (let i = 0; i < length; i++) {
    const c = text.charCodeAt(i);
    if (c > 0x7f) return Number.NaN;
    bytes[i] = c;
  }
  return rules.strictTs ? parseStrictTsBytes(bytes, 0, length) : parseTsBytes(bytes, 0, length);
}

/** A JSON number as epoch ms: finite, within a Date's range, truncated (floor) to the millisecond; else NaN. */
export function epochMs(value: number): number {
  return Number.isFinite(value) && Math.abs(value) <= MAX_EPOCH_MS ? Math.floor(value) + 0 : Number.NaN; // + 0: no -0
}

const CONTROL = /[\u0000-\u001f\u007f-\u009f]/;

export function isSymbol(symbol: string): boolean {
  return symbol.length >= 1 && symbol.length <= MAX_SYMBOL_LENGTH && symbol.trim() === symbol && !CONTROL.test(symbol);
}

function quote(value: unknown): string {
  const text = JSON.stringify(value) ?? String(value);
  return text.length > 40 ? `${text.slice(0, 37)}...` : text;
}

export interface IndicatorMessage {
  readonly symbol: string;
  readonly ts: string | number;
  readonly price: number;
  readonly ema: number;
  readonly volatility: number | null;
  readonly points: number;
  readonly seq: number;
}

/**
 * The `volatility` topic's JSON, fields in a fixed order. Written by hand (the same text
 * JSON.stringify gives for these finite numbers) because it runs once per message.
 */
export function encodeIndicatorMessage(m: IndicatorMessage): string {
  const ts = typeof m.ts === 'number' ? String(m.ts) : JSON.stringify(m.ts);
  const volatility = m.volatility === null ? 'null' : String(m.volatility);
  return `{"symbol":${JSON.stringify(m.symbol)},"ts":${ts},"price":${m.price},"ema":${m.ema},"volatility":${volatility},"points":${m.points},"seq":${m.seq}}`;
}
