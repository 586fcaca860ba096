/**
 * Known data for the dashboard tests: 30-second windows ending now, indicator states built
 * by the core operators from known prices, and unique-users minute records.
 */
import { SymbolIndicators } from '../../src/core/indicators.ts';
import type { IndicatorValues } from '../../src/core/indicators.ts';
import type { Queryable } from '../../src/db/types.ts';

export const W = 30_000;

export interface WindowRow {
  ticker: string;
  windowStart: number;
  windowEnd: number;
  sampleCount: number;
  priceSum: number;
  minPrice: number;
  maxPrice: number;
}

export const MEANS: Record<string, number> = { AMZN: 1902, MSFT: 107, AAPL: 215 };

/** `count[ticker]` consecutive windows per ticker, the last one ending at or before `endMs`. */
export function stockWindows(count: Record<string, number>, endMs: number): WindowRow[] {
  const lastStart = Math.floor(endMs / W) * W - W;
  const rows: WindowRow[] = [];
  for (const [ticker, n] of Object.entries(count)) {
    const mean = MEANS[ticker] ?? 100;
    for (let i = 0; i < n; i++) {
      const start = lastStart - (n - 1 - i) * W;
      const sampleCount = 5 + (i % 4);
      // A gentle wave with a little noise, so the charts have a shape.
      const average = Math.round(mean * (1 + 0.02 * Math.sin(i / 4)) + (i % 3));
      rows.push({ ticker, windowStart: start, windowEnd: start + W, sampleCount, priceSum: average * sampleCount + (i % 2), minPrice: average - 3, maxPrice: average + 4 });
    }
  }
  return rows;
}

export async function insertStockWindows(db: Queryable, rows: readonly WindowRow[]): Promise<void> {
  const iso = (ms: number) => new Date(ms).toISOString();
  await db.query(
    `INSERT INTO stock_windows (ticker, window_start, window_end, sample_count, price_sum, price_min, price_max)
     SELECT * FROM unnest($1::text[], $2::timestamptz[], $3::timestamptz[], $4::bigint[], $5::bigint[], $6::bigint[], $7::bigint[])`,
    [rows.map((r) => r.ticker), rows.map((r) => iso(r.windowStart)), rows.map((r) => iso(r.windowEnd)), rows.map((r) => r.sampleCount), rows.map((r) => r.priceSum), rows.map((r) => r.minPrice), rows.map((r) => r.maxPrice)],
  );
}

/** Deterministic prices around `mean`. */
export function pricesAround(mean: number, n: number, seed: number): number[] {
  let x = seed;
  return Array.from({ length: n }, () => {
    x = (x * 1_103_515_245 + 12_345) % 2 ** 31;
    return Math.round(mean * (1 + ((x / 2 ** 31) - 0.5) * 0.04) * 100) / 100;
  });
}

/** Feeds the prices through the core operators; returns the state to keep and the last output. */
export function indicatorState(prices: readonly number[], window = 100): { state: object; last: IndicatorValues | null } {
  const indicators = new SymbolIndicators(window);
  let last: IndicatorValues | null = null;
  for (const price of prices) last = indicators.update(price);
  return { state: indicators.snapshot(), last };
}

export async function insertIndicatorState(db: Queryable, row: { consumer: string; topic: string; partition: number; symbol: string; state: object; updatedAt: Date }): Promise<void> {
  await db.query(
    'INSERT INTO indicator_state (consumer, topic, partition, symbol, state, updated_at) VALUES ($1, $2, $3, $4, $5, $6)',
    [row.consumer, row.topic, row.partition, row.symbol, JSON.stringify(row.state), row.updatedAt],
  );
}

export interface MinuteRecord {
  minute: string;
  start: number;
  uniqueUsers: number;
  frames: number;
  late: number;
}

/** `n` consecutive minutes ending with the minute before `endMs`. */
export function minuteRecords(n: number, endMs: number): MinuteRecord[] {
  const last = Math.floor(endMs / 60_000) * 60 - 60;
  return Array.from({ length: n }, (_, i) => {
    const start = last - (n - 1 - i) * 60;
    const uniqueUsers = 400 + Math.round(150 * Math.sin(i / 5)) + i;
    return { minute: new Date(start * 1000).toISOString().replace('.000Z', 'Z'), start, uniqueUsers, frames: uniqueUsers * 3, late: i % 4 };
  });
}
