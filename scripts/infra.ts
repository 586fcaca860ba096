/**
 * Local infrastructure for development and CI, without Docker:
 *
 *   npm run infra:up [-- --brokers 3]   Kafka (KRaft, plain JVM from Maven Central jars) + PostgreSQL databases
 *   npm run infra:down [-- --purge]     stop the brokers (and delete their data)
 *   npm run infra:status [-- --json]    what is running
 *
 * Everything lives under .tickflow/kafka/ (git-ignored):
 *   lib/                 Kafka jars fetched by Maven from infra/kafka/pom.xml (+ .tickflow-lib.json marker)
 *   log4j2.yaml          broker logging (INFO to stdout, which goes to broker-N/kafka.log)
 *   cluster.json         cluster id, broker count, node directory ids
 *   broker-N/            server.properties, data/, kafka.log, kafka.pid
 */
import { spawn, spawnSync } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { closeSync, existsSync, mkdirSync, openSync, readdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync, writeSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { parseArgs } from 'node:util';
import { Admin } from '@platformatic/kafka';
import pg from 'pg';
import { TickflowError, isTickflowError } from '../src/core/errors.ts';

export const ROOT = path.resolve(import.meta.dirname, '..');
const POM = path.join(ROOT, 'infra', 'kafka', 'pom.xml');
export const BASE = path.resolve(ROOT, process.env.TICKFLOW_INFRA_DIR ?? '.tickflow', 'kafka');
export const LIB = path.join(BASE, 'lib');
const LIB_MARKER = path.join(LIB, '.tickflow-lib.json');
const STATE_FILE = path.join(BASE, 'cluster.json');
export const LOG4J = path.join(BASE, 'log4j2.yaml');
const DEFAULT_DATABASE_URL = 'postgres://postgres@127.0.0.1:5432/tickflow';
const TEST_DATABASE = 'tickflow_test';
/** First broker port; TICKFLOW_KAFKA_PORT moves a second cluster (another checkout) out of the way. */
export const BROKER_PORT = Number(process.env.TICKFLOW_KAFKA_PORT ?? 9092);
const MAX_BROKERS = 5;

const HELP = `Usage: npm run infra:<up|down|status> [-- options]
       node scripts/infra.ts <up|down|status> [options]

Runs Apache Kafka (KRaft mode, no ZooKeeper) as plain JVM processes from jars
fetched with Maven (infra/kafka/pom.xml), and makes sure PostgreSQL answers at
DATABASE_URL with the databases it names and '${TEST_DATABASE}'. State lives in
${path.relative(ROOT, BASE) || BASE}/ (git-ignored).

Commands:
  up        fetch jars if needed, format storage once, start the broker(s) in
            the background and wait until a metadata request succeeds; then
            check PostgreSQL. A no-op when everything already answers.
  down      stop the broker(s): SIGTERM, then SIGKILL after --timeout.
  status    print what is running (--json for machines).

Options:
  --brokers N     up: number of brokers, 1 (default) to ${MAX_BROKERS}. 1 broker listens on
                  127.0.0.1:9092 (controller 9093); N>1 on 9092..9092+N-1
                  (controllers 9192..), replication factor min(N,3).
                  Defaults to the broker count of the existing cluster data.
  --timeout S     up: seconds to wait for readiness (default 120);
                  down: seconds before SIGKILL (default 30).
  --purge         down: also delete the cluster data (jars are kept).
  --secure        up/down/status the secured cluster instead (scripts/infra-secure.ts):
                  one broker with a SASL_SSL listener (SCRAM-SHA-512, ACLs from
                  src/log/acls.ts) on localhost:9292 (the plain port + 200), a CA and
                  certificates made with openssl; state and secure.env in
                  .tickflow/kafka-secure/. --purge also deletes its certificates.
  --no-postgres   up/status: skip the PostgreSQL check.
  --json          status: JSON output.
  -h, --help      this help.

Environment:
  DATABASE_URL    default ${DEFAULT_DATABASE_URL}
  JAVA_HOME       Java 17+ to use (else 'java' on PATH)
  KAFKA_HEAP_OPTS JVM heap flags (default -Xms256m -Xmx768m)
  TICKFLOW_KAFKA_PORT  first broker port (default 9092; controllers follow it as above)
  TICKFLOW_INFRA_DIR   state folder (default .tickflow)
  TICKFLOW_SECURE_KAFKA_PORT  SASL_SSL port of --secure (default: plain port + 200;
                  its inter-broker and controller listeners take the next two)
`;

// ---------------------------------------------------------------- output

const started = 0; // performance.now() counts from process start, so totals include Node start-up
export const say = (line: string): void => console.log(`infra: ${line}`);
export const secs = (from: number): string => `${((performance.now() - from) / 1000).toFixed(1)}s`;
export const rel = (p: string): string => path.relative(process.cwd(), p) || '.';
export function fail(message: string, details: Record<string, unknown> = {}): never {
  throw new TickflowError('INFRA', message, details);
}

// ---------------------------------------------------------------- model

export interface NodeSpec {
  id: number;
  port: number;
  controllerPort: number;
  dir: string;
  dataDir: string;
  props: string;
  logFile: string;
  pidFile: string;
}

interface ClusterState {
  kafkaVersion: string;
  clusterId: string;
  brokers: number;
  directoryIds: Record<string, string>;
  createdAt: string;
}

function topology(brokers: number, firstPort = BROKER_PORT): NodeSpec[] {
  return Array.from({ length: brokers }, (_, i) => {
    const id = i + 1;
    const dir = path.join(BASE, `broker-${id}`);
    return {
      id,
      port: firstPort + i,
      controllerPort: brokers === 1 ? firstPort + 1 : firstPort + 100 + i,
      dir,
      dataDir: path.join(dir, 'data'),
      props: path.join(dir, 'server.properties'),
      logFile: path.join(dir, 'kafka.log'),
      pidFile: path.join(dir, 'kafka.pid'),
    };
  });
}

const bootstrapOf = (nodes: NodeSpec[]): string[] => nodes.map((n) => `127.0.0.1:${n.port}`);

function readState(): ClusterState | undefined {
  if (!existsSync(STATE_FILE)) return undefined;
  try {
    return JSON.parse(readFileSync(STATE_FILE, 'utf8')) as ClusterState;
  } catch {
    return fail(`${rel(STATE_FILE)} is unreadable; run 'npm run infra:down -- --purge' to reset the local cluster`);
  }
}

/** Kafka's Uuid: 16 random bytes, base64url without padding, never starting with '-'. */
export function kafkaUuid(): string {
  for (;;) {
    const id = randomBytes(16).toString('base64url');
    if (!id.startsWith('-')) return id;
  }
}

export function kafkaVersionFromPom(): string {
  const m = /<kafka\.version>([^<]+)<\/kafka\.version>/.exec(readFileSync(POM, 'utf8'));
  return m ? m[1].trim() : fail(`no <kafka.version> in ${rel(POM)}`);
}

// ---------------------------------------------------------------- for the fault suite

export interface LocalBroker {
  /** Kafka's node.id. */
  id: number;
  port: number;
  /** The broker's JVM while it runs (checked against its command line), else undefined. */
  pid: number | undefined;
  logFile: string;
}

/**
 * The brokers of the cluster `up` formatted in this checkout, as they run now: the fault
 * suite (test/faults) kills one by pid and brings it back with `up`. `firstPort` is the
 * first broker's port (TICKFLOW_KAFKA_PORT when it started them).
 */
export function localBrokers(firstPort = BROKER_PORT): LocalBroker[] {
  const state = readState();
  if (!state) return [];
  return topology(state.brokers, firstPort).map((n) => ({ id: n.id, port: n.port, pid: runningPid(n), logFile: n.logFile }));
}

// ---------------------------------------------------------------- processes

function commandLineOf(pid: number): string | undefined {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').join(' ');
  } catch {
    const r = spawnSync('ps', ['-o', 'command=', '-p', String(pid)], { encoding: 'utf8' });
    return r.status === 0 ? r.stdout.trim() : undefined;
  }
}

