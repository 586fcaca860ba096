/**
 * Decoding of `prices` messages such as
 * `{"ts": "2021-03-10 16:21:32.000", "symbol": "AAPL", "price": 238.32}`, with the field
 * names configurable. Malformed input is a value with a reason, never a throw, so a
 * pipeline can count and dead-letter it.
 */

export interface PriceFields {
  readonly symbol: string;
  readonly price: string;
  readonly ts: string;
}

export const DEFAULT_PRICE_FIELDS: PriceFields = Object.freeze({ symbol: 'symbol', price: 'price', ts: 'ts' });

export interface PriceMessage {
  readonly symbol: string;
  readonly price: number;
  /** The event time as it came (string or number), passed through untouched. */
  readonly ts: string | number;
}

export type MalformedReason = 'empty' | 'not-json' | 'not-an-object' | 'bad-symbol' | 'bad-price' | 'bad-ts';

export type Decoded<T> = { ok: true; value: T } | { ok: false; reason: MalformedReason; detail: string };

const malformed = (reason: MalformedReason, detail: string): Decoded<never> => ({ ok: false, reason, detail });

export function decodePriceMessage(text: string | null, fields: PriceFields = DEFAULT_PRICE_FIELDS): Decoded<PriceMessage> {
  if (text === null || text.length === 0) return malformed('empty', 'the message has no value');
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    return malformed('not-json', 'the value is not JSON');
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) return malformed('not-an-object', 'the value is not a JSON object');
  const object = parsed as Record<string, unknown>;
  const symbol = object[fields.symbol];
  if (typeof symbol !== 'string' || symbol.length === 0) return malformed('bad-symbol', `"${fields.symbol}" must be a non-empty string`);
  const price = object[fields.price];
  // Log returns need a strictly positive price.
  if (typeof price !== 'number' || !Number.isFinite(price) || price <= 0) return malformed('bad-price', `"${fields.price}" must be a positive number`);
  const ts = object[fields.ts];
  if (!((typeof ts === 'string' && ts.length > 0) || (typeof ts === 'number' && Number.isFinite(ts)))) {
    return malformed('bad-ts', `"${fields.ts}" must be a string or a number`);
  }
  return { ok: true, value: { symbol, price, ts } };
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
