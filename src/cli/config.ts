import { readFileSync } from 'node:fs';
import { TickflowError } from '../core/errors.ts';
import type { FlagSpec, FlagValues } from './command.ts';
import { GIVEN_FLAGS, badFlag, bool, duration, oneOf, port, str } from './flags.ts';
import { fileErrorText } from './errors.ts';

/** Flags every command accepts. Secrets come from the environment only, never from argv. */
export const SHARED_FLAGS: Record<string, FlagSpec> = {
  brokers: { type: 'string', value: 'LIST', env: 'KAFKA_BROKERS', description: 'Kafka bootstrap brokers host:port,... (default: the embedded in-process log)' },
  'database-url': { type: 'string', value: 'URL', env: 'DATABASE_URL', description: 'PostgreSQL URL (default: embedded PGlite under --data-dir)' },
  'database-password-file': { type: 'string', value: 'FILE', env: 'DATABASE_PASSWORD_FILE', description: 'File holding the password of --database-url\'s user (instead of one in the URL)' },
  'data-dir': { type: 'string', value: 'DIR', env: 'TICKFLOW_DATA_DIR', default: '.tickflow', description: 'Where embedded state lives' },
  json: { type: 'boolean', description: 'Print results as JSON' },
  'log-level': { type: 'string', value: 'LEVEL', env: 'LOG_LEVEL', default: 'info', description: 'trace, debug, info, warn, error or silent' },
  'isolation-level': { type: 'string', value: 'LEVEL', env: 'KAFKA_ISOLATION_LEVEL', default: 'read_committed', description: 'read_committed (records of open or aborted Kafka transactions are never read; reads end at the last stable offset) or read_uncommitted' },
  'kafka-tls': { type: 'boolean', env: 'KAFKA_TLS', description: 'Connect to Kafka over TLS' },
  'kafka-ca': { type: 'string', value: 'FILE', env: 'KAFKA_CA_FILE', description: 'CA certificate (PEM) for Kafka TLS' },
  'kafka-sasl-mechanism': { type: 'string', value: 'M', env: 'KAFKA_SASL_MECHANISM', description: 'PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512 (password from KAFKA_SASL_PASSWORD)' },
  'kafka-sasl-username': { type: 'string', value: 'USER', env: 'KAFKA_SASL_USERNAME', description: 'SASL user name' },
  'kafka-sasl-password-file': { type: 'string', value: 'FILE', env: 'KAFKA_SASL_PASSWORD_FILE', description: 'File holding the SASL password (instead of KAFKA_SASL_PASSWORD)' },
  'metrics-port': { type: 'string', value: 'N', env: 'METRICS_PORT', description: 'Serve Prometheus metrics at http://HOST:N/metrics while the command runs (default: off)' },
  'metrics-host': { type: 'string', value: 'HOST', env: 'METRICS_HOST', default: '127.0.0.1', description: 'Interface for --metrics-port (0.0.0.0 in containers)' },
  'retry-for': { type: 'string', value: 'DURATION', env: 'TICKFLOW_RETRY_FOR', default: '5m', description: 'Ride through a lost broker or database for this long (backoff, one log line per interval), then exit naming it' },
  help: { type: 'boolean', short: 'h', description: 'Show help for this command' },
};

export interface SharedConfig {
  brokers: string[] | null;
  databaseUrl: string | null;
  dataDir: string;
  json: boolean;
  logLevel: string;
  kafkaTls: { ca?: string } | null;
  kafkaSasl: { mechanism: 'PLAIN' | 'SCRAM-SHA-256' | 'SCRAM-SHA-512'; username: string; password: string } | null;
  metrics: { host: string; port: number } | null;
  /** How Kafka reads treat transactions (--isolation-level). */
  isolationLevel: 'read_committed' | 'read_uncommitted';
  /** How long one outage of Kafka or PostgreSQL is ridden through (--retry-for). */
  retryForMs: number;
}

const LEVELS = ['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'] as const;
const MECHANISMS = ['PLAIN', 'SCRAM-SHA-256', 'SCRAM-SHA-512'] as const;
const ISOLATION_LEVELS = ['read_committed', 'read_uncommitted'] as const;

/** Fills absent flags from their environment variables, then their defaults. */
export function withEnvironment(values: FlagValues, specs: Record<string, FlagSpec>, env: NodeJS.ProcessEnv): FlagValues {
  const result: FlagValues = { ...values };
  Object.defineProperty(result, GIVEN_FLAGS, { value: new Set(Object.keys(values).filter((name) => values[name] !== undefined)) });
  for (const [name, spec] of Object.entries(specs)) {
    if (result[name] !== undefined) continue;
    const fromEnv = spec.env ? env[spec.env] : undefined;
    if (fromEnv !== undefined && fromEnv !== '') {
      result[name] = spec.type === 'boolean' ? !['0', 'false', 'no', ''].includes(fromEnv.toLowerCase()) : fromEnv;
    } else if (spec.default !== undefined) {
      result[name] = spec.default;
    }
  }
  return result;
}

