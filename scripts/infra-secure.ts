/**
 * `npm run infra:up -- --secure`: a secured single-node Kafka cluster of its own, next to
 * the plain one, for the secured integration tests (test/secure) and for trying a secured
 * deployment locally. Everything lives under .tickflow/kafka-secure/ (git-ignored):
 *
 *   tls/          ca.pem + ca.key (a CA made here with openssl), server.pem + server.key
 *                 (a certificate for DNS:localhost, kafka-secure and postgres-secure
 *                 — not for 127.0.0.1 — signed by that CA, also used by the secured PostgreSQL
 *                 of the tests and the compose profile `secure`), broker-keystore.pem (key + chain, Kafka's
 *                 PEM keystore), other-ca.pem (a second CA that signed nothing of ours)
 *   credentials/  <user>.password, one per SCRAM-SHA-512 user: admin and the principal of
 *                 every service (src/log/acls.ts); pg-<role>.password for the PostgreSQL
 *                 roles postgres, tickflow_writer, tickflow_reader; mode 0600
 *   secure.env    KEY=VALUE lines the tests and a shell read (paths, never passwords)
 *   broker-1/     server.properties, data/, kafka.log, kafka.pid
 *
 * Listeners: SASL_SSL (SCRAM-SHA-512) on TICKFLOW_SECURE_KAFKA_PORT (default: the plain
 * port + 200), advertised as localhost; the inter-broker listener (+1) and the KRaft
 * controller (+2) stay PLAINTEXT and bound to 127.0.0.1, their peer being the principal
 * ANONYMOUS, a super user with admin. Anyone who can open a socket on this machine can use
 * those two ports: that is acceptable for a one-machine test cluster only (docs/operations.md).
 */
import { randomBytes } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { AclOperations, AclPermissionTypes, Admin, ResourcePatternTypes, ResourceTypes } from '@platformatic/kafka';
import type { Acl } from '@platformatic/kafka';
import { SERVICE_ACLS, aclBindings, aclTopics } from '../src/log/acls.ts';
import {
  BASE, BROKER_PORT, LIB, LOG4J, LOG4J_YAML, checkJava, ensureLib, fail, isAlive, isFormatted, javaBinary, kafkaUuid, kafkaVersionFromPom,
  killPids, portBusy, rel, run, runningPid, say, secs, startBroker, tail, whoListens,
} from './infra.ts';
import type { NodeSpec } from './infra.ts';

export const SECURE_BASE = path.join(path.dirname(BASE), 'kafka-secure');
export const SECURE_ENV_FILE = path.join(SECURE_BASE, 'secure.env');
const TLS_DIR = path.join(SECURE_BASE, 'tls');
const CREDENTIALS_DIR = path.join(SECURE_BASE, 'credentials');
const STATE_FILE = path.join(SECURE_BASE, 'cluster.json');
const SECURE_PORT = Number(process.env.TICKFLOW_SECURE_KAFKA_PORT ?? BROKER_PORT + 200);
/** The host name the certificate names and the broker advertises. */
const HOST = 'localhost';
export const ADMIN_USER = 'admin';
const MECHANISM = 'SCRAM-SHA-512';

const node: NodeSpec = {
  id: 1,
  port: SECURE_PORT,
  controllerPort: SECURE_PORT + 2,
  dir: path.join(SECURE_BASE, 'broker-1'),
  dataDir: path.join(SECURE_BASE, 'broker-1', 'data'),
  props: path.join(SECURE_BASE, 'broker-1', 'server.properties'),
  logFile: path.join(SECURE_BASE, 'broker-1', 'kafka.log'),
  pidFile: path.join(SECURE_BASE, 'broker-1', 'kafka.pid'),
};
const internalPort = SECURE_PORT + 1;
const users = (): string[] => [ADMIN_USER, ...SERVICE_ACLS.map((s) => s.principal)];
/** PostgreSQL roles of a secured deployment (their passwords are made here too, as pg-<role>.password). */
export const PG_ROLES = ['postgres', 'tickflow_writer', 'tickflow_reader'];
/** Names the certificate lists: this machine, and the secured compose profile's hosts. */
const CERT_NAMES = [HOST, 'kafka-secure', 'postgres-secure'];
const passwordFile = (user: string): string => path.join(CREDENTIALS_DIR, `${user}.password`);
const tlsFile = (name: string): string => path.join(TLS_DIR, name);

// ---------------------------------------------------------------- certificates and users

async function openssl(args: string[]): Promise<void> {
  const r = await run('openssl', args, { cwd: TLS_DIR });
  if (r.code !== 0) fail(`openssl ${args[0]} failed (exit ${r.code}): ${r.output.trim().split('\n').pop()}`);
}