export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** The pid of this node's broker if it is running (verified by its command line), else undefined. */
export function runningPid(node: NodeSpec): number | undefined {
  if (!existsSync(node.pidFile)) return undefined;
  const pid = Number(readFileSync(node.pidFile, 'utf8').trim());
  if (Number.isInteger(pid) && pid > 0 && isAlive(pid)) {
    const cmd = commandLineOf(pid);
    if (cmd && cmd.includes('kafka.Kafka') && cmd.includes(node.props)) return pid;
  }
  rmSync(node.pidFile, { force: true }); // stale
  return undefined;
}

export function javaBinary(): string {
  return process.env.JAVA_HOME ? path.join(process.env.JAVA_HOME, 'bin', 'java') : 'java';
}

export function checkJava(): string {
  const java = javaBinary();
  const r = spawnSync(java, ['-version'], { encoding: 'utf8' });
  if (r.error) fail(`Java not found (${java}): install Java 17+ (e.g. apt-get install openjdk-17-jre-headless) or set JAVA_HOME`);
  const m = /version "([^"]+)"/.exec(`${r.stderr}${r.stdout}`);
  const version = m?.[1] ?? 'unknown';
  const major = version.startsWith('1.') ? Number(version.split('.')[1]) : Number.parseInt(version, 10);
  if (!(major >= 17)) fail(`Java ${version} at ${java} is too old: Kafka 4 needs Java 17+ (set JAVA_HOME)`);
  return version;
}

