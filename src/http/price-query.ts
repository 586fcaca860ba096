/**
 * What `GET /v1/get-prices` was asked, from its schema-validated query string. No
 * ticker, startTime or endTime: the latest aggregate of every ticker. Any of them: the
 * aggregates of those tickers (default all) whose window starts in [startTime, endTime).
 */
import { parseInstant } from '../core/stock-ticks.ts';
import { decodeCursor } from './cursor.ts';
import { ApiError } from './errors.ts';

export interface PricesQueryString {
  ticker?: string;
  startTime?: string;
  endTime?: string;
  limit?: number;
  cursor?: string;
}

export type PriceQuery =
  | { mode: 'latest'; afterTicker: string | null; limit: number }
  | {
    mode: 'range';
    /** null = every ticker. */
    tickers: string[] | null;
    from: number | null;
    to: number | null;
    after: { windowStart: number; ticker: string } | null;
    limit: number;
  };

export const DEFAULT_LIMIT = 100;
export const MAX_LIMIT = 1000;
export const MAX_TICKERS = 50;

export function parsePriceQuery(query: PricesQueryString): PriceQuery {
  const limit = query.limit ?? DEFAULT_LIMIT;
  if (query.ticker === undefined && query.startTime === undefined && query.endTime === undefined) {
    const cursor = query.cursor === undefined ? null : decodeCursor(query.cursor, 'latest');
    return { mode: 'latest', afterTicker: cursor?.kind === 'latest' ? cursor.ticker : null, limit };
  }
  const from = instant(query.startTime, 'startTime');
  const to = instant(query.endTime, 'endTime');
  if (from !== null && to !== null && to < from) {
    throw new ApiError('BAD_TIME_RANGE', `endTime (${new Date(to).toISOString()}) is before startTime (${new Date(from).toISOString()})`, 'endTime');
  }
  const tickers = query.ticker === undefined ? null : [...new Set(query.ticker.split(','))];
  const cursor = query.cursor === undefined ? null : decodeCursor(query.cursor, 'range');
  return {
    mode: 'range',
    tickers,
    from,
    to,
    after: cursor?.kind === 'range' ? { windowStart: cursor.windowStart, ticker: cursor.ticker } : null,
    limit,
  };
}

function instant(value: string | undefined, parameter: string): number | null {
  if (value === undefined) return null;
  const ms = parseInstant(value);
  if (ms === null) {
    throw new ApiError('BAD_PARAMETER', `${parameter} must be an ISO 8601 time such as 2024-05-01T12:00:00Z or epoch milliseconds, got "${value.slice(0, 40)}"`, parameter);
  }
  return ms;
}
