/**
 * The secured infrastructure of test/secure: the SASL_SSL broker of `npm run infra:up --
 * --secure` (found through its secure.env) and a PostgreSQL server of the test's own with
 * ssl=on, a certificate from the same CA, hostssl-only pg_hba with scram-sha-256, and a
 * role per service. Secrets reach the commands only through the environment and files.
 */
import { chmodSync, chownSync, copyFileSync, existsSync, readFileSync, writeFileSync, appendFileSync } from 'node:fs';
import { connect } from 'node:net';
import { join, resolve } from 'node:path';
import pg from 'pg';
import { startPostgresServer } from './postgres-server.ts';
import type { PostgresServer } from './postgres-server.ts';

export const SECURE_ENV_FILE = resolve(
  process.env.TICKFLOW_SECURE_ENV ?? join(import.meta.dirname, '..', '..', process.env.TICKFLOW_INFRA_DIR ?? '.tickflow', 'kafka-secure', 'secure.env'),
);

export interface SecureKafka {
  brokers: string;
  host: string;
  port: number;
  ca: string;
  otherCa: string;
  serverCert: string;
  serverKey: string;
  credentials: string;
}

/** The secured broker's settings, or why the secured tests cannot run (then they skip). */
export async function secureKafka(): Promise<SecureKafka | string> {
  if (!existsSync(SECURE_ENV_FILE)) return `secured infra not running (no ${SECURE_ENV_FILE}): start it with 'npm run infra:up -- --secure'`;
  const env = Object.fromEntries(
    readFileSync(SECURE_ENV_FILE, 'utf8')
      .split('\n')
      .filter((l) => /^[A-Z_]+=/.test(l))
      .map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)]),
  );
  const [host, port] = env.TICKFLOW_SECURE_BROKERS.split(':');
  if (!(await answers('127.0.0.1', Number(port)))) return `secured infra not running (nothing listens on ${env.TICKFLOW_SECURE_BROKERS}): start it with 'npm run infra:up -- --secure'`;
  return {
    brokers: env.TICKFLOW_SECURE_BROKERS,
    host,
    port: Number(port),
    ca: env.TICKFLOW_SECURE_CA,
    otherCa: env.TICKFLOW_SECURE_OTHER_CA,
    serverCert: env.TICKFLOW_SECURE_SERVER_CERT,
    serverKey: env.TICKFLOW_SECURE_SERVER_KEY,
    credentials: env.TICKFLOW_SECURE_CREDENTIALS,
  };
}

/** The environment of a command running as `principal` over SASL_SSL (SCRAM-SHA-512, CA verified, host name checked). */
export function kafkaEnv(kafka: SecureKafka, principal: string): NodeJS.ProcessEnv {
  return {
    KAFKA_BROKERS: kafka.brokers,
    KAFKA_CA_FILE: kafka.ca,
    KAFKA_SASL_MECHANISM: 'SCRAM-SHA-512',
    KAFKA_SASL_USERNAME: principal,
    KAFKA_SASL_PASSWORD_FILE: join(kafka.credentials, `${principal}.password`),
    KAFKA_SASL_PASSWORD: '',
  };
}

/** A principal's password, for a client the test itself opens. */
export function kafkaPassword(kafka: SecureKafka, principal: string): string {
  return readFileSync(join(kafka.credentials, `${principal}.password`), 'utf8').trim();
}

export interface SecurePostgres {
  server: PostgresServer;
  /** Owner of the tickflow database (migrations, the pipelines): DATABASE_URL without a password, DATABASE_PASSWORD_FILE. */
  writerEnv: NodeJS.ProcessEnv;
  /** SELECT only (the API): READ_DATABASE_URL without a password, READ_DATABASE_PASSWORD_FILE. */
  readerEnv: NodeJS.ProcessEnv;
  /** With the password in it, for the test's own clients. */
  readerUrl: string;
  /** The superuser, over the same TLS, for assertions. */
  adminUrl: string;
  /** writerUrl with another password. */
  wrongPasswordUrl: string;
  /** writerUrl by 127.0.0.1, a name the certificate (DNS:localhost) does not list. */
  otherHostUrl: string;
  close(): Promise<void>;
}

