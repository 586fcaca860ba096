/**
 * The embedded default: PGlite (Postgres compiled to WASM, in this process), persisted
 * under a data dir and served on a private socket so the SAME pg driver and code path
 * serve both backends.
 *
 * The socket is a Unix socket in a fresh directory of mode 0700 (and the socket itself
 * 0600): PGlite accepts any user without a password, so only this OS user may reach it —
 * never a TCP port another local user (or a slow outside query holding PGlite's one
 * connection) could use.
 *
 * PGlite is single-connection and pglite-socket's multi-connection mode has deadlock
 * bugs, so the pool holds exactly one connection: queries queue in the pool, and a
 * transaction keeps that connection from BEGIN to COMMIT, so transactions never overlap.
 */
import { chmodSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { PGlite } from '@electric-sql/pglite';
import { PGLiteSocketServer } from '@electric-sql/pglite-socket';
import pg from 'pg';
import { TickflowError } from '../core/errors.ts';
import { lockDataDir } from './pglite-lock.ts';
import { PoolDatabase } from './pool-database.ts';
import type { Database, DbLogger } from './types.ts';

export const DEFAULT_PGLITE_DIR = '.tickflow/pglite';
export const MEMORY = 'memory://';

export interface PgliteOptions {
  /** Where the data lives (default `.tickflow/pglite`); `memory://` keeps it in memory only. */
  dataDir?: string;
  /** The directory of the unix socket (made mode 0700); default a fresh one under the OS temp dir, removed on close. */
  socketDir?: string;
  logger?: DbLogger;
}

export async function openPglite(options: PgliteOptions = {}): Promise<Database> {
  const dataDir = options.dataDir ?? DEFAULT_PGLITE_DIR;
  const inMemory = dataDir.startsWith(MEMORY);
  let unlock = (): void => {};
  if (!inMemory) {
    mkdirSync(dirname(dataDir), { recursive: true });
    unlock = lockDataDir(dataDir);
  }
  let db: PGlite | undefined;
  let server: PGLiteSocketServer | undefined;
  // A short path under the temp dir: unix socket paths are limited to ~104 bytes, data dirs are not.
  const socketDir = options.socketDir ?? mkdtempSync(join(tmpdir(), 'tickflow-pglite-'));
  const removeSocketDir = options.socketDir ? () => {} : () => rmSync(socketDir, { recursive: true, force: true });
  try {
    chmodSync(socketDir, 0o700);
    db = await PGlite.create({ dataDir });
    // Unix sockets follow libpq's naming so pg can find them from a directory + port.
    const socketPath = join(socketDir, '.s.PGSQL.5432');
    // maxConnections 2, not 1: our pool only ever holds one live connection, but after a
    // connection breaks, the replacement may arrive before the server notices the close.
    server = new PGLiteSocketServer({ db, path: socketPath, maxConnections: 2 });
    await server.start();
    chmodSync(socketPath, 0o600);
    const pool = new pg.Pool({
      host: socketDir,
      port: 5432,
      user: 'postgres',
      database: 'postgres',
      max: 1,
      // Keep the one connection for good: reconnecting gains nothing in-process.
      idleTimeoutMillis: 0,
    });
    const [pglite, socket] = [db, server];
    const database = new PoolDatabase({
      kind: 'pglite',
      description: dataDir,
      pool,
      logger: options.logger,
      onClose: async () => {
        try {
          await socket.stop();
          await pglite.close();
        } finally {
          removeSocketDir();
          unlock();
        }
      },
    });
    options.logger?.info({ database: dataDir, socket: server.getServerConn() }, 'embedded database ready');
    return database;
  } catch (error) {
    await server?.stop().catch(() => {});
    await db?.close().catch(() => {});
    removeSocketDir();
    unlock();
    throw new TickflowError('DB_ERROR', `cannot open embedded database ${dataDir}: ${(error as Error).message}`, { dataDir }, { cause: error });
  }
}
