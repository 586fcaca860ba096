/**
 * Opaque pagination cursors: base64url of a small JSON position. A range cursor is the
 * last (window start, ticker) returned; a latest-prices cursor is the last ticker.
 */
import { parseInstant } from '../core/stock-ticks.ts';
import { ApiError } from './errors.ts';

export type Cursor = { kind: 'range'; windowStart: number; ticker: string } | { kind: 'latest'; ticker: string };

export function encodeCursor(cursor: Cursor): string {
  const body = cursor.kind === 'range' ? { r: [cursor.windowStart, cursor.ticker] } : { l: cursor.ticker };
  return Buffer.from(JSON.stringify(body)).toString('base64url');
}

export function decodeCursor(text: string, expected: Cursor['kind']): Cursor {
  let body: unknown;
  try {
    body = JSON.parse(Buffer.from(text, 'base64url').toString('utf8'));
  } catch {
    body = null;
  }
  const object = (typeof body === 'object' && body !== null ? body : {}) as { r?: unknown; l?: unknown };
  if (expected === 'range' && Array.isArray(object.r) && object.r.length === 2 && parseInstant(object.r[0]) !== null && typeof object.r[1] === 'string') {
    return { kind: 'range', windowStart: object.r[0] as number, ticker: object.r[1] };
  }
  if (expected === 'latest' && typeof object.l === 'string') return { kind: 'latest', ticker: object.l };
  throw new ApiError('BAD_CURSOR', 'cursor is not one this API returned for this query; start again without it', 'cursor');
}
