/**
 * Maps whatever the pg driver throws onto the tickflow error catalogue, so callers branch
 * on `code`/`retriable` and, for database errors, on Postgres's SQLSTATE in
 * `details.code` — never on message text.
 *
 * Retriable: the server unreachable or going away (DB_UNAVAILABLE: class 08, 57P0x, a
 * dropped socket — including one dropped while a COMMIT was answered, which leaves the
 * commit in doubt: callers that retry such a transaction must be able to tell whether it
 * landed, as the runtime does with its commit id) and a transaction that lost a race
 * (DB_CONFLICT: 40001, 40P01). Everything else is a DB_ERROR, not retried; a certificate,
 * password or pg_hba refusal is one with `details.security` and a message saying which.
 */
import { TickflowError, isTickflowError } from '../core/errors.ts';
import { EXPIRED_CERTIFICATE, HOST_MISMATCH, UNTRUSTED_CERTIFICATE } from '../core/tls-codes.ts';

/** Node socket errors that mean "the server is not reachable right now". */
const NETWORK_CODES = new Set([
  'ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EPIPE', 'ENOTFOUND', 'EAI_AGAIN',
  'EHOSTUNREACH', 'ENETUNREACH', 'ENOENT', 'ECONNABORTED',
]);

/** SQLSTATEs outside class 08 that also mean "try again later". */
const UNAVAILABLE_SQLSTATES = new Set([
  '57P01', // admin_shutdown
  '57P02', // crash_shutdown
  '57P03', // cannot_connect_now (starting up, recovery)
  '53300', // too_many_connections
]);

/**
 * SQLSTATEs of a transaction the server rolled back because it lost a race with another
 * one: running it again is the documented cure.
 */
const CONFLICT_SQLSTATES = new Set([
  '40001', // serialization_failure
  '40P01', // deadlock_detected
]);

/**
 * pg raises these without any code, so their text is all there is to go on. They come
 * from node-postgres itself (client.js, pg-pool), not from the server.
 */
const DRIVER_CONNECTION_MESSAGES = [
  'Connection terminated',
  'timeout exceeded when trying to connect',
  'Client has encountered a connection error',
  'Client was closed and is not queryable',
];

interface PgErrorFields {
  code?: string;
  constraint?: string;
  detail?: string;
  table?: string;
  column?: string;
  schema?: string;
  severity?: string;
  errors?: unknown[];
}

/** `where` is the redacted URL or data dir, named in the message so one line says it all. */
export function toDbError(error: unknown, where: string): TickflowError {
  if (isTickflowError(error)) return error;
  const fields = (typeof error === 'object' && error !== null ? error : {}) as PgErrorFields;
  const reason = oneLine(error instanceof Error ? error.message : String(error));
  const security = securityFailure(fields.code, reason, where);
  if (security) return new TickflowError('DB_ERROR', security.message, { database: where, code: fields.code, security: security.kind }, { cause: error });

  if (isUnavailable(error)) {
    const code = fields.code ?? networkCode(error);
    return new TickflowError(
      'DB_UNAVAILABLE',
      `database ${where} is unavailable: ${reason || code || 'connection failed'}`,
      { database: where, code },
      { cause: error },
    );
  }
  const details: Record<string, unknown> = { database: where };
  for (const key of ['code', 'constraint', 'detail', 'table', 'column', 'schema', 'severity'] as const) {
    if (fields[key] !== undefined) details[key] = fields[key];
  }
  if (fields.code !== undefined && CONFLICT_SQLSTATES.has(fields.code)) {
    return new TickflowError('DB_CONFLICT', `database conflict ${fields.code} on ${where} (the transaction was rolled back): ${reason}`, details, { cause: error });
  }
  const prefix = fields.code ? `database error ${fields.code}` : 'database error';
  return new TickflowError('DB_ERROR', `${prefix} on ${where}: ${reason}`, details, { cause: error });
}