export function resolveShared(values: FlagValues, env: NodeJS.ProcessEnv): SharedConfig {
  const brokersRaw = str(values, 'brokers');
  let brokers: string[] | null = null;
  if (brokersRaw !== undefined) {
    brokers = brokersRaw.split(',').map((b) => b.trim()).filter(Boolean);
    for (const broker of brokers) {
      const match = /^[^:\s]+:(\d+)$/.exec(broker);
      if (!match) throw badFlag('brokers', `expects host:port[,host:port...], got "${broker}"`);
      const n = Number(match[1]);
      if (!(n >= 1 && n <= 65_535)) throw badFlag('brokers', `port ${match[1]} of "${broker}" is not a TCP port (1..65535)`);
    }
    if (brokers.length === 0) throw badFlag('brokers', 'expects at least one host:port');
  }
  let databaseUrl = str(values, 'database-url') ?? null;
  if (databaseUrl !== null && !/^postgres(ql)?:\/\//.test(databaseUrl)) {
    throw badFlag('database-url', 'expects a postgres:// or postgresql:// URL');
  }
  if (databaseUrl !== null) databaseUrl = withPasswordFile(databaseUrl, values, 'database-url', 'database-password-file');
  const caFile = str(values, 'kafka-ca');
  let kafkaTls: SharedConfig['kafkaTls'] = null;
  if (bool(values, 'kafka-tls') || caFile) {
    kafkaTls = {};
    if (caFile) {
      try {
        kafkaTls.ca = readFileSync(caFile, 'utf8');
      } catch (error) {
        throw badFlag('kafka-ca', fileErrorText(error) ?? `cannot read ${caFile}`);
      }
    }
  }
  let kafkaSasl: SharedConfig['kafkaSasl'] = null;
  const mechanismRaw = str(values, 'kafka-sasl-mechanism');
  if (mechanismRaw !== undefined) {
    const mechanism = oneOf(values, 'kafka-sasl-mechanism', MECHANISMS, 'PLAIN');
    const username = str(values, 'kafka-sasl-username');
    if (!username) throw badFlag('kafka-sasl-username', 'is required with --kafka-sasl-mechanism');
    const password = saslPassword(values, env);
    kafkaSasl = { mechanism, username, password };
  }
  const metricsPort = str(values, 'metrics-port') === undefined ? null : port(values, 'metrics-port', 0, { allowAny: true });
  return Object.freeze({
    retryForMs: duration(values, 'retry-for', 5 * 60_000, { minMs: 0 }),
    metrics: metricsPort === null ? null : { host: str(values, 'metrics-host') ?? '127.0.0.1', port: metricsPort },
    brokers,
    databaseUrl,
    dataDir: str(values, 'data-dir') ?? '.tickflow',
    json: bool(values, 'json'),
    logLevel: oneOf(values, 'log-level', LEVELS, 'info'),
    kafkaTls,
    kafkaSasl,
    isolationLevel: oneOf(values, 'isolation-level', ISOLATION_LEVELS, 'read_committed'),
  });
}

/** The SASL password: from the file of --kafka-sasl-password-file (one trailing newline dropped), else KAFKA_SASL_PASSWORD. */
function saslPassword(values: FlagValues, env: NodeJS.ProcessEnv): string {
  const file = str(values, 'kafka-sasl-password-file');
  if (file !== undefined) {
    if (env.KAFKA_SASL_PASSWORD) throw new TickflowError('BAD_CONFIG', 'both KAFKA_SASL_PASSWORD and --kafka-sasl-password-file are set: use one');
    return readSecretFile(file, 'kafka-sasl-password-file');
  }
  const password = env.KAFKA_SASL_PASSWORD;
  if (!password) throw new TickflowError('BAD_CONFIG', 'KAFKA_SASL_PASSWORD or --kafka-sasl-password-file must be set when --kafka-sasl-mechanism is given');
  return password;
}

/**
 * The URL with the password read from the file of `fileFlag` (one trailing newline dropped),
 * so that a secret need not sit in the URL; the URL unchanged when the flag is absent.
 */
export function withPasswordFile(url: string, values: FlagValues, urlFlag: string, fileFlag: string): string {
  const file = str(values, fileFlag);
  if (file === undefined) return url;
  const password = readSecretFile(file, fileFlag);
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw badFlag(urlFlag, 'is not a valid URL');
  }
  if (parsed.password) throw badFlag(fileFlag, `--${urlFlag} already holds a password: use one of them`);
  parsed.password = encodeURIComponent(password);
  return parsed.toString();
}

/** A secret kept in a file: its text without one trailing newline; BAD_FLAG naming `flag` if unreadable or empty. */
function readSecretFile(file: string, flag: string): string {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (error) {
    throw badFlag(flag, `cannot read ${file} (${(error as NodeJS.ErrnoException).code ?? (error as Error).message})`);
  }
  const secret = text.replace(/\r?\n$/, '');
  if (!secret) throw badFlag(flag, `${file} is empty`);
  return secret;
}
