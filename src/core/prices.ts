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
 * `next()` fills the one `tick` object (copy what you keep) and returns false at the end.
 */
export class TickGenerator {
  readonly tick: GeneratedTick = { timeMs: 0, symbol: '', price: 0, anomaly: false };
  readonly #options: PriceGeneratorOptions;
  #i = 0;

  constructor(options: PriceGeneratorOptions) {
    this.#options = options;
  }

  next(): boolean {
    const options = this.#options;
    if (this.#i >= options.count) return false;
    const { random } = options;
    const model = random.pick(options.symbols);
    const anomaly = random.next() < options.anomalyRate;
    const z = anomaly ? (random.next() < 0.5 ? -1 : 1) * (options.anomalySigmas + random.next() * 2) : random.normal();
    const raw = model.mean + z * model.stddev;
    const tick = this.tick;
    tick.timeMs = options.startMs + this.#i * options.stepMs;
    tick.symbol = model.symbol;
    tick.price = Math.max(0.01, Math.round(raw * 100) / 100);
    tick.anomaly = anomaly;
    this.#i++;
    return true;
  }
}

/** The same ticks as a generator, one reused object. */
export function* generateTicks(options: PriceGeneratorOptions): Generator<GeneratedTick> {
  const ticks = new TickGenerator(options);
  while (ticks.next()) yield ticks.tick;
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

/** The longest message a tick can give, past its symbol's JSON (ts, fields, a price below 1e21). */
const FIXED_BYTES = '{"ts":"'.length + 23 + '","symbol":'.length + ',"price":'.length + 25 + 1;

/**
 * Writes ticks in their wire form straight into a buffer, byte for byte what `encodePrice`
 * returns for the tick with `formatTs(timeMs)`: no string per message, which `produce prices`
 * would otherwise build, measure and copy as UTF-8 (a third of its time). A message is two
 * cached pieces — `{"ts":"yyyy-mm-dd hh:mm:` (per minute) and `","symbol":…,"price":` (per
 * symbol) — and the digits of its seconds, milliseconds and price, copied byte by byte (a
 * Buffer copy per piece costs more than the loop at these sizes).
 */
export class PriceWriter {
  readonly #symbols = new Map<string, { middle: Uint8Array; key: Buffer }>();
  readonly #head = new Uint8Array(24);
  #minute = Number.NaN;

  /** The symbol as a message key (UTF-8 bytes), shared by every message of the symbol. */
  key(symbol: string): Buffer {
    return this.#symbol(symbol).key;
  }

  /** An upper bound of the bytes `write` takes for a tick of `symbol`. */
  maxBytes(symbol: string): number {
    return FIXED_BYTES + this.#symbol(symbol).middle.length;
  }

  /** Writes the tick at `pos` (room for `maxBytes` needed) and returns where it ends. */
  write(timeMs: number, symbol: string, price: number, out: Uint8Array, pos: number): number {
    const ms = Math.floor(timeMs);
    const minute = Math.floor(ms / 60_000);
    const head = this.#head;
    if (minute !== this.#minute) {
      const text = `{"ts":"${formatTs(minute * 60_000).slice(0, 17)}`;
      for (let k = 0; k < 24; k++) head[k] = text.charCodeAt(k);
      this.#minute = minute;
    }
    for (let k = 0; k < 24; k++) out[pos++] = head[k];
    const inMinute = ms - minute * 60_000;
    const second = Math.floor(inMinute / 1000);
    const millis = inMinute - second * 1000;
    out[pos++] = 48 + Math.floor(second / 10);
    out[pos++] = 48 + (second % 10);
    out[pos++] = 46; // .
    out[pos++] = 48 + Math.floor(millis / 100);
    out[pos++] = 48 + (Math.floor(millis / 10) % 10);
    out[pos++] = 48 + (millis % 10);
    const middle = this.#symbol(symbol).middle;
    for (let k = 0; k < middle.length; k++) out[pos++] = middle[k];
    const cents = Math.round(price * 100);
    if (price > 0 && price < 1e13 && Math.abs(cents / 100 - price) < 1e-9 * price) {
      // Whole cents (every generated price): the digits of toFixed(2) without a string.
      const whole = Math.floor(cents / 100);
      let digits = 1;
      for (let rest = Math.floor(whole / 10); rest > 0; rest = Math.floor(rest / 10)) digits++;
      let rest = whole;
      for (let k = pos + digits - 1; k >= pos; k--) {
        out[k] = 48 + (rest % 10);
        rest = Math.floor(rest / 10);
      }
      pos += digits;
      const fraction = cents - whole * 100;
      out[pos++] = 46;
      out[pos++] = 48 + Math.floor(fraction / 10);
      out[pos++] = 48 + (fraction % 10);
    } else {
      const text = price.toFixed(2);
      for (let k = 0; k < text.length; k++) out[pos++] = text.charCodeAt(k);
    }
    out[pos++] = 125; // }
    return pos;
  }

  #symbol(symbol: string): { middle: Uint8Array; key: Buffer } {
    let known = this.#symbols.get(symbol);
    if (!known) {
      known = { middle: Buffer.from(`","symbol":${JSON.stringify(symbol)},"price":`), key: Buffer.from(symbol) };
      if (this.#symbols.size < 10_000) this.#symbols.set(symbol, known);
    }
    return known;
  }
}
