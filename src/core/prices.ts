import { parseTsBytes } from './timestamp-bytes.ts';
import type { Random } from './random.ts';

/** One market tick on the `prices` topic. */
export interface PriceTick {
  /** Event time, UTC, formatted exactly `yyyy-mm-dd hh:mm:ss.fff`. */
  ts: string;
  symbol: string;
  /** Two-digit precision. */
  price: number;
}

export interface SymbolModel {
  symbol: string;
  mean: number;
  stddev: number;
}

export const DEFAULT_SYMBOLS: readonly SymbolModel[] = [
  { symbol: 'AAPL', mean: 238, stddev: 4 },
  { symbol: 'MSFT', mean: 415, stddev: 6 },
  { symbol: 'AMZN', mean: 185, stddev: 3.5 },
  { symbol: 'GOOG', mean: 165, stddev: 3 },
  { symbol: 'TSLA', mean: 250, stddev: 9 },
];

const pad = (n: number, width = 2) => String(n).padStart(width, '0');

const MILLIS = Array.from({ length: 1000 }, (_, i) => `.${pad(i, 3)}`);
let cachedSecond = Number.NaN;
let cachedPrefix = '';

/** Formats epoch ms as `yyyy-mm-dd hh:mm:ss.fff` (UTC). The seconds part is reused while it holds. */
export function formatTs(epochMs: number): string {
  const ms = Math.floor(epochMs);
  const second = Math.floor(ms / 1000);
  if (second !== cachedSecond) {
    const d = new Date(second * 1000);
    cachedPrefix = `${d.getUTCFullYear()}-${pad(d.getUTCMonth() + 1)}-${pad(d.getUTCDate())} ${pad(d.getUTCHours())}:${pad(d.getUTCMinutes())}:${pad(d.getUTCSeconds())}`;
    cachedSecond = second;
  }
  return cachedPrefix + MILLIS[ms - second * 1000];
}

/**
 * Parses `yyyy-mm-dd hh:mm:ss.fff` (UTC) to epoch ms; NaN unless the text is exactly that
 * and names a real date (no 2021-02-30).
 */
export function parseTs(text: string): number {
  if (text.length !== 23 || /[^\x00-\x7f]/.test(text)) return Number.NaN;
  const bytes = new Uint8Array(23);
  for (let i = 0; i < 23; i++) bytes[i] = text.charCodeAt(i);
  return parseTsBytes(bytes, 0, 23);
}

export interface PriceGeneratorOptions {
  count: number;
  symbols: readonly SymbolModel[];
  /** Share of ticks replaced by an anomaly (0..1). */
  anomalyRate: number;
  /** How far anomalies sit from the mean, in stddevs (sign random). */
  anomalySigmas: number;
  /** Event time of the first tick and the spacing between ticks. */
  startMs: number;
  stepMs: number;
  random: Random;
}

/** Reproducible ticks: per-symbol normal prices rounded to cents, with injected anomalies. */
export function* generatePrices(options: PriceGeneratorOptions): Generator<PriceTick & { anomaly: boolean }> {
  const { random, symbols } = options;
  for (let i = 0; i < options.count; i++) {
    const model = random.pick(symbols);
    const anomaly = random.next() < options.anomalyRate;
    const z = anomaly ? (random.next() < 0.5 ? -1 : 1) * (options.anomalySigmas + random.next() * 2) : random.normal();
    const raw = model.mean + z * model.stddev;
    const price = Math.max(0.01, Math.round(raw * 100) / 100);
    yield { ts: formatTs(options.startMs + i * options.stepMs), symbol: model.symbol, price, anomaly };
  }
}

/** The wire form: JSON with the price written with exactly two decimals. */
const symbolJson = new Map<string, string>();

export function encodePrice(tick: PriceTick): string {
  let symbol = symbolJson.get(tick.symbol);
  if (symbol === undefined) {
    symbol = JSON.stringify(tick.symbol);
    if (symbolJson.size < 10_000) symbolJson.set(tick.symbol, symbol);
  }
  return `{"ts":"${tick.ts}","symbol":${symbol},"price":${tick.price.toFixed(2)}}`;
}

export type PriceDecodeResult = { ok: true; tick: PriceTick; timeMs: number } | { ok: false; reason: string };

export interface PriceFields {
  ts: string;
  symbol: string;
  price: string;
}

export const DEFAULT_PRICE_FIELDS: PriceFields = { ts: 'ts', symbol: 'symbol', price: 'price' };

/**
 * Decodes and validates one message; the reason names what is wrong. (The hot path reads
 * the common shape from bytes first: see price-bytes.ts; this is the full path.)
 */
export function decodePrice(text: string | null, fields: PriceFields = DEFAULT_PRICE_FIELDS): PriceDecodeResult {
  if (text === null) return { ok: false, reason: 'empty value' };
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return { ok: false, reason: 'not JSON' };
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return { ok: false, reason: 'not a JSON object' };
  const record = value as Record<string, unknown>;
  return validate(record[fields.ts], record[fields.symbol], record[fields.price], fields);
}

function validate(ts: unknown, symbol: unknown, price: unknown, fields: PriceFields): PriceDecodeResult {
  if (typeof ts !== 'string') return { ok: false, reason: ts === undefined ? `missing ${fields.ts}` : `${fields.ts} is not a string` };
  const timeMs = parseTs(ts);
  if (Number.isNaN(timeMs)) return { ok: false, reason: `${fields.ts} is not yyyy-mm-dd hh:mm:ss.fff` };
  if (typeof symbol !== 'string' || symbol === '') return { ok: false, reason: symbol === undefined ? `missing ${fields.symbol}` : `${fields.symbol} is not a non-empty string` };
  if (typeof price !== 'number' || !Number.isFinite(price)) return { ok: false, reason: price === undefined ? `missing ${fields.price}` : `${fields.price} is not a number` };
  return { ok: true, tick: { ts, symbol, price }, timeMs };
}
