/**
 * The `stocks` topic's messages: one to three distinct tickers with integer prices and
 * the event time, e.g.
 * `{"tickers": [{"name": "AMZN", "price": 1902}, {"name": "MSFT", "price": 107}], "ts": "2024-05-01T12:00:00.100Z"}`.
 *
 * `ts` is written as ISO 8601 in UTC with milliseconds (`Date#toISOString`). The decoder
 * also accepts any ISO 8601 time with an offset (none means UTC) or epoch milliseconds.
 * Malformed input is a value with a reason, never a throw, so the aggregator can count
 * and dead-letter it. Pure: randomness and time are passed in.
 */
import type { Random } from './random.ts';

export interface TickerMean {
  readonly name: string;
  /** Prices are drawn uniformly from the integers within ±spread of this mean. */
  readonly mean: number;
}

export const DEFAULT_TICKERS: readonly TickerMean[] = Object.freeze([
  { name: 'AMZN', mean: 1902 },
  { name: 'MSFT', mean: 107 },
  { name: 'AAPL', mean: 215 },
]);

export interface TickerPrice {
  readonly name: string;
  readonly price: number;
}

export interface StockTick {
  readonly tickers: readonly TickerPrice[];
  /** Event time, epoch milliseconds. */
  readonly eventTime: number;
}

/** Names as they may appear in the topic and in the API's `ticker` parameter. */
export const TICKER_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,31}$/;
/** Prices are integers in [1, MAX_PRICE] (a price is > 0): sums of a window stay exact in a double. */
export const MAX_PRICE = 1_000_000_000;
export const MAX_TICKERS_PER_TICK = 3;

/** The inclusive integer range of prices drawn for a mean: [ceil(mean·(1−s)), floor(mean·(1+s))]. */
export function priceRange(mean: number, spread: number): [number, number] {
  const low = Math.max(1, Math.ceil(mean * (1 - spread)));
  const high = Math.min(MAX_PRICE, Math.floor(mean * (1 + spread)));
  if (low > high) {
    const only = Math.min(MAX_PRICE, Math.max(1, Math.round(mean)));
    return [only, only];
  }
  return [low, high];
}

export interface StockTickOptions {
  random: Random;
  tickers: readonly TickerMean[];
  /** Relative half-width of the price range: 0.1 = ±10 %. */
  spread: number;
}

/**
 * A generator of ticks: each call draws how many tickers (1 to 3, uniformly, at most
 * as many as configured), which ones (distinct, in random order) and their prices.
 */
export function stockTicks(options: StockTickOptions): (eventTime: number) => StockTick {
  const { random, tickers, spread } = options;
  if (tickers.length === 0) throw new RangeError('at least one ticker is needed');
  const ranges = new Map(tickers.map((t) => [t.name, priceRange(t.mean, spread)]));
  const most = Math.min(MAX_TICKERS_PER_TICK, tickers.length);
  return (eventTime) => {
    const chosen = random.sample(tickers, random.int(1, most));
    return {
      eventTime,
      tickers: chosen.map((t) => {
        const [low, high] = ranges.get(t.name)!;
        return { name: t.name, price: random.int(low, high) };
      }),
    };
  };
}

/** The wire form: tickers first, then `ts` as ISO 8601 UTC with milliseconds. */
export function encodeStockTick(tick: StockTick): string {
  return JSON.stringify({ tickers: tick.tickers.map((t) => ({ name: t.name, price: t.price })), ts: new Date(tick.eventTime).toISOString() });
}

export type StockTickFault = 'empty' | 'not-json' | 'not-an-object' | 'bad-ts' | 'no-tickers' | 'bad-ticker' | 'duplicate-ticker' | 'bad-price';

export type DecodedStockTick = { ok: true; tick: StockTick } | { ok: false; reason: StockTickFault; detail: string };

const fault = (reason: StockTickFault, detail: string): DecodedStockTick => ({ ok: false, reason, detail });

