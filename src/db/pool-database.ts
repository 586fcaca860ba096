/**
 * The one `Database` implementation: a pg Pool plus error mapping and transactions.
 * Both adapters use it — real PostgreSQL with a normal pool, PGlite with a pool of one
 * connection to its socket server — so there is exactly one driver path to test.
 */
import { AsyncLocalStorage } from 'node:async_hooks';
import type pg from 'pg';
import { TickflowError } from '../core/errors.ts';
import { toDbError } from './db-errors.ts';
import type { Database, DbLogger, Queryable, QueryResult } from './types.ts';

export interface PoolDatabaseOptions {
  kind: Database['kind'];
  description: string;
  pool: pg.Pool;
  logger?: DbLogger;
  /** Runs after the pool has ended (PGlite stops its server and closes its files here). */
  onClose?: () => Promise<void>;
}

export class PoolDatabase implements Database {
  readonly kind: Database['kind'];
  readonly description: string;
  readonly #pool: pg.Pool;
  readonly #onClose?: () => Promise<void>;
  readonly #logger?: DbLogger;
  /** Marks code running inside one of our transactions, to catch self-deadlocks on a pool of one. */
  readonly #inTransaction = new AsyncLocalStorage<{ open: boolean }>();
  #closing?: Promise<void>;

  constructor(options: PoolDatabaseOptions) {
    this.kind = options.kind;
    this.description = options.description;
    this.#pool = options.pool;
    this.#onClose = options.onClose;
    this.#logger = options.logger;
    // An idle client losing its server emits 'error' on the pool; unhandled, that event
    // would crash the process. The pool drops the client; the next query reconnects.
    this.#pool.on('error', (error) => {
      options.logger?.warn({ database: this.description, err: toDbError(error, this.description).message }, 'idle database connection lost');
    });
  }

  async query<R = Record<string, unknown>>(sql: string, params?: unknown[]): Promise<QueryResult<R>> {
    this.#assertNotNested('query');
    try {
      const result = await this.#pool.query(sql, params);
      return { rows: result.rows as R[], rowCount: result.rowCount ?? 0 };
    } catch (error) {
      throw toDbError(error, this.description);
    }
  }

  async transaction<T>(fn: (tx: Queryable) => Promise<T>): Promise<T> {
    this.#assertNotNested('transaction');
    let client: pg.PoolClient;
    try {
      client = await this.#pool.connect();
    } catch (error) {
      throw toDbError(error, this.description);
    }
    // A checked-out client is the pool's no longer: losing its server between two queries
    // (a restart, a killed backend) emits 'error' on the client itself, which, unheard,
    // would crash the process. Heard, the next query fails (DB_UNAVAILABLE, retriable) and
    // the client is destroyed instead of going back to the pool.
    let broken = false;
    const onClientError = (error: Error) => {
      broken = true;
      this.#logger?.warn({ database: this.description, err: toDbError(error, this.description).message }, 'database connection lost during a transaction');
    };
    client.on('error', onClientError);
    const tx = clientQueryable(client, this.description);
    const scope = { open: true };
    try {
      await tx.query('BEGIN');
      const result = await this.#inTransaction.run(scope, () => fn(tx));
      await tx.query('COMMIT');
      return result;
    } catch (error) {
      try {
        await client.query('ROLLBACK');
      } catch {
        // The connection is unusable; destroy it rather than return it to the pool.
        broken = true;
      }
      // Rethrown as is: tx.query already mapped database errors, and the caller's own
      // errors (FENCED, bugs) must reach the caller unchanged.
      throw error;
    } finally {
      scope.open = false;
      client.off('error', onClientError);
      client.release(broken);
    }
  }

  close(): Promise<void> {
    this.#closing ??= (async () => {
      await this.#pool.end();
      await this.#onClose?.();
    })();
    return this.#closing;
  }

  #assertNotNested(what: string): void {
    // With several connections this would "work" but run outside the transaction; with
    // one (PGlite) it waits forever for the connection the transaction holds. Either way
    // it is a bug in the caller, so say so instead of hanging.
    // Timers started inside the transaction inherit the store, hence the `open` flag.
    if (this.#inTransaction.getStore()?.open) {
      throw new TickflowError('INTERNAL', `db.${what}() called inside db.transaction(): use the tx argument instead`, { database: this.description });
    }
  }
}

function clientQueryable(client: pg.PoolClient, description: string): Queryable {
  return {
    async query<R = Record<string, unknown>>(sql: string, params?: unknown[]): Promise<QueryResult<R>> {
      try {
        const result = await client.query(sql, params);
        return { rows: result.rows as R[], rowCount: result.rowCount ?? 0 };
      } catch (error) {
        throw toDbError(error, description);
      }
    },
  };
}
