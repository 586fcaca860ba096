/** GET /v1/get-prices: the latest aggregate per ticker, or aggregates by ticker and time, paginated. */
import type { FastifyInstance } from 'fastify';
import { latestStockPrices, stockPricesInRange } from '../db/stock-prices.ts';
import type { StockWindowRow } from '../db/stock-prices.ts';
import type { Queryable } from '../db/types.ts';
import { encodeCursor } from './cursor.ts';
import { ApiError } from './errors.ts';
import type { ParameterHints } from './error-handler.ts';
import type { KnownTickers } from './known-tickers.ts';
import { DEFAULT_LIMIT, MAX_LIMIT, MAX_TICKERS, parsePriceQuery } from './price-query.ts';
import type { PricesQueryString } from './price-query.ts';

const NAME = '[A-Za-z0-9][A-Za-z0-9._-]{0,31}';
const TIME_HINT = 'an ISO 8601 time such as 2024-05-01T12:00:00Z (no offset = UTC) or epoch milliseconds';

const hints: ParameterHints = {
  ticker: `ticker must be a ticker name or a comma-separated list of at most ${MAX_TICKERS} (letters, digits, ".", "_", "-"; at most 32 each)`,
  startTime: `startTime must be ${TIME_HINT}`,
  endTime: `endTime must be ${TIME_HINT}`,
  limit: `limit must be an integer from 1 to ${MAX_LIMIT}`,
  cursor: 'cursor must be a nextCursor value returned by this API',
};

const querystring = {
  type: 'object',
  additionalProperties: false,
  properties: {
    ticker: {
      type: 'string',
      pattern: `^${NAME}(,${NAME}){0,${MAX_TICKERS - 1}}$`,
      description: 'One ticker or a comma-separated list, e.g. `AMZN` or `AMZN,MSFT`. Unknown tickers are a 400.',
    },
    startTime: { type: 'string', maxLength: 64, description: `Windows starting at or after this instant: ${TIME_HINT}` },
    endTime: { type: 'string', maxLength: 64, description: `Windows starting before this instant: ${TIME_HINT}` },
    limit: { type: 'integer', minimum: 1, maximum: MAX_LIMIT, default: DEFAULT_LIMIT, description: 'Rows per page' },
    cursor: { type: 'string', maxLength: 256, pattern: '^[A-Za-z0-9_-]+$', description: '`nextCursor` of the previous page' },
  },
} as const;

const priceRow = {
  type: 'object',
  required: ['ticker', 'windowStart', 'windowEnd', 'averagePrice', 'sampleCount', 'minPrice', 'maxPrice', 'priceSum'],
  properties: {
    ticker: { type: 'string' },
    windowStart: { type: 'string', format: 'date-time', description: 'Inclusive window start (UTC)' },
    windowEnd: { type: 'string', format: 'date-time', description: 'Exclusive window end (UTC)' },
    averagePrice: { type: 'number', description: 'priceSum / sampleCount' },
    sampleCount: { type: 'integer' },
    minPrice: { type: 'integer' },
    maxPrice: { type: 'integer' },
    priceSum: { type: 'integer', description: 'Sum of the prices, for exact re-aggregation' },
  },
} as const;

const response = {
  200: {
    type: 'object',
    required: ['data', 'nextCursor'],
    properties: {
      data: { type: 'array', items: priceRow },
      nextCursor: { type: ['string', 'null'], description: 'Pass as `cursor` for the next page; null on the last page' },
    },
  },
  400: { $ref: 'ApiError#' },
  503: { $ref: 'ApiError#' },
} as const;

export function registerPricesRoute(app: FastifyInstance, deps: { db: Queryable; tickers: KnownTickers }): void {
  app.get<{ Querystring: PricesQueryString }>('/v1/get-prices', {
    config: { parameterHints: hints },
    schema: {
      summary: 'Aggregated stock prices (30-second windows)',
      description: [
        'Without ticker, startTime or endTime: the "top distinct prices of all tickers" — for every ticker,',
        'its most recent window (one row per ticker, ordered by ticker).',
        'With any of them: every window of those tickers (default: all) whose start lies in',
        '[startTime, endTime), ordered by (windowStart, ticker), paginated with limit and cursor.',
      ].join(' '),
      tags: ['prices'],
      querystring,
      response,
    },
  }, async (request) => {
    const query = parsePriceQuery(request.query);
    if (query.mode === 'latest') {
      const rows = await latestStockPrices(deps.db, { afterTicker: query.afterTicker, limit: query.limit + 1 });
      const page = rows.slice(0, query.limit);
      const more = rows.length > query.limit;
      return { data: page.map(toJson), nextCursor: more ? encodeCursor({ kind: 'latest', ticker: page[page.length - 1].ticker }) : null };
    }
    let tickers = query.tickers;
    if (tickers === null) {
      tickers = await deps.tickers.all();
    } else {
      const unknown = await deps.tickers.unknown(tickers);
      if (unknown.length > 0) throw new ApiError('UNKNOWN_TICKER', `no aggregates for ticker ${unknown.join(', ')}`, 'ticker');
    }
    const rows = await stockPricesInRange(deps.db, { tickers, from: query.from, to: query.to, after: query.after, limit: query.limit + 1 });
    const page = rows.slice(0, query.limit);
    const last = page[page.length - 1];
    const nextCursor = rows.length > query.limit ? encodeCursor({ kind: 'range', windowStart: last.windowStart.getTime(), ticker: last.ticker }) : null;
    return { data: page.map(toJson), nextCursor };
  });
}

function toJson(row: StockWindowRow) {
  return { ...row, windowStart: row.windowStart.toISOString(), windowEnd: row.windowEnd.toISOString() };
}