export function decodeStockTick(text: string | null): DecodedStockTick {
  if (text === null || text.length === 0) return fault('empty', 'the message has no value');
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    return fault('not-json', 'the value is not JSON');
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) return fault('not-an-object', 'the value is not a JSON object');
  const object = parsed as Record<string, unknown>;
  const eventTime = parseInstant(object.ts);
  if (eventTime === null) return fault('bad-ts', '"ts" must be an ISO 8601 time or epoch milliseconds');
  const list = object.tickers;
  if (!Array.isArray(list) || list.length === 0) return fault('no-tickers', '"tickers" must be a non-empty array');
  const tickers: TickerPrice[] = [];
  const seen = new Set<string>();
  for (const item of list) {
    if (typeof item !== 'object' || item === null) return fault('bad-ticker', 'every ticker must be an object with "name" and "price"');
    const { name, price } = item as Record<string, unknown>;
    if (typeof name !== 'string' || !TICKER_NAME.test(name)) return fault('bad-ticker', `ticker name must match ${TICKER_NAME}`);
    if (seen.has(name)) return fault('duplicate-ticker', `ticker ${name} appears twice`);
    seen.add(name);
    if (typeof price !== 'number' || !Number.isInteger(price) || price < 1 || price > MAX_PRICE) {
      return fault('bad-price', `price of ${name} must be an integer in 1..${MAX_PRICE}`);
    }
    tickers.push({ name, price });
  }
  return { ok: true, tick: { tickers, eventTime } };
}

const ISO_TIME = /^(\d{4})-(\d{2})-(\d{2})(?:[T ](\d{2}):(\d{2})(?::(\d{2})(?:\.(\d{1,9}))?)?)?(Z|[+-]\d{2}:?\d{2})?$/i;
/** Keeps every event time inside what both JavaScript dates and Postgres timestamptz hold. */
const MIN_TIME = utc(1, 0, 1, 0, 0, 0, 0);
const MAX_TIME = utc(9999, 11, 31, 23, 59, 59, 999);

/** Date.UTC, except that years 0..99 stay themselves instead of meaning 1900..1999. */
function utc(year: number, month: number, day: number, hours: number, minutes: number, seconds: number, ms: number): number {
  const date = new Date(Date.UTC(2000, month, day, hours, minutes, seconds, ms));
  date.setUTCFullYear(year, month, day);
  return date.getTime();
}

/**
 * An instant from ISO 8601 (`2024-05-01T12:00:00.123Z`, `...+02:00`, a space instead of
 * `T`, a bare date = its midnight; no offset = UTC) or epoch milliseconds (a number or a
 * string of digits). Rejects impossible calendar dates such as 2024-02-30 instead of
 * rolling them over, and instants outside years 1..9999.
 */
export function parseInstant(value: unknown): number | null {
  if (typeof value === 'number') return Number.isInteger(value) && value >= MIN_TIME && value <= MAX_TIME ? value : null;
  if (typeof value !== 'string') return null;
  if (/^-?\d{1,16}$/.test(value)) return parseInstant(Number(value));
  const match = ISO_TIME.exec(value);
  if (!match) return null;
  const [, y, mo, d, h = '0', mi = '0', s = '0', fraction = '', offset = 'Z'] = match;
  const ms = Number(fraction.padEnd(3, '0').slice(0, 3));
  const local = utc(Number(y), Number(mo) - 1, Number(d), Number(h), Number(mi), Number(s), ms);
  const check = new Date(local);
  if (
    check.getUTCFullYear() !== Number(y) || check.getUTCMonth() !== Number(mo) - 1 || check.getUTCDate() !== Number(d) ||
    check.getUTCHours() !== Number(h) || check.getUTCMinutes() !== Number(mi) || check.getUTCSeconds() !== Number(s)
  ) {
    return null;
  }
  let offsetMinutes = 0;
  if (offset.toUpperCase() !== 'Z') {
    const digits = offset.replace(':', '');
    const hours = Number(digits.slice(1, 3));
    const minutes = Number(digits.slice(3, 5));
    if (hours > 23 || minutes > 59) return null;
    offsetMinutes = (digits[0] === '-' ? -1 : 1) * (hours * 60 + minutes);
  }
  const instant = local - offsetMinutes * 60_000;
  return instant >= MIN_TIME && instant <= MAX_TIME ? instant : null;
}