/** A CA, a certificate for localhost signed by it, and a second CA; made once, kept. */
async function ensureCertificates(): Promise<void> {
  if (existsSync(tlsFile('broker-keystore.pem')) && existsSync(tlsFile('other-ca.pem'))) return;
  const t = performance.now();
  rmSync(TLS_DIR, { recursive: true, force: true });
  mkdirSync(TLS_DIR, { recursive: true, mode: 0o700 });
  const ca = ['-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign'];
  await openssl(['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '825', '-keyout', 'ca.key', '-out', 'ca.pem', '-subj', '/CN=tickflow local CA', ...ca]);
  await openssl(['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '825', '-keyout', 'other-ca.key', '-out', 'other-ca.pem', '-subj', '/CN=some other CA', ...ca]);
  await openssl(['req', '-newkey', 'rsa:2048', '-nodes', '-keyout', 'server.key', '-out', 'server.csr', '-subj', `/CN=${HOST}`]);
  writeFileSync(
    tlsFile('server.ext'),
    [`subjectAltName=${CERT_NAMES.map((n) => `DNS:${n}`).join(',')}`, 'basicConstraints=CA:FALSE', 'keyUsage=critical,digitalSignature,keyEncipherment', 'extendedKeyUsage=serverAuth', ''].join('\n'),
  );
  await openssl(['x509', '-req', '-in', 'server.csr', '-CA', 'ca.pem', '-CAkey', 'ca.key', '-CAcreateserial', '-days', '825', '-out', 'server.pem', '-extfile', 'server.ext']);
  // Kafka's PEM keystore: the (unencrypted PKCS#8) key, then the certificate chain.
  writeFileSync(tlsFile('broker-keystore.pem'), readFileSync(tlsFile('server.key'), 'utf8') + readFileSync(tlsFile('server.pem'), 'utf8'), { mode: 0o600 });
  for (const key of ['ca.key', 'other-ca.key', 'server.key']) chmodSync(tlsFile(key), 0o600);
  say(`made a CA and a certificate for ${CERT_NAMES.join(', ')} in ${rel(TLS_DIR)} in ${secs(t)}`);
}

/** One random password per user, kept in credentials/<user>.password. */
function ensurePasswords(formatted: boolean): Map<string, string> {
  mkdirSync(CREDENTIALS_DIR, { recursive: true, mode: 0o700 });
  const passwords = new Map<string, string>();
  for (const user of users()) {
    const file = passwordFile(user);
    if (!existsSync(file)) {
      if (formatted) fail(`user ${user} has no password in ${rel(CREDENTIALS_DIR)} but the cluster is formatted; reset with 'npm run infra:down -- --secure --purge'`);
      writeFileSync(file, `${randomBytes(18).toString('hex')}\n`, { mode: 0o600 });
    }
    passwords.set(user, readFileSync(file, 'utf8').trim());
  }
  for (const role of PG_ROLES) {
    const file = passwordFile(`pg-${role}`);
    if (!existsSync(file)) writeFileSync(file, `${randomBytes(18).toString('hex')}\n`, { mode: 0o600 });
  }
  return passwords;
}

// ---------------------------------------------------------------- broker

function serverProperties(): string {
  const lines = [
    '# Written by scripts/infra-secure.ts on every `up -- --secure`; edit the script, not this file.',
    'process.roles=broker,controller',
    `node.id=${node.id}`,
    `controller.quorum.bootstrap.servers=127.0.0.1:${node.controllerPort}`,
    `listeners=SASL_SSL://127.0.0.1:${node.port},INTERNAL://127.0.0.1:${internalPort},CONTROLLER://127.0.0.1:${node.controllerPort}`,
    `advertised.listeners=SASL_SSL://${HOST}:${node.port},INTERNAL://127.0.0.1:${internalPort}`,
    'controller.listener.names=CONTROLLER',
    'listener.security.protocol.map=SASL_SSL:SASL_SSL,INTERNAL:PLAINTEXT,CONTROLLER:PLAINTEXT',
    'inter.broker.listener.name=INTERNAL',
    `sasl.enabled.mechanisms=${MECHANISM}`,
    `listener.name.sasl_ssl.${MECHANISM.toLowerCase()}.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;`,
    'ssl.keystore.type=PEM',
    `ssl.keystore.location=${tlsFile('broker-keystore.pem')}`,
    'ssl.truststore.type=PEM',
    `ssl.truststore.location=${tlsFile('ca.pem')}`,
    'ssl.client.auth=none',
    'authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer',
    // ANONYMOUS: the peers on the 127.0.0.1 PLAINTEXT inter-broker and controller listeners.
    `super.users=User:${ADMIN_USER};User:ANONYMOUS`,
    'allow.everyone.if.no.acl.found=false',
    `log.dirs=${node.dataDir}`,
    'num.partitions=1',
    'default.replication.factor=1',
    'min.insync.replicas=1',
    'offsets.topic.replication.factor=1',
    'transaction.state.log.replication.factor=1',
    'transaction.state.log.min.isr=1',
    'share.coordinator.state.topic.replication.factor=1',
    'share.coordinator.state.topic.min.isr=1',
    'group.initial.rebalance.delay.ms=0',
    'auto.create.topics.enable=false',
    'delete.topic.enable=true',
  ];
  return `${lines.join('\n')}\n`;
}

async function format(passwords: Map<string, string>): Promise<void> {
  if (isFormatted(node)) return;
  const t = performance.now();
  const clusterId = kafkaUuid();
  const scram = [...passwords].flatMap(([name, password]) => ['--add-scram', `${MECHANISM}=[name=${name},password=${password}]`]);
  const r = await run(javaBinary(), [
    '-Xmx256m', `-Dlog4j2.configurationFile=${LOG4J}`, '-cp', `${LIB}/*`,
    'kafka.tools.StorageTool', 'format', '-t', clusterId, '-c', node.props, '--standalone', ...scram,
  ]);
  if (r.code !== 0) {
    console.error(r.output.trimEnd().split('\n').slice(-20).join('\n'));
    fail(`formatting storage of the secured broker failed (exit ${r.code}); see above`);
  }
  writeFileSync(STATE_FILE, `${JSON.stringify({ clusterId, createdAt: new Date().toISOString(), users: [...passwords.keys()] }, null, 2)}\n`);
  say(`formatted storage (cluster id ${clusterId}) with ${passwords.size} ${MECHANISM} users in ${secs(t)}`);
}

function adminClient(password: string, timeoutMs = 5000): Admin {
  const admin = new Admin({
    clientId: 'tickflow-infra-secure',
    bootstrapBrokers: [`${HOST}:${node.port}`],
    tls: { ca: readFileSync(tlsFile('ca.pem'), 'utf8') },
    sasl: { mechanism: MECHANISM, username: ADMIN_USER, password },
    connectTimeout: timeoutMs,
    requestTimeout: timeoutMs,
    timeout: timeoutMs,
    retries: 0,
  });
  admin.on('error', () => undefined);
  return admin;
}

async function waitReady(password: string, pid: number | undefined, fromByte: number, timeoutSec: number): Promise<void> {
  const deadline = Date.now() + timeoutSec * 1000;
  let last = 'no answer yet';
  for (;;) {
    if (pid !== undefined && !isAlive(pid)) {
      console.error(tail(node.logFile, 20, fromByte));
      rmSync(node.pidFile, { force: true });
      fail(`the secured broker died at start; last lines of ${rel(node.logFile)} above`);
    }
    const admin = adminClient(password, 3000);
    try {
      await admin.metadata({ forceUpdate: true });
      return;
    } catch (e) {
      last = (e as Error).message;
    } finally {
      await admin.close().catch(() => undefined);
    }
    if (Date.now() > deadline) {
      console.error(tail(node.logFile, 20, fromByte));
      fail(`secured Kafka not ready after ${timeoutSec}s (${last}); broker left running, see ${rel(node.logFile)}, stop with 'npm run infra:down -- --secure'`);
    }
    await sleep(500);
  }
}

/** Partitions of a topic the admin creates: one for outputs that are read whole, three otherwise. */
function partitionsOf(topic: string): number {
  return topic === 'unique-users' || topic.endsWith('dlq') || topic.endsWith('dead-letters') ? 1 : 3;
}

const OPERATION = { Read: AclOperations.READ, Write: AclOperations.WRITE, Describe: AclOperations.DESCRIBE } as const;
const RESOURCE = { topic: ResourceTypes.TOPIC, group: ResourceTypes.GROUP, 'transactional-id': ResourceTypes.TRANSACTIONAL_ID } as const;

/** The topics of the ACL table (missing ones created) and exactly its bindings. */
async function applyAcls(password: string): Promise<void> {
  const t = performance.now();
  const admin = adminClient(password, 15_000);
  try {
    const existing = new Set(await admin.listTopics());
    const missing = aclTopics().filter((topic) => !existing.has(topic));
    for (const topic of missing) await admin.createTopics({ topics: [topic], partitions: partitionsOf(topic), replicas: 1 });
    const creations: Acl[] = aclBindings().map((b) => ({
      resourceType: RESOURCE[b.resource],
      resourceName: b.name,
      resourcePatternType: b.prefixed ? ResourcePatternTypes.PREFIXED : ResourcePatternTypes.LITERAL,
      principal: b.principal,
      host: '*',
      operation: OPERATION[b.operation],
      permissionType: AclPermissionTypes.ALLOW,
    }));
    await admin.createAcls({ creations });
    say(`topics ${aclTopics().join(', ')} (${missing.length} created); ${creations.length} ACL bindings for ${SERVICE_ACLS.length} services in ${secs(t)}`);
  } finally {
    await admin.close().catch(() => undefined);
  }
}

function writeEnvFile(): void {
  const lines = [
    '# Written by `npm run infra:up -- --secure`. Paths only; each password is in TICKFLOW_SECURE_CREDENTIALS/<user>.password.',
    `TICKFLOW_SECURE_BROKERS=${HOST}:${node.port}`,
    `TICKFLOW_SECURE_HOST=${HOST}`,
    `TICKFLOW_SECURE_CREDENTIALS=${CREDENTIALS_DIR}`,
    `TICKFLOW_SECURE_CA=${tlsFile('ca.pem')}`,
    `TICKFLOW_SECURE_OTHER_CA=${tlsFile('other-ca.pem')}`,
    `TICKFLOW_SECURE_SERVER_CERT=${tlsFile('server.pem')}`,
    `TICKFLOW_SECURE_SERVER_KEY=${tlsFile('server.key')}`,
    `KAFKA_SASL_MECHANISM=${MECHANISM}`,
    '',
  ];
  writeFileSync(SECURE_ENV_FILE, lines.join('\n'));
}

export async function secureUp(opts: { timeout: number }): Promise<void> {
  const t0 = performance.now();
  const pid = runningPid(node);
  if (pid !== undefined && existsSync(SECURE_ENV_FILE)) {
    const admin = ensurePasswords(true).get(ADMIN_USER) as string;
    await waitReady(admin, pid, 0, 10);
    await applyAcls(admin); // the table may have grown since the broker started: bindings are idempotent
    say(`secured Kafka already running at ${HOST}:${node.port} (pid ${pid}); ACLs brought up to date — env in ${rel(SECURE_ENV_FILE)}`);
    return;
  }
  checkJava();
  for (const port of [node.port, internalPort, node.controllerPort]) {
    if (pid === undefined && (await portBusy(port))) fail(`port ${port} is taken by ${whoListens(port)}; free it or set TICKFLOW_SECURE_KAFKA_PORT`);
  }
  await ensureLib(kafkaVersionFromPom());
  mkdirSync(node.dir, { recursive: true });
  if (!existsSync(LOG4J)) writeFileSync(LOG4J, LOG4J_YAML);
  await ensureCertificates();
  const passwords = ensurePasswords(isFormatted(node));
  writeFileSync(node.props, serverProperties());
  await format(passwords);
  let started = pid;
  let fromByte = 0;
  if (started === undefined) {
    fromByte = existsSync(node.logFile) ? readFileSync(node.logFile).length : 0;
    started = startBroker(node).child.pid;
  }
  await waitReady(passwords.get(ADMIN_USER) as string, started, fromByte, opts.timeout);
  await applyAcls(passwords.get(ADMIN_USER) as string);
  writeEnvFile();
  say(`secured Kafka ready at SASL_SSL ${HOST}:${node.port} (${MECHANISM}, ACLs) in ${secs(t0)} — env in ${rel(SECURE_ENV_FILE)}`);
}

export async function secureDown(opts: { purge: boolean; timeout: number }): Promise<void> {
  const pid = runningPid(node);
  if (pid === undefined) say('secured Kafka not running; nothing to stop');
  else {
    const t = performance.now();
    await killPids([pid], opts.timeout * 1000);
    rmSync(node.pidFile, { force: true });
    say(`stopped the secured broker (pid ${pid}) in ${secs(t)}`);
  }
  if (opts.purge) {
    for (const entry of ['broker-1', 'tls', 'credentials', 'cluster.json', 'secure.env']) rmSync(path.join(SECURE_BASE, entry), { recursive: true, force: true });
    say(`purged ${rel(SECURE_BASE)} (data, certificates, credentials)`);
  }
}

export function secureStatus(json: boolean): void {
  const pid = runningPid(node);
  const result = { running: pid !== undefined, pid: pid ?? null, bootstrap: `${HOST}:${node.port}`, env: existsSync(SECURE_ENV_FILE) ? SECURE_ENV_FILE : null, log: rel(node.logFile) };
  if (json) console.log(JSON.stringify(result, null, 2));
  else say(`secured Kafka ${result.bootstrap}: ${pid ? `running, pid ${pid}` : 'stopped'}; env ${result.env ? rel(result.env) : '(none: run infra:up -- --secure)'}; log ${result.log}`);
}
