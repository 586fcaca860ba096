/**
 * The real-PostgreSQL adapter: a pg Pool behind the `Database` contract.
 * TLS comes from the URL's sslmode and/or `tls` options (see tls.ts); the password
 * never leaves this module except inside the pool's own config.
 */
import pg from 'pg';
import { redactUrl } from './connection-url.ts';
import { passwordFileOf, passwordFromFile, targetOf } from './password-file.ts';
import { PoolDatabase } from './pool-database.ts';
import { resolveTls } from './tls.ts';
import type { TlsOptions } from './tls.ts';
import type { Database, DbLogger } from './types.ts';

export { redactUrl } from './connection-url.ts';
export { connectWithRetry } from './connect-retry.ts';
export type { RetryOptions } from './connect-retry.ts';
export type { TlsOptions } from './tls.ts';

export interface PostgresOptions {
  tls?: TlsOptions;
  /** Pool size; the default (10) suits one service. */
  maxConnections?: number;
  /** Give up on a connect after this long, so an unreachable host fails fast and is retried. */
  connectTimeoutMs?: number;
  /** Shown in pg_stat_activity, to tell tickflow services apart. */
  applicationName?: string;
  logger?: DbLogger;
  /** Where PGPASSWORD / PGPASSFILE are read (default process.env). */
  env?: NodeJS.ProcessEnv;
}

/**
 * The URL with the password filled in from the password file when it has none and
 * PGPASSWORD is unset (pg reads PGPASSWORD itself). It stays in memory, in the pool.
 */
function withPassword(connectionString: string, env: NodeJS.ProcessEnv, logger?: DbLogger): string {
  let url: URL;
  try {
    url = new URL(connectionString);
  } catch {
    return connectionString; // resolveTls has already rejected what is not a URL
  }
  if (url.password || env.PGPASSWORD) return connectionString;
  const file = passwordFileOf(env);
  const password = passwordFromFile(file, targetOf(url, env), (message) => logger?.warn({ file }, message));
  if (password === undefined) return connectionString;
  url.password = encodeURIComponent(password);
  return url.toString();
}

/** Builds the pool; it connects lazily. Use `connectWithRetry` to wait for the server at start. */
export function createPostgresDatabase(url: string, options: PostgresOptions = {}): Database {
  const { connectionString, ssl } = resolveTls(url, options.tls);
  const pool = new pg.Pool({
    connectionString: withPassword(connectionString, options.env ?? process.env, options.logger),
    ssl,
    max: options.maxConnections ?? 10,
    connectionTimeoutMillis: options.connectTimeoutMs ?? 10_000,
    application_name: options.applicationName ?? 'tickflow',
  });
  return new PoolDatabase({ kind: 'postgres', description: redactUrl(url), pool, logger: options.logger });
}