/**
 * SQLSTATEs that mean the schema tickflow expects is not there (yet): the database has
 * not been migrated, or not to this version.
 */
const SCHEMA_MISSING_SQLSTATES = new Set([
  '42P01', // undefined_table
  '42703', // undefined_column
  '42883', // undefined_function
  '42704', // undefined_object (a type)
  '3F000', // invalid_schema_name
  '3D000', // invalid_catalog_name: the database itself does not exist
]);

/** The SQLSTATE of a pg error, or of the one a TickflowError wraps. */
export function sqlState(error: unknown): string | undefined {
  if (isTickflowError(error)) return typeof error.details.code === 'string' ? error.details.code : undefined;
  const code = typeof error === 'object' && error !== null ? (error as PgErrorFields).code : undefined;
  return typeof code === 'string' && /^[0-9A-Z]{5}$/.test(code) ? code : undefined;
}

/** The database answered, but lacks the tables (or database) tickflow's migrations create. */
export function isSchemaMissing(error: unknown): boolean {
  const code = sqlState(error);
  return code !== undefined && SCHEMA_MISSING_SQLSTATES.has(code);
}

export function isUnavailable(error: unknown): boolean {
  if (typeof error !== 'object' || error === null) return false;
  const code = (error as PgErrorFields).code;
  if (typeof code === 'string') {
    if (NETWORK_CODES.has(code) || UNAVAILABLE_SQLSTATES.has(code) || /^08[0-9A-Z]{3}$/.test(code)) return true;
  }
  if (networkCode(error) !== undefined) return true;
  const message = error instanceof Error ? error.message : '';
  return DRIVER_CONNECTION_MESSAGES.some((text) => message.includes(text));
}

/** Node reports a refused dual-stack connect as an AggregateError of per-address errors. */
function networkCode(error: unknown): string | undefined {
  const inner = (error as PgErrorFields).errors;
  if (!Array.isArray(inner)) return undefined;
  for (const e of inner) {
    const code = (e as PgErrorFields | null)?.code;
    if (typeof code === 'string' && NETWORK_CODES.has(code)) return code;
  }
  return undefined;
}

/** pg says this (no code) when it asked for TLS and the server has none. */
const SERVER_WITHOUT_TLS = 'The server does not support SSL connections';

/**
 * A TLS, password or pg_hba refusal as one line that says which and what to do; these are
 * not retried (waiting does not fix a certificate or a password).
 */
function securityFailure(code: string | undefined, reason: string, where: string): { kind: string; message: string } | undefined {
  if (code === HOST_MISMATCH) {
    return { kind: 'tls-host', message: `TLS: the certificate of database ${where} is not for that host name (${reason}); connect by a name the certificate lists, or use sslmode=verify-ca` };
  }
  if (code !== undefined && EXPIRED_CERTIFICATE.has(code)) {
    return { kind: 'tls-expired', message: `TLS: the certificate of database ${where} is expired or not yet valid (${code}); renew it` };
  }
  if (code !== undefined && UNTRUSTED_CERTIFICATE.has(code)) {
    return { kind: 'tls-ca', message: `TLS: the certificate of database ${where} is not signed by a trusted CA (${code}); give the server's CA with sslrootcert=FILE` };
  }
  if (code === '28P01') {
    return { kind: 'password', message: `database ${where} refused the password (28P01: ${reason}); check the password of the URL's user` };
  }
  if (code === '28000') {
    return { kind: 'pg_hba', message: `database ${where} refused the connection (28000: ${reason}); if the server accepts only TLS, set sslmode=verify-full` };
  }
  if (reason.includes(SERVER_WITHOUT_TLS)) {
    return { kind: 'tls-refused', message: `database ${where} does not speak TLS (${reason}); use sslmode=disable, or enable ssl on the server` };
  }
  return undefined;
}

function oneLine(text: string): string {
  return text.replace(/\s+/g, ' ').trim();
}
