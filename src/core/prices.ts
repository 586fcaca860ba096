import type { Random } from './random.ts';

/**
 * Price ticks as `produce prices` makes them: the generator and the wire encoding. They
 * are read back by the one decoder, price-message.ts.
 */

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
