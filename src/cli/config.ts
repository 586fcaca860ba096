import { readFileSync } from 'node:fs';
import { TickflowError } from '../core/errors.ts';
import type { FlagSpec, FlagValues } from './command.ts';
import { badFlag, bool, duration, int, oneOf, str } from './flags.ts';

/** Flags every command accepts. Secrets come from the environment only, never from argv. */
export const SHARED_FLAGS: Record<string, FlagSpec> = {
  brokers: { type: 'string', value: 'LIST', env: 'KAFKA_BROKERS', description: 'Kafka bootstrap brokers host:port,... (default: the embedded in-process log)' },
  'database-url': { type: 'string', value: 'URL', env: 'DATABASE_URL', description: 'PostgreSQL URL (default: embedded PGlite under --data-dir)' },
  'data-dir': { type: 'string', value: 'DIR', env: 'TICKFLOW_DATA_DIR', default: '.tickflow', description: 'Where embedded state lives' },
  json: { type: 'boolean', description: 'Print results as JSON' },
  'log-level': { type: 'string', value: 'LEVEL', env: 'LOG_LEVEL', default: 'info', description: 'trace, debug, info, warn, error or silent' },
  'isolation-level': { type: 'string', value: 'LEVEL', env: 'KAFKA_ISOLATION_LEVEL', default: 'read_committed', description: 'read_committed (records of open or aborted Kafka transactions are never read; reads end at the last stable offset) or read_uncommitted' },
  'kafka-tls': { type: 'boolean', env: 'KAFKA_TLS', description: 'Connect to Kafka over TLS' },
  'kafka-ca': { type: 'string', value: 'FILE', env: 'KAFKA_CA_FILE', description: 'CA certificate (PEM) for Kafka TLS' },
  'kafka-sasl-mechanism': { type: 'string', value: 'M', env: 'KAFKA_SASL_MECHANISM', description: 'PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512 (password from KAFKA_SASL_PASSWORD)' },
  'kafka-sasl-username': { type: 'string', value: 'USER', env: 'KAFKA_SASL_USERNAME', description: 'SASL user name' },
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
      if (!/^[^:\s]+:\d{1,5}$/.test(broker)) throw badFlag('brokers', `expects host:port[,host:port...], got "${broker}"`);
    }
    if (brokers.length === 0) throw badFlag('brokers', 'expects at least one host:port');
  }
  const databaseUrl = str(values, 'database-url') ?? null;
  if (databaseUrl !== null && !/^postgres(ql)?:\/\//.test(databaseUrl)) {
    throw badFlag('database-url', 'expects a postgres:// or postgresql:// URL');
  }
  const caFile = str(values, 'kafka-ca');
  let kafkaTls: SharedConfig['kafkaTls'] = null;
  if (bool(values, 'kafka-tls') || caFile) {
    kafkaTls = {};
    if (caFile) {
      try {
        kafkaTls.ca = readFileSync(caFile, 'utf8');
      } catch {
        throw badFlag('kafka-ca', `cannot read ${caFile}`);
      }
    }
  }
  let kafkaSasl: SharedConfig['kafkaSasl'] = null;
  const mechanismRaw = str(values, 'kafka-sasl-mechanism');
  if (mechanismRaw !== undefined) {
    const mechanism = oneOf(values, 'kafka-sasl-mechanism', MECHANISMS, 'PLAIN');
    const username = str(values, 'kafka-sasl-username');
    if (!username) throw badFlag('kafka-sasl-username', 'is required with --kafka-sasl-mechanism');
    const password = env.KAFKA_SASL_PASSWORD;
    if (!password) throw new TickflowError('BAD_CONFIG', 'KAFKA_SASL_PASSWORD must be set when --kafka-sasl-mechanism is given');
    kafkaSasl = { mechanism, username, password };
  }
  const metricsPort = str(values, 'metrics-port') === undefined ? null : int(values, 'metrics-port', 0, { min: 0, max: 65_535 });
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
