/**
 * The one way services get a database: real PostgreSQL when a URL is configured,
 * otherwise the embedded PGlite; either way waited for and migrated before use.
 */
import pg from 'pg';
import { TickflowError } from '../core/errors.ts';
import { databaseOf, redactUrl, withDatabase } from './connection-url.ts';
import { connectWithRetry } from './connect-retry.ts';
import type { RetryOptions } from './connect-retry.ts';
import { toDbError } from './db-errors.ts';
import { migrate } from './migrations.ts';
import { createPostgresDatabase } from './postgres.ts';
import type { PostgresOptions } from './postgres.ts';
import { resolveTls } from './tls.ts';
import type { TlsOptions } from './tls.ts';
import type { Database, DbLogger } from './types.ts';

export interface OpenDatabaseOptions {
  /** postgres:// URL (DATABASE_URL); absent → embedded PGlite. */
  url?: string;
  /** PGlite data dir (default `.tickflow/pglite`, `memory://` for throwaway). Ignored with `url`. */
  dataDir?: string;
  tls?: TlsOptions;
  retry?: Omit<RetryOptions, 'logger'>;
  postgres?: Omit<PostgresOptions, 'tls' | 'logger'>;
  logger?: DbLogger;
}

export async function openDatabase(options: OpenDatabaseOptions = {}): Promise<Database> {
  const { logger } = options;
  const db = options.url
    ? createPostgresDatabase(options.url, { ...options.postgres, tls: options.tls, logger })
    : await (await import('./pglite.ts')).openPglite({ dataDir: options.dataDir, logger }); // loaded only when embedded
  try {
    if (db.kind === 'postgres') await connectWithRetry(db, { ...options.retry, logger });
    await migrate(db, { logger });
  } catch (error) {
    await db.close().catch(() => {});
    throw error;
  }
  return db;
}

/**
 * Creates the URL's database if it does not exist, connecting to the `postgres`
 * database of the same server with the same credentials and TLS. Returns whether it
 * created it. Safe to race: a concurrent creator's "already exists" counts as success.
 */
export async function createDatabaseIfMissing(url: string, tls?: TlsOptions): Promise<boolean> {
  const name = databaseOf(url);
  const { connectionString, ssl } = resolveTls(withDatabase(url, 'postgres'), tls);
  const client = new pg.Client({ connectionString, ssl });
  const where = redactUrl(url);
  try {
    await client.connect();
    const { rowCount } = await client.query('SELECT 1 FROM pg_database WHERE datname = $1', [name]);
    if (rowCount) return false;
    // CREATE DATABASE takes no bind parameters: quote the identifier ourselves.
    await client.query(`CREATE DATABASE ${quoteIdentifier(name)}`);
    return true;
  } catch (error) {
    const code = (error as { code?: string }).code;
    if (code === '42P04' || code === '23505') return false; // duplicate_database: someone else won the race
    throw toDbError(error, where);
  } finally {
    await client.end().catch(() => {});
  }
}

export function quoteIdentifier(name: string): string {
  if (name.includes('\0')) throw new TickflowError('BAD_CONFIG', 'database name contains a NUL character', {});
  return `"${name.replace(/"/g, '""')}"`;
}
