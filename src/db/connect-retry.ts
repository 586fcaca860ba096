/**
 * Start-up wait for the database: services usually start alongside their database
 * (compose, CI), so "connection refused" for a few seconds is normal, not fatal.
 * Only DB_UNAVAILABLE is retried; a wrong password or a missing database fails at once.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { isTickflowError } from '../core/errors.ts';
import type { Database, DbLogger } from './types.ts';

export interface RetryOptions {
  /** Total tries, the first included (default 8: about 25 s with the default delays). */
  attempts?: number;
  /** Delay after the first failure; doubles each time up to `maxDelayMs` (defaults 200 / 5000). */
  initialDelayMs?: number;
  maxDelayMs?: number;
  logger?: DbLogger;
  signal?: AbortSignal;
}

export async function connectWithRetry(db: Database, options: RetryOptions = {}): Promise<void> {
  const attempts = Math.max(1, options.attempts ?? 8);
  let delay = options.initialDelayMs ?? 200;
  const maxDelay = options.maxDelayMs ?? 5_000;
  for (let attempt = 1; ; attempt++) {
    try {
      await db.query('SELECT 1');
      return;
    } catch (error) {
      if (!isTickflowError(error, 'DB_UNAVAILABLE') || attempt >= attempts) throw error;
      options.logger?.warn({ database: db.description, attempt, attempts, retryInMs: delay, err: error.message }, 'database not reachable yet, retrying');
      await sleep(delay, undefined, { signal: options.signal });
      delay = Math.min(delay * 2, maxDelay);
    }
  }
}