export function tail(file: string, lines: number, fromByte = 0): string {
  if (!existsSync(file)) return '(no log)';
  const text = readFileSync(file).subarray(fromByte).toString('utf8');
  return text.trimEnd().split('\n').slice(-lines).join('\n') || '(empty log)';
}

export function run(cmd: string, args: string[], opts: { cwd?: string } = {}): Promise<{ code: number; output: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { cwd: opts.cwd ?? ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    child.stdout.on('data', (d: Buffer) => (output += d.toString()));
    child.stderr.on('data', (d: Buffer) => (output += d.toString()));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code: code ?? 1, output }));
  });
}

// ---------------------------------------------------------------- ports and probes

/** true when something already listens on the port (we cannot bind it). */
export function portBusy(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = net.createServer();
    server.once('error', () => resolve(true));
    server.listen({ port, host: '127.0.0.1', exclusive: true }, () => server.close(() => resolve(false)));
  });
}

function portAnswers(port: number, timeoutMs = 1000): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect({ port, host: '127.0.0.1' });
    const done = (ok: boolean): void => {
      socket.destroy();
      resolve(ok);
    };
    socket.setTimeout(timeoutMs, () => done(false));
    socket.once('connect', () => done(true));
    socket.once('error', () => done(false));
  });
}

export function whoListens(port: number): string {
  const r = spawnSync('ss', ['-ltnpH', `sport = :${port}`], { encoding: 'utf8' });
  const m = /users:\(\("([^"]+)",pid=(\d+)/.exec(r.stdout ?? '');
  return m ? `${m[1]}, pid ${m[2]}` : 'unknown process';
}

interface Probe {
  ok: boolean;
  clusterId?: string;
  brokers?: number;
  error?: string;
}

async function probeKafka(bootstrap: string[], timeoutMs = 3000): Promise<Probe> {
  const admin = new Admin({
    clientId: 'tickflow-infra',
    bootstrapBrokers: bootstrap,
    connectTimeout: timeoutMs,
    requestTimeout: timeoutMs,
    timeout: timeoutMs,
    retries: 0,
  });
  try {
    const meta = await admin.metadata({ forceUpdate: true });
    return { ok: true, clusterId: meta.id, brokers: meta.brokers.size };
  } catch (e) {
    return { ok: false, error: (e as Error).message };
  } finally {
    await admin.close().catch(() => undefined);
  }
}

// ---------------------------------------------------------------- jars

export async function ensureLib(version: string): Promise<void> {
  const pomHash = createHash('sha256').update(readFileSync(POM)).digest('hex');
  if (existsSync(LIB_MARKER) && existsSync(path.join(LIB, `kafka_2.13-${version}.jar`))) {
    try {
      const marker = JSON.parse(readFileSync(LIB_MARKER, 'utf8')) as { kafkaVersion?: string; pomSha256?: string };
      if (marker.kafkaVersion === version && marker.pomSha256 === pomHash) {
        say(`Kafka ${version} jars cached in ${rel(LIB)}`);
        return;
      }
    } catch {
      // refetch
    }
  }
  const mvnCheck = spawnSync('mvn', ['-v'], { encoding: 'utf8' });
  if (mvnCheck.error) fail('Maven (mvn) not found: install Maven 3.8+ (e.g. apt-get install maven) to fetch the Kafka jars');
  const t = performance.now();
  say(`fetching Kafka ${version} jars from Maven Central (${rel(POM)}) ...`);
  const tmp = `${LIB}.tmp-${process.pid}`;
  rmSync(tmp, { recursive: true, force: true });
  mkdirSync(tmp, { recursive: true });
  const { code, output } = await run('mvn', [
    '-q', '-B', '-f', POM, 'dependency:copy-dependencies', `-DoutputDirectory=${tmp}`, '-DincludeScope=runtime',
  ]);
  if (code !== 0 || !existsSync(path.join(tmp, `kafka_2.13-${version}.jar`))) {
    rmSync(tmp, { recursive: true, force: true });
    console.error(output.trimEnd().split('\n').slice(-20).join('\n'));
    fail(`Maven could not fetch Kafka ${version} (exit ${code}); see its output above`);
  }
  writeFileSync(path.join(tmp, '.tickflow-lib.json'), `${JSON.stringify({ kafkaVersion: version, pomSha256: pomHash, fetchedAt: new Date().toISOString() }, null, 2)}\n`);
  rmSync(LIB, { recursive: true, force: true });
  renameSync(tmp, LIB);
  const jars = readdirSync(LIB).filter((f) => f.endsWith('.jar')).length;
  say(`fetched ${jars} jars into ${rel(LIB)} in ${secs(t)}`);
}

// ---------------------------------------------------------------- config

