/**
 * Read queries behind the live dashboard: the recent 30-second windows of each ticker and
 * the latest indicator state of each symbol. Fixed SQL, bind parameters only.
 */
import type { IndicatorSnapshot } from '../core/indicators.ts';
import { COLUMNS, DISTINCT_TICKERS, toRow } from './stock-prices.ts';
import type { RawRow, StockWindowRow } from './stock-prices.ts';
import type { Queryable } from './types.ts';

/** A window as the API returns it, without the raw sum. */
export type RecentWindow = Omit<StockWindowRow, 'priceSum'>;

/**
 * The last $2 windows of each of the first $1 tickers (by name), ordered by ticker then
 * time. The tickers come from a loose index scan of the primary key and each ticker's
 * windows from one backward range scan of it, so the cost does not grow with the table.
 */
const RECENT_WINDOWS_SQL = `${DISTINCT_TICKERS}
  SELECT w.* FROM (SELECT ticker FROM t WHERE ticker IS NOT NULL LIMIT $1) k CROSS JOIN LATERAL (
    SELECT ${COLUMNS}
    FROM stock_windows s WHERE s.ticker = k.ticker ORDER BY s.window_start DESC LIMIT $2
  ) w
  ORDER BY w.ticker, w.window_start`;

export async function recentStockWindows(db: Queryable, options: { tickers: number; windows: number }): Promise<RecentWindow[]> {
  const { rows } = await db.query<RawRow>(RECENT_WINDOWS_SQL, [options.tickers, options.windows]);
  return rows.map((row) => {
    const { priceSum: _sum, ...window } = toRow(row);
    return window;
  });
}

export interface KeptIndicatorState {
  symbol: string;
  /** The consumer group that keeps it. */
  consumer: string;
  topic: string;
  snapshot: IndicatorSnapshot;
  updatedAt: Date;
}

/**
 * The most recently written state of each symbol (a symbol lives on one input partition,
 * but several consumer groups or topics may keep state for it: the newest wins).
 */
const LATEST_INDICATORS_SQL = `
  SELECT symbol, consumer, topic, state, updated_at FROM (
    SELECT DISTINCT ON (symbol) symbol, consumer, topic, state, updated_at
    FROM indicator_state ORDER BY symbol, updated_at DESC
  ) latest ORDER BY symbol LIMIT $1`;

export async function latestIndicatorStates(db: Queryable, options: { limit: number }): Promise<KeptIndicatorState[]> {
  const { rows } = await db.query<{ symbol: string; consumer: string; topic: string; state: IndicatorSnapshot; updated_at: Date }>(
    LATEST_INDICATORS_SQL,
    [options.limit],
  );
  return rows.map((row) => ({ symbol: row.symbol, consumer: row.consumer, topic: row.topic, snapshot: row.state, updatedAt: row.updated_at }));
}
