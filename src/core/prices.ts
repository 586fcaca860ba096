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

/** A generated tick with its event time as epoch ms (`ts` not yet formatted). */
export interface GeneratedTick {
  timeMs: number;
  symbol: string;
  price: number;
  anomaly: boolean;
}

/**
 * Reproducible ticks: per-symbol normal prices rounded to cents, with injected anomalies.
 * One object is reused for every tick: copy what you keep.
 */
export function* generateTicks(options: PriceGeneratorOptions): Generator<GeneratedTick> {
  const { random, symbols } = options;
  const tick: GeneratedTick = { timeMs: 0, symbol: '', price: 0, anomaly: false };
  for (let i = 0; i < options.count; i++) {
    const model = random.pick(symbols);
    const anomaly = random.next() < options.anomalyRate;
    const z = anomaly ? (random.next() < 0.5 ? -1 : 1) * (options.anomalySigmas + random.next() * 2) : random.normal();
    const raw = model.mean + z * model.stddev;
    tick.timeMs = options.startMs + i * options.stepMs;
    tick.symbol = model.symbol;
    tick.price = Math.max(0.01, Math.round(raw * 100) / 100);
    tick.anomaly = anomaly;
    yield tick;
  }
}

/** The same ticks with `ts` formatted, one object each. */
export function* generatePrices(options: PriceGeneratorOptions): Generator<PriceTick & { anomaly: boolean }> {
  for (const { timeMs, symbol, price, anomaly } of generateTicks(options)) yield { ts: formatTs(timeMs), symbol, price, anomaly };
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

const TS_FIELD = Buffer.from('{"ts":"');
const SYMBOL_FIELD = Buffer.from('","symbol":');
const PRICE_FIELD = Buffer.from(',"price":');
/** The longest message a tick can give, past its symbol's JSON (ts, fields, a price below 1e21). */
const FIXED_BYTES = TS_FIELD.length + 23 + SYMBOL_FIELD.length + PRICE_FIELD.length + 25 + 1;

/**
 * Writes ticks in their wire form straight into a buffer, byte for byte what `encodePrice`
 * returns for the tick with `formatTs(timeMs)`: no string per message, which `produce prices`
 * would otherwise build, measure and copy as UTF-8 (a third of its time).
 */
export class PriceWriter {
  readonly #symbols = new Map<string, { json: Buffer; key: Buffer }>();
  readonly #second = Buffer.alloc(19);
  #cachedSecond = Number.NaN;

  /** The symbol as a message key (UTF-8 bytes), shared by every message of the symbol. */
  key(symbol: string): Buffer {
    return this.#symbol(symbol).key;
  }

  /** An upper bound of the bytes `write` takes for a tick of `symbol`. */
  maxBytes(symbol: string): number {
    return FIXED_BYTES + this.#symbol(symbol).json.length;
  }

  /** Writes the tick at `pos` (room for `maxBytes` needed) and returns where it ends. */
  write(timeMs: number, symbol: string, price: number, out: Buffer, pos: number): number {
    pos += TS_FIELD.copy(out, pos);
    const ms = Math.floor(timeMs);
    const second = Math.floor(ms / 1000);
    if (second !== this.#cachedSecond) {
      this.#second.write(formatTs(second * 1000).slice(0, 19), 'latin1');
      this.#cachedSecond = second;
    }
    pos += this.#second.copy(out, pos);
    const millis = ms - second * 1000;
    out[pos++] = 46; // .
    out[pos++] = 48 + Math.floor(millis / 100);
    out[pos++] = 48 + (Math.floor(millis / 10) % 10);
    out[pos++] = 48 + (millis % 10);
    pos += SYMBOL_FIELD.copy(out, pos);
    pos += this.#symbol(symbol).json.copy(out, pos);
    pos += PRICE_FIELD.copy(out, pos);
    const cents = Math.round(price * 100);
    if (price > 0 && price < 1e13 && Math.abs(cents / 100 - price) < 1e-9 * price) {
      // Whole cents (every generated price): the digits of toFixed(2) without a string.
      const whole = Math.floor(cents / 100);
      const start = pos;
      let rest = whole;
      do {
        out[pos++] = 48 + (rest % 10);
        rest = Math.floor(rest / 10);
      } while (rest > 0);
      out.subarray(start, pos).reverse();
      const fraction = cents - whole * 100;
      out[pos++] = 46;
      out[pos++] = 48 + Math.floor(fraction / 10);
      out[pos++] = 48 + (fraction % 10);
    } else {
      pos += out.write(price.toFixed(2), pos, 'latin1');
    }
    out[pos++] = 125; // }
    return pos;
  }

  #symbol(symbol: string): { json: Buffer; key: Buffer } {
    let known = this.#symbols.get(symbol);
    if (!known) {
      known = { json: Buffer.from(JSON.stringify(symbol)), key: Buffer.from(symbol) };
      if (this.#symbols.size < 10_000) this.#symbols.set(symbol, known);
    }
    return known;
  }
}