export const LOG4J_YAML = `# Written by scripts/infra.ts. INFO to stdout (redirected to broker-N/kafka.log).
Configuration:
  name: tickflow-kafka
  Appenders:
    Console:
      name: STDOUT
      target: SYSTEM_OUT
      PatternLayout:
        pattern: "[%d] %p %m (%c)%n"
  Loggers:
    Root:
      level: INFO
      AppenderRef:
        - ref: STDOUT
    Logger:
      - name: kafka.request.logger
        level: WARN
      - name: org.apache.kafka.clients
        level: WARN
      - name: state.change.logger
        level: WARN
`;

function serverProperties(node: NodeSpec, nodes: NodeSpec[]): string {
  const n = nodes.length;
  const rf = Math.min(n, 3);
  const minIsr = n >= 3 ? 2 : 1;
  const lines = [
    '# Written by scripts/infra.ts on every `up`; edit the script, not this file.',
    'process.roles=broker,controller',
    `node.id=${node.id}`,
    `controller.quorum.bootstrap.servers=${nodes.map((x) => `127.0.0.1:${x.controllerPort}`).join(',')}`,
    `listeners=PLAINTEXT://127.0.0.1:${node.port},CONTROLLER://127.0.0.1:${node.controllerPort}`,
    `advertised.listeners=PLAINTEXT://127.0.0.1:${node.port}`,
    'controller.listener.names=CONTROLLER',
    'listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT',
    'inter.broker.listener.name=PLAINTEXT',
    `log.dirs=${node.dataDir}`,
    'num.partitions=1',
    `default.replication.factor=${rf}`,
    `min.insync.replicas=${minIsr}`,
    `offsets.topic.replication.factor=${rf}`,
    `transaction.state.log.replication.factor=${rf}`,
    `transaction.state.log.min.isr=${minIsr}`,
    `share.coordinator.state.topic.replication.factor=${rf}`,
    `share.coordinator.state.topic.min.isr=${minIsr}`,
    'group.initial.rebalance.delay.ms=0',
    'auto.create.topics.enable=true',
    'delete.topic.enable=true',
  ];
  return `${lines.join('\n')}\n`;
}

export const isFormatted = (node: NodeSpec): boolean => existsSync(path.join(node.dataDir, 'meta.properties'));

async function format(nodes: NodeSpec[], state: ClusterState): Promise<void> {
  const todo = nodes.filter((n) => !isFormatted(n));
  if (todo.length === 0) return;
  const t = performance.now();
  const quorum =
    nodes.length === 1
      ? ['--standalone']
      : ['--initial-controllers', nodes.map((n) => `${n.id}@127.0.0.1:${n.controllerPort}:${state.directoryIds[n.id]}`).join(',')];
  const results = await Promise.all(
    todo.map((node) =>
      run(javaBinary(), [
        '-Xmx256m', `-Dlog4j2.configurationFile=${LOG4J}`, '-cp', `${LIB}/*`,
        'kafka.tools.StorageTool', 'format', '-t', state.clusterId, '-c', node.props, ...quorum,
      ]).then((r) => ({ node, ...r })),
    ),
  );
  for (const r of results) {
    if (r.code !== 0) {
      console.error(r.output.trimEnd().split('\n').slice(-20).join('\n'));
      fail(`formatting storage of broker ${r.node.id} failed (exit ${r.code}); see above`);
    }
  }
  say(`formatted storage of ${todo.length} node(s) (cluster id ${state.clusterId}) in ${secs(t)}`);
}

// ---------------------------------------------------------------- up

export interface Started {
  node: NodeSpec;
  child: ChildProcess;
  logOffset: number;
  exited: { code: number | null; signal: string | null } | null;
}

export function startBroker(node: NodeSpec): Started {
  const heap = (process.env.KAFKA_HEAP_OPTS ?? '-Xms256m -Xmx768m').split(/\s+/).filter(Boolean);
  const logOffset = existsSync(node.logFile) ? statSync(node.logFile).size : 0;
  const fd = openSync(node.logFile, 'a');
  writeSync(fd, `\n===== tickflow infra: starting broker ${node.id} at ${new Date().toISOString()} =====\n`);
  const child = spawn(
    javaBinary(),
    [
      ...heap,
      '-XX:+UseG1GC', '-XX:MaxGCPauseMillis=20', '-XX:InitiatingHeapOccupancyPercent=35', '-XX:+ExplicitGCInvokesConcurrent',
      '-Djava.awt.headless=true',
      `-Dlog4j2.configurationFile=${LOG4J}`,
      `-Dkafka.logs.dir=${node.dir}`,
      '-cp', `${LIB}/*`,
      'kafka.Kafka', node.props,
    ],
    { cwd: node.dir, detached: true, stdio: ['ignore', fd, fd] },
  );
  closeSync(fd);
  const s: Started = { node, child, logOffset, exited: null };
  child.on('exit', (code, signal) => (s.exited = { code, signal }));
  child.on('error', (e) => (s.exited = { code: -1, signal: e.message }));
  child.unref();
  if (child.pid === undefined) fail(`could not start broker ${node.id} (${javaBinary()})`);
  writeFileSync(node.pidFile, `${child.pid}\n`);
  say(`started broker ${node.id} (pid ${child.pid}, 127.0.0.1:${node.port}, log ${rel(node.logFile)})`);
  return s;
}