/**
 * initdb + ssl=on with the certificate for localhost from the secured infra's CA;
 * pg_hba: hostssl only, scram-sha-256 (no plaintext TCP, no trust).
 */
export async function startSecurePostgres(kafka: SecureKafka): Promise<SecurePostgres> {
  const server = await startPostgresServer('tickflow-pg-tls');
  const { dataDir, user } = server.state;
  const file = (role: string): string => join(kafka.credentials, `pg-${role}.password`);
  const password = (role: string): string => readFileSync(file(role), 'utf8').trim();
  const passwords = { postgres: password('postgres'), writer: password('tickflow_writer'), reader: password('tickflow_reader') };
  const setup = new pg.Client({ connectionString: server.url() });
  await setup.connect();
  try {
    await setup.query(`SET password_encryption = 'scram-sha-256'`);
    await setup.query(`ALTER ROLE postgres PASSWORD '${passwords.postgres}'`);
    await setup.query(`CREATE ROLE tickflow_writer LOGIN PASSWORD '${passwords.writer}'`);
    await setup.query(`CREATE ROLE tickflow_reader LOGIN PASSWORD '${passwords.reader}'`);
    await setup.query('CREATE DATABASE tickflow OWNER tickflow_writer');
  } finally {
    await setup.end();
  }
  const owner = new pg.Client({ connectionString: server.url('tickflow') });
  await owner.connect();
  try {
    await owner.query('ALTER SCHEMA public OWNER TO tickflow_writer');
    await owner.query('GRANT USAGE ON SCHEMA public TO tickflow_reader');
    await owner.query('ALTER DEFAULT PRIVILEGES FOR ROLE tickflow_writer IN SCHEMA public GRANT SELECT ON TABLES TO tickflow_reader');
  } finally {
    await owner.end();
  }
  for (const [from, to] of [[kafka.serverCert, 'server.crt'], [kafka.serverKey, 'server.key'], [kafka.ca, 'root.crt']] as const) {
    copyFileSync(from, join(dataDir, to));
    chmodSync(join(dataDir, to), 0o600);
    if (user) chownSync(join(dataDir, to), user.uid, user.gid);
  }
  appendFileSync(join(dataDir, 'postgresql.conf'), ["ssl = on", "ssl_cert_file = 'server.crt'", "ssl_key_file = 'server.key'", "password_encryption = 'scram-sha-256'", ''].join('\n'));
  writeFileSync(join(dataDir, 'pg_hba.conf'), ['hostssl all all 127.0.0.1/32 scram-sha-256', 'hostssl all all ::1/128 scram-sha-256', ''].join('\n'));
  await server.restart();
  const url = (role: string, password: string, host = kafka.host, database = 'tickflow'): string =>
    `postgres://${role}${password ? `:${password}` : ''}@${host}:${server.port}/${database}?sslmode=verify-full&sslrootcert=${encodeURIComponent(kafka.ca)}`;
  return {
    server,
    writerEnv: { DATABASE_URL: url('tickflow_writer', ''), DATABASE_PASSWORD_FILE: file('tickflow_writer') },
    readerEnv: { READ_DATABASE_URL: url('tickflow_reader', ''), READ_DATABASE_PASSWORD_FILE: file('tickflow_reader') },
    readerUrl: url('tickflow_reader', passwords.reader),
    adminUrl: url('postgres', passwords.postgres),
    wrongPasswordUrl: url('tickflow_writer', `${passwords.writer}x`),
    otherHostUrl: url('tickflow_writer', passwords.writer, '127.0.0.1'),
    close: () => server.destroy(),
  };
}

function answers(host: string, port: number): Promise<boolean> {
  return new Promise((done) => {
    const socket = connect({ host, port });
    socket.setTimeout(1000, () => (socket.destroy(), done(false)));
    socket.once('connect', () => (socket.destroy(), done(true)));
    socket.once('error', () => done(false));
  });
}
