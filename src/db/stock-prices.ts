/**
 * Read queries over stock_windows for the API. Every value is a bind parameter; the SQL
 * text is fixed. Each query walks the primary key (ticker, window_start): per ticker,
 * in time order, stopping after `limit` rows (EXPLAIN output in docs/stocks.md).
 */
import type { Queryable } from './types.ts';

export interface StockWindowRow {
  ticker: string;
  windowStart: Date;
  windowEnd: Date;
  /** price_sum / sample_count, from the exact numeric average. */
  averagePrice: number;
  sampleCount: number;
  minPrice: number;
  maxPrice: number;
  priceSum: number;
}

/** A stock_windows row as pg returns it (int8 and numeric as strings). */
export interface RawRow {
  ticker: string;
  window_start: Date;
  window_end: Date;
  avg_price: string;
  sample_count: string;
  price_min: string;
  price_max: string;
  price_sum: string;
}

export const COLUMNS = 'ticker, window_start, window_end, avg_price, sample_count, price_min, price_max, price_sum';

/**
 * CTE `t(ticker)`: distinct tickers in ascending order with one index probe each (a loose
 * index scan), not a full scan; the last row is NULL.
 */
export const DISTINCT_TICKERS = `
  WITH RECURSIVE t(ticker) AS (
    (SELECT ticker FROM stock_windows ORDER BY ticker LIMIT 1)
    UNION ALL
    SELECT (SELECT s.ticker FROM stock_windows s WHERE s.ticker > t.ticker ORDER BY s.ticker LIMIT 1)
    FROM t WHERE t.ticker IS NOT NULL
  )`;

export async function stockTickers(db: Queryable): Promise<string[]> {
  const { rows } = await db.query<{ ticker: string }>(`${DISTINCT_TICKERS} SELECT ticker FROM t WHERE ticker IS NOT NULL`);
  return rows.map((row) => row.ticker);
}

/** Each ticker's most recent window, ordered by ticker: $1 = after this ticker (or null), $2 = limit. */
export const LATEST_SQL = `${DISTINCT_TICKERS}
  SELECT w.* FROM t CROSS JOIN LATERAL (
    SELECT ${COLUMNS} FROM stock_windows s WHERE s.ticker = t.ticker ORDER BY s.window_start DESC LIMIT 1
  ) w
  WHERE t.ticker IS NOT NULL AND ($1::text IS NULL OR t.ticker > $1::text)
  ORDER BY w.ticker LIMIT $2`;

/** Each ticker's most recent window, ordered by ticker, after `afterTicker`, at most `limit`. */
export async function latestStockPrices(db: Queryable, options: { afterTicker: string | null; limit: number }): Promise<StockWindowRow[]> {
  const { rows } = await db.query<RawRow>(LATEST_SQL, [options.afterTicker, options.limit]);
  return rows.map(toRow);
}

export interface StockRangeQuery {
  tickers: readonly string[];
  /** Inclusive lower bound of window_start, epoch ms, or null. */
  from: number | null;
  /** Exclusive upper bound of window_start, epoch ms, or null. */
  to: number | null;
  /** Resume strictly after this (window_start, ticker). */
  after: { windowStart: number; ticker: string } | null;
  limit: number;
}

/**
 * The windows of tickers $1 whose start lies in [$2, $3), after ($4, $5) in
 * (window_start, ticker) order, at most $6. Per ticker an index range scan stops after
 * $6 rows; the few candidates are then merged, so the cost depends on the page size,
 * not on how wide the range is.
 */
export const RANGE_SQL = `SELECT w.* FROM unnest($1::text[]) AS t(ticker) CROSS JOIN LATERAL (
    SELECT ${COLUMNS} FROM stock_windows s
    WHERE s.ticker = t.ticker
      AND s.window_start >= greatest($2::timestamptz, $4::timestamptz)
      AND s.window_start < $3::timestamptz
      AND ($4::timestamptz IS NULL OR s.window_start > $4::timestamptz OR s.ticker > $5::text)
    ORDER BY s.window_start LIMIT $6
  ) w
  ORDER BY w.window_start, w.ticker LIMIT $6`;

/** RANGE_SQL's parameters for a query. */
export function rangeParameters(query: StockRangeQuery): unknown[] {
  const iso = (ms: number | null) => (ms === null ? null : new Date(ms).toISOString());
  return [query.tickers, iso(query.from) ?? '-infinity', iso(query.to) ?? 'infinity', iso(query.after?.windowStart ?? null), query.after?.ticker ?? null, query.limit];
}

export async function stockPricesInRange(db: Queryable, query: StockRangeQuery): Promise<StockWindowRow[]> {
  const { rows } = await db.query<RawRow>(RANGE_SQL, rangeParameters(query));
  return rows.map(toRow);
}

export function toRow(row: RawRow): StockWindowRow {
  return {
    ticker: row.ticker,
    windowStart: row.window_start,
    windowEnd: row.window_end,
    averagePrice: Number(row.avg_price),
    sampleCount: Number(row.sample_count),
    minPrice: Number(row.price_min),
    maxPrice: Number(row.price_max),
    priceSum: Number(row.price_sum),
  };
}

/** Resolves once the stocks table is readable (the database answers and is migrated); for /readyz. */
export async function probeStockWindows(db: Queryable): Promise<void> {
  await db.query('SELECT 1 FROM stock_windows LIMIT 0');
}