export async function killPids(pids: number[], timeoutMs: number): Promise<{ pid: number; killed: boolean }[]> {
  for (const pid of pids) {
    try {
      process.kill(pid, 'SIGTERM');
    } catch {
      // already gone
    }
  }
  const deadline = Date.now() + timeoutMs;
  while (pids.some(isAlive) && Date.now() < deadline) await sleep(200);
  return pids.map((pid) => {
    if (!isAlive(pid)) return { pid, killed: false };
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // gone meanwhile
    }
    return { pid, killed: true };
  });
}

async function waitReady(nodes: NodeSpec[], starting: Started[], timeoutSec: number): Promise<Probe> {
  const deadline = Date.now() + timeoutSec * 1000;
  const bootstrap = bootstrapOf(nodes);
  let last: Probe = { ok: false, error: 'no answer yet' };
  for (;;) {
    const dead = starting.find((s) => s.exited || (s.child.pid !== undefined && !isAlive(s.child.pid)));
    if (dead) {
      console.error(tail(dead.node.logFile, 20, dead.logOffset));
      const how = dead.exited ? (dead.exited.signal ? `signal ${dead.exited.signal}` : `exit code ${dead.exited.code}`) : 'unknown reason';
      await killPids(starting.filter((s) => s !== dead && s.child.pid).map((s) => s.child.pid as number), 10_000);
      for (const s of starting) rmSync(s.node.pidFile, { force: true });
      fail(`broker ${dead.node.id} died at start (${how}); last lines of ${rel(dead.node.logFile)} above`);
    }
    const answering = await Promise.all(nodes.map((n) => portAnswers(n.port, 500)));
    if (answering.every(Boolean)) {
      last = await probeKafka(bootstrap, 3000);
      if (last.ok && last.brokers === nodes.length) return last;
      if (last.ok) last = { ok: false, error: `metadata lists ${last.brokers}/${nodes.length} brokers` };
    } else {
      last = { ok: false, error: `port(s) ${nodes.filter((_, i) => !answering[i]).map((n) => n.port).join(', ')} not answering` };
    }
    if (Date.now() > deadline) {
      const s = starting[0];
      if (s) console.error(tail(s.node.logFile, 20, s.logOffset));
      fail(`Kafka not ready after ${timeoutSec}s (${last.error}); brokers left running, see ${rel(nodes[0].logFile)}, stop with 'npm run infra:down'`);
    }
    await sleep(300);
  }
}

