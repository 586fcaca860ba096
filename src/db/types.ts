/**
 * The database contract the rest of tickflow codes against. Two adapters implement it,
 * both through the same `pg` driver: real PostgreSQL (`postgres.ts`) and embedded PGlite
 * served over a local socket (`pglite.ts`). Only `src/db` speaks SQL to them.
 *
 * Value mapping is pg's default and deliberately left global-default: `int8`/`bigint`
 * and `numeric` columns come back as strings (a JS number would silently lose precision
 * above 2^53 — Kafka offsets can be that large), `timestamptz` comes back as `Date`.
 * Convert with `BigInt(row.x)` where a bigint is meant. Pass bigints as strings too.
 */
export interface QueryResult<R> {
  rows: R[];
  rowCount: number;
}

export interface Queryable {
  query<R = Record<string, unknown>>(sql: string, params?: unknown[]): Promise<QueryResult<R>>;
}

export interface Database extends Queryable {
  readonly kind: 'postgres' | 'pglite';
  /** Where the data lives, safe to log: the URL with its password redacted, or the PGlite data dir. */
  readonly description: string;
  /**
   * Runs `fn` between BEGIN and COMMIT on one connection; any throw rolls back and is
   * rethrown. Inside `fn` use only `tx`: on PGlite the single connection is held by the
   * transaction, so calling the Database itself would wait forever (it throws instead).
   */
  transaction<T>(fn: (tx: Queryable) => Promise<T>): Promise<T>;
  /** Ends every connection (and, for PGlite, the embedded server). Safe to call twice. */
  close(): Promise<void>;
}

/** The slice of a pino logger the database layer uses; a pino Logger satisfies it. */
export interface DbLogger {
  info(obj: Record<string, unknown>, msg: string): void;
  warn(obj: Record<string, unknown>, msg: string): void;
}
