/**
 * TLS for PostgreSQL, from the URL's libpq-style parameters and/or explicit options.
 *
 * We resolve TLS ourselves instead of letting pg read `sslmode` from the URL because pg 8
 * treats `require`/`verify-ca` as `verify-full` (and warns), which is not what a libpq
 * user means. Our semantics follow libpq:
 *   disable      no TLS (the default when nothing asks for TLS)
 *   require      TLS, certificate not verified — unless a CA is given, then like verify-ca
 *   verify-ca    TLS, chain verified against the CA, host name not checked
 *   verify-full  TLS, chain and host name verified (the default when only options are given)
 * `allow`/`prefer` need a plaintext fallback the pg driver cannot do; we refuse them at
 * start rather than silently pick one. File parameters (sslrootcert, sslcert, sslkey) are
 * paths; the `ca`/`cert`/`key` options are PEM contents.
 */
import { readFileSync } from 'node:fs';
import type { ConnectionOptions } from 'node:tls';
import { TickflowError } from '../core/errors.ts';
import { redactUrl } from './connection-url.ts';

export interface TlsOptions {
  ca?: string;
  cert?: string;
  key?: string;
  rejectUnauthorized?: boolean;
}

export interface ResolvedTls {
  /** The URL without the TLS parameters, so pg cannot re-apply its own reading of them. */
  connectionString: string;
  ssl: false | ConnectionOptions;
}

const TLS_PARAMS = ['ssl', 'sslmode', 'sslrootcert', 'sslcert', 'sslkey', 'uselibpqcompat'];
const MODES = ['disable', 'require', 'verify-ca', 'verify-full'];

export function resolveTls(url: string, options?: TlsOptions): ResolvedTls {
  const parsed = parseUrl(url);
  const params = parsed.searchParams;
  const mode = params.get('sslmode') ?? legacySslFlag(params.get('ssl')) ?? (options ? 'verify-full' : 'disable');
  const where = redactUrl(url);

  if (mode === 'allow' || mode === 'prefer') {
    throw new TickflowError('BAD_CONFIG', `sslmode=${mode} is not supported in ${where}: use sslmode=require (TLS) or sslmode=disable`, { sslmode: mode });
  }
  if (!MODES.includes(mode)) {
    throw new TickflowError('BAD_CONFIG', `unknown sslmode=${mode} in ${where}: use disable, require, verify-ca or verify-full`, { sslmode: mode });
  }
  if (mode === 'disable' && options) {
    throw new TickflowError('BAD_CONFIG', `TLS options were given but ${where} says sslmode=disable: remove one of them`, {});
  }

  const ca = options?.ca ?? readParamFile(params, 'sslrootcert', where);
  const cert = options?.cert ?? readParamFile(params, 'sslcert', where);
  const key = options?.key ?? readParamFile(params, 'sslkey', where);
  for (const name of TLS_PARAMS) params.delete(name);
  const connectionString = parsed.toString();
  if (mode === 'disable') return { connectionString, ssl: false };

  const ssl: ConnectionOptions = {};
  if (ca !== undefined) ssl.ca = ca;
  if (cert !== undefined) ssl.cert = cert;
  if (key !== undefined) ssl.key = key;
  const verifyChain = mode !== 'require' || ca !== undefined;
  ssl.rejectUnauthorized = options?.rejectUnauthorized ?? verifyChain;
  // verify-ca (and require with a CA) trust the chain but not the host name, as libpq does.
  if (mode !== 'verify-full') ssl.checkServerIdentity = () => undefined;
  return { connectionString, ssl };
}

function legacySslFlag(value: string | null): string | undefined {
  if (value === null) return undefined;
  return value === 'true' || value === '1' ? 'require' : 'disable';
}

function readParamFile(params: URLSearchParams, name: string, where: string): string | undefined {
  const path = params.get(name);
  if (path === null) return undefined;
  try {
    return readFileSync(path, 'utf8');
  } catch (error) {
    throw new TickflowError('BAD_CONFIG', `cannot read ${name}=${path} from ${where}: ${(error as Error).message}`, { param: name, path }, { cause: error });
  }
}

function parseUrl(url: string): URL {
  try {
    return new URL(url);
  } catch (error) {
    throw new TickflowError('BAD_CONFIG', `database URL is not a valid URL: ${redactUrl(url)} (expected postgres://user:password@host:port/database)`, {}, { cause: error });
  }
}