async function up(opts: { brokers?: number; timeout: number; postgres: boolean }): Promise<void> {
  const version = kafkaVersionFromPom();
  let state = readState();
  const brokers = opts.brokers ?? state?.brokers ?? 1;
  if (state && state.brokers !== brokers) {
    const running = topology(state.brokers).filter((n) => runningPid(n) !== undefined);
    fail(
      running.length > 0
        ? `a ${state.brokers}-broker cluster is running; stop it first with 'npm run infra:down' (and '-- --purge' to switch to ${brokers})`
        : `${rel(BASE)} holds data of a ${state.brokers}-broker cluster; delete it with 'npm run infra:down -- --purge' to switch to ${brokers} broker(s)`,
    );
  }
  if (state && state.kafkaVersion !== version) {
    say(`note: cluster data was formatted by Kafka ${state.kafkaVersion}, jars are ${version}`);
  }
  const nodes = topology(brokers);
  const bootstrap = bootstrapOf(nodes);
  const pids = new Map(nodes.map((n) => [n.id, runningPid(n)]));
  const ours = nodes.filter((n) => pids.get(n.id) !== undefined);

  if (ours.length === nodes.length) {
    const probe = await probeKafka(bootstrap);
    if (probe.ok && probe.brokers === nodes.length) {
      say(`Kafka already running: ${brokers} broker(s) at ${bootstrap.join(',')} (pid ${[...pids.values()].join(', ')}); nothing to do`);
      if (opts.postgres) await ensurePostgres();
      say(`up in ${secs(started)} (no-op) — KAFKA_BROKERS=${bootstrap.join(',')}`);
      return;
    }
  }

  const java = checkJava();
  say(`Java ${java} (${javaBinary()})`);

  // Ports of nodes we must start must be free, or already a Kafka broker that we then use.
  const toStart = nodes.filter((n) => pids.get(n.id) === undefined);
  for (const node of toStart) {
    if (await portBusy(node.port)) {
      const probe = await probeKafka([`127.0.0.1:${node.port}`], 2000);
      if (probe.ok && nodes.length === 1) {
        say(`a Kafka broker not started by infra:up already answers on 127.0.0.1:${node.port} (cluster ${probe.clusterId}); leaving it alone and using it`);
        if (opts.postgres) await ensurePostgres();
        say(`up in ${secs(started)} — KAFKA_BROKERS=${bootstrap.join(',')}`);
        return;
      }
      fail(
        probe.ok
          ? `port ${node.port} is used by another Kafka broker (${whoListens(node.port)}) not managed by infra:up; stop it first`
          : `port ${node.port} is taken by ${whoListens(node.port)}, which is not Kafka; free the port first`,
      );
    }
    if (await portBusy(node.controllerPort)) {
      fail(`controller port ${node.controllerPort} is taken by ${whoListens(node.controllerPort)}; free the port first`);
    }
  }

  await ensureLib(version);
  mkdirSync(BASE, { recursive: true });
  writeFileSync(LOG4J, LOG4J_YAML);
  if (!state) {
    state = {
      kafkaVersion: version,
      clusterId: kafkaUuid(),
      brokers,
      directoryIds: Object.fromEntries(nodes.map((n) => [String(n.id), kafkaUuid()])),
      createdAt: new Date().toISOString(),
    };
  }
  for (const node of nodes) {
    mkdirSync(node.dir, { recursive: true });
    writeFileSync(node.props, serverProperties(node, nodes));
  }
  const unformatted = nodes.filter((n) => !isFormatted(n));
  if (unformatted.length > 0 && unformatted.length < nodes.length && nodes.length > 1) {
    fail(`only some nodes of the ${brokers}-broker cluster are formatted; reset with 'npm run infra:down -- --purge'`);
  }
  await format(nodes, state);
  writeFileSync(STATE_FILE, `${JSON.stringify(state, null, 2)}\n`);

  const t = performance.now();
  const starting = toStart.map(startBroker);
  const probe = await waitReady(nodes, starting, opts.timeout);
  say(`Kafka ${version} ready: ${brokers} broker(s) at ${bootstrap.join(',')} (cluster ${probe.clusterId}) in ${secs(t)}`);
  if (opts.postgres) await ensurePostgres();
  say(`up in ${secs(started)} — KAFKA_BROKERS=${bootstrap.join(',')}`);
}

// ---------------------------------------------------------------- down

async function down(opts: { purge: boolean; timeout: number }): Promise<void> {
  const state = readState();
  const nodes = topology(state?.brokers ?? countBrokerDirs());
  const running = nodes.map((n) => ({ node: n, pid: runningPid(n) })).filter((r): r is { node: NodeSpec; pid: number } => r.pid !== undefined);
  if (running.length === 0) {
    say('Kafka not running; nothing to stop');
  } else {
    const t = performance.now();
    const results = await killPids(running.map((r) => r.pid), opts.timeout * 1000);
    for (const r of running) rmSync(r.node.pidFile, { force: true });
    const killed = results.filter((r) => r.killed).map((r) => r.pid);
    say(
      `stopped ${running.length} broker(s) (pid ${running.map((r) => r.pid).join(', ')}) in ${secs(t)}` +
        (killed.length ? `; SIGKILL after ${opts.timeout}s for pid ${killed.join(', ')}` : ''),
    );
  }
  if (opts.purge) {
    for (const entry of existsSync(BASE) ? readdirSync(BASE) : []) {
      if (/^broker-\d+$/.test(entry) || entry === 'cluster.json') rmSync(path.join(BASE, entry), { recursive: true, force: true });
    }
    say(`purged cluster data in ${rel(BASE)} (jars kept in ${rel(LIB)})`);
  }
  say(`down in ${secs(started)}`);
}

function countBrokerDirs(): number {
  if (!existsSync(BASE)) return 1;
  const ids = readdirSync(BASE).map((e) => /^broker-(\d+)$/.exec(e)?.[1]).filter(Boolean).map(Number);
  return Math.max(1, ...ids);
}

// ---------------------------------------------------------------- status

async function status(opts: { json: boolean; postgres: boolean }): Promise<void> {
  const state = readState();
  const nodes = topology(state?.brokers ?? countBrokerDirs());
  const bootstrap = bootstrapOf(nodes);
  const brokerRows = await Promise.all(
    nodes.map(async (n) => {
      const pid = runningPid(n);
      return { id: n.id, address: `127.0.0.1:${n.port}`, controller: `127.0.0.1:${n.controllerPort}`, pid: pid ?? null, running: pid !== undefined, listening: await portAnswers(n.port, 500), log: rel(n.logFile) };
    }),
  );
  const probe = brokerRows.some((b) => b.listening) ? await probeKafka(bootstrap, 2000) : { ok: false, error: 'not listening' };
  const pgStatus = opts.postgres ? await postgresStatus() : null;
  const libMarker = existsSync(LIB_MARKER) ? (JSON.parse(readFileSync(LIB_MARKER, 'utf8')) as { kafkaVersion: string }) : null;
  const result = {
    kafka: {
      version: libMarker?.kafkaVersion ?? null,
      lib: existsSync(LIB) ? rel(LIB) : null,
      clusterId: state?.clusterId ?? null,
      formatted: state !== undefined,
      answering: probe.ok,
      brokersInMetadata: probe.ok ? (probe as Probe).brokers : 0,
      bootstrap: bootstrap.join(','),
      brokers: brokerRows,
    },
    postgres: pgStatus,
  };
  if (opts.json) {
    console.log(JSON.stringify(result, null, 2));
    return;
  }
  const k = result.kafka;
  say(`Kafka ${k.version ?? '(jars not fetched)'}: ${k.answering ? `answering at ${k.bootstrap}, ${k.brokersInMetadata} broker(s) in metadata, cluster ${probe.clusterId}` : `not answering (${probe.error})`}`);
  for (const b of brokerRows) {
    say(`  broker ${b.id} ${b.address}: ${b.running ? `running, pid ${b.pid}` : b.listening ? 'port answers, not started by infra:up' : 'stopped'} (log ${b.log})`);
  }
  if (!state) say('  no cluster data yet (run npm run infra:up)');
  if (pgStatus) {
    say(`PostgreSQL ${pgStatus.url}: ${pgStatus.ok ? `answering (${pgStatus.version}); databases ${Object.entries(pgStatus.databases).map(([d, e]) => `${d}${e ? '' : ' (missing)'}`).join(', ')}` : `not answering (${pgStatus.error})`}`);
  }
}

// ---------------------------------------------------------------- PostgreSQL

function databaseUrl(): URL {
  const raw = process.env.DATABASE_URL || DEFAULT_DATABASE_URL;
  try {
    return new URL(raw);
  } catch {
    return fail('DATABASE_URL is not a valid URL (expected postgres://user[:password]@host:port/database)');
  }
}

function redact(url: URL): string {
  const u = new URL(url.href);
  if (u.password) u.password = '***';
  return u.href;
}

function adminUrl(url: URL): string {
  const u = new URL(url.href);
  u.pathname = '/postgres';
  return u.href;
}

const targetDatabases = (url: URL): string[] => [...new Set([decodeURIComponent(url.pathname.slice(1)) || 'tickflow', TEST_DATABASE])];

async function connectAdmin(url: URL): Promise<pg.Client> {
  const client = new pg.Client({ connectionString: adminUrl(url), connectionTimeoutMillis: 5000 });
  client.on('error', () => undefined);
  await client.connect();
  return client;
}

function startLocalPostgres(): boolean {
  if (spawnSync('sh', ['-c', 'command -v pg_ctlcluster'], { encoding: 'utf8' }).status !== 0) return false;
  if (!existsSync('/etc/postgresql')) return false;
  let startedAny = false;
  for (const version of readdirSync('/etc/postgresql')) {
    const r = spawnSync('pg_ctlcluster', ['--skip-systemctl-redirect', version, 'main', 'start'], { encoding: 'utf8' });
    if (r.status === 0) startedAny = true;
    else say(`pg_ctlcluster ${version} main start: ${(r.stderr || r.stdout).trim().split('\n').pop()}`);
  }
  return startedAny;
}

async function ensurePostgres(): Promise<void> {
  const url = databaseUrl();
  const local = ['127.0.0.1', 'localhost', '[::1]', ''].includes(url.hostname);
  let client: pg.Client | undefined;
  try {
    client = await connectAdmin(url);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ECONNREFUSED' && local && startLocalPostgres()) {
      say('started the local PostgreSQL cluster with pg_ctlcluster');
      const deadline = Date.now() + 20_000;
      while (!client) {
        try {
          client = await connectAdmin(url);
        } catch (e2) {
          if (Date.now() > deadline) fail(`PostgreSQL at ${redact(url)} still not answering after start: ${(e2 as Error).message}`);
          await sleep(300);
        }
      }
    } else if (code && /^[0-9A-Z]{5}$/.test(code) && !code.startsWith('E')) {
      fail(`PostgreSQL at ${redact(url)} refused the connection: ${(e as Error).message} (SQLSTATE ${code})`);
    } else {
      fail(`PostgreSQL at ${redact(url)} does not answer (${code ?? (e as Error).message}); start it or set DATABASE_URL`);
    }
  }
  try {
    const created: string[] = [];
    for (const db of targetDatabases(url)) {
      const exists = await client.query('SELECT 1 FROM pg_database WHERE datname = $1', [db]);
      if (exists.rowCount === 0) {
        try {
          await client.query(`CREATE DATABASE ${client.escapeIdentifier(db)}`);
          created.push(db);
        } catch (e) {
          if ((e as { code?: string }).code !== '42P04') fail(`cannot create database ${db} at ${redact(url)}: ${(e as Error).message}`);
        }
      }
    }
    const dbs = targetDatabases(url).join(', ');
    say(`PostgreSQL ok at ${redact(url)}: databases ${dbs}${created.length ? ` (created ${created.join(', ')})` : ' exist'}`);
  } finally {
    await client.end().catch(() => undefined);
  }
}

async function postgresStatus(): Promise<{ url: string; ok: boolean; version?: string; databases: Record<string, boolean>; error?: string }> {
  const url = databaseUrl();
  const databases: Record<string, boolean> = {};
  let client: pg.Client | undefined;
  try {
    client = await connectAdmin(url);
    const v = await client.query<{ v: string }>("SELECT current_setting('server_version') AS v");
    for (const db of targetDatabases(url)) {
      databases[db] = ((await client.query('SELECT 1 FROM pg_database WHERE datname = $1', [db])).rowCount ?? 0) > 0;
    }
    return { url: redact(url), ok: true, version: v.rows[0].v, databases };
  } catch (e) {
    return { url: redact(url), ok: false, databases, error: (e as NodeJS.ErrnoException).code ?? (e as Error).message };
  } finally {
    await client?.end().catch(() => undefined);
  }
}

// ---------------------------------------------------------------- main

async function main(argv: string[]): Promise<void> {
  let parsed;
  try {
    parsed = parseArgs({
      args: argv,
      allowPositionals: true,
      options: {
        brokers: { type: 'string' },
        timeout: { type: 'string' },
        purge: { type: 'boolean', default: false },
        secure: { type: 'boolean', default: false },
        'no-postgres': { type: 'boolean', default: false },
        json: { type: 'boolean', default: false },
        help: { type: 'boolean', short: 'h', default: false },
      },
    });
  } catch (e) {
    throw new TickflowError('BAD_FLAG', `${(e as Error).message} (see --help)`);
  }
  const { values, positionals } = parsed;
  const command = positionals[0];
  if (values.help || command === 'help') {
    process.stdout.write(HELP);
    return;
  }
  if (positionals.length !== 1 || !['up', 'down', 'status'].includes(command)) {
    throw new TickflowError('BAD_FLAG', `expected one command: up, down or status (got '${positionals.join(' ')}'; see --help)`);
  }
  let brokers: number | undefined;
  if (values.brokers !== undefined) {
    brokers = Number(values.brokers);
    if (!Number.isInteger(brokers) || brokers < 1 || brokers > MAX_BROKERS) {
      throw new TickflowError('BAD_FLAG', `--brokers must be an integer from 1 to ${MAX_BROKERS} (got '${values.brokers}')`);
    }
    if (command !== 'up') throw new TickflowError('BAD_FLAG', '--brokers applies to up only');
  }
  let timeout: number | undefined;
  if (values.timeout !== undefined) {
    timeout = Number(values.timeout);
    if (!Number.isFinite(timeout) || timeout <= 0) throw new TickflowError('BAD_FLAG', `--timeout must be a positive number of seconds (got '${values.timeout}')`);
  }
  if (values.purge && command !== 'down') throw new TickflowError('BAD_FLAG', '--purge applies to down only');
  if (values.secure) {
    if (brokers !== undefined) throw new TickflowError('BAD_FLAG', '--secure runs one broker; --brokers does not apply');
    const secure = await import('./infra-secure.ts');
    if (command === 'up') await secure.secureUp({ timeout: timeout ?? 120 });
    else if (command === 'down') await secure.secureDown({ purge: values.purge, timeout: timeout ?? 30 });
    else secure.secureStatus(values.json);
    return;
  }
  if (command === 'up') await up({ brokers, timeout: timeout ?? 120, postgres: !values['no-postgres'] });
  else if (command === 'down') await down({ purge: values.purge, timeout: timeout ?? 30 });
  else await status({ json: values.json, postgres: !values['no-postgres'] });
}

// Not a top-level await: `--secure` imports infra-secure.ts, which imports this module
// back, and that import must not wait for main() to finish.
if (import.meta.main) {
  main(process.argv.slice(2)).catch((e: unknown) => {
    if (isTickflowError(e)) {
      console.error(`infra: error: ${e.message}`);
      process.exitCode = e.exitCode;
    } else {
      console.error(`infra: error: ${(e as Error).stack ?? String(e)}`);
      process.exitCode = 70;
    }
  });
}
