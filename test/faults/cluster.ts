/**
 * The 3-broker cluster the fault suite breaks: which broker leads a partition (Kafka's
 * metadata), which process that broker is (scripts/infra.ts knows the pids it started),
 * kill -9 of it, and bringing it back with the infra script.
 */
import { spawn } from 'node:child_process';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { Admin } from '@platformatic/kafka';
import kafkajs from 'kafkajs';
import { forEachMessageIndependently } from '../helpers/independent-reader.ts';
import type { ClusterMetadata } from '@platformatic/kafka';
import { localBrokers } from '../../scripts/infra.ts';
import type { LocalBroker } from '../../scripts/infra.ts';
import { tickflow } from './tickflow-process.ts';

const ROOT = path.resolve(import.meta.dirname, '../..');

/** `npm run infra:up -- --brokers 3` prints these on the default port (TICKFLOW_KAFKA_PORT moves them). */
export const FAULT_BROKERS = (process.env.KAFKA_BROKERS || '127.0.0.1:9092,127.0.0.1:9093,127.0.0.1:9094').split(',');
export const BROKERS_FLAG = ['--brokers', FAULT_BROKERS.join(',')];

/** The first broker port of the local cluster, from the addresses the suite is given. */
const firstPort = Math.min(...FAULT_BROKERS.map((b) => Number(b.split(':').at(-1))));

async function withAdmin<T>(work: (admin: Admin) => Promise<T>, timeoutMs = 5000): Promise<T> {
  const admin = new Admin({ clientId: 'tickflow-faults', bootstrapBrokers: FAULT_BROKERS, connectTimeout: timeoutMs, requestTimeout: timeoutMs, timeout: timeoutMs, retries: 1 });
  try {
    return await work(admin);
  } finally {
    await admin.close().catch(() => undefined);
  }
}

export function metadata(topics: string[]): Promise<ClusterMetadata> {
  return withAdmin((admin) => admin.metadata({ topics, forceUpdate: true }));
}

/**
 * Fails with one line saying what to do unless a 3-broker cluster started by infra:up in
 * this checkout answers at FAULT_BROKERS (the suite must know the brokers' pids to kill them).
 */
export async function checkCluster(): Promise<void> {
  const where = FAULT_BROKERS.join(',');
  const start = 'start one with `npm run infra:up -- --brokers 3` (and KAFKA_BROKERS, TICKFLOW_KAFKA_PORT if not on 9092)';
  let meta: ClusterMetadata;
  try {
    meta = await withAdmin((admin) => admin.metadata({ topics: [], forceUpdate: true }), 3000);
  } catch (error) {
    throw new Error(`the fault suite needs a 3-broker Kafka cluster at ${where}, and none answers (${(error as Error).message}): ${start}`);
  }
  if (meta.brokers.size !== 3) {
    throw new Error(`the fault suite needs a 3-broker Kafka cluster at ${where}; this one has ${meta.brokers.size} broker(s): ${start}`);
  }
  const local = localBrokers(firstPort);
  for (const [id, broker] of meta.brokers) {
    const mine = local.find((b) => b.port === broker.port);
    if (!mine || mine.pid === undefined || mine.id !== id) {
      throw new Error(`broker ${id} at ${broker.host}:${broker.port} was not started by infra:up in this checkout, so the suite cannot kill it: ${start}`);
    }
  }
}

/** The broker leading a partition now, with its process. */
export async function leaderOf(topic: string, partition: number): Promise<LocalBroker> {
  const meta = await metadata([topic]);
  const leader = meta.topics.get(topic)?.partitions[partition]?.leader;
  if (leader === undefined || leader < 0) throw new Error(`${topic}/${partition} has no leader`);
  const broker = localBrokers(firstPort).find((b) => b.id === leader);
  if (!broker || broker.pid === undefined) throw new Error(`the leader of ${topic}/${partition}, broker ${leader}, is not a running local broker`);
  return broker;
}

/** kill -9 of a broker's JVM; returns once the process is gone. */
export async function killBroker(broker: LocalBroker): Promise<void> {
  process.kill(broker.pid!, 'SIGKILL');
  while (alive(broker.pid!)) await sleep(20);
}

/** Waits until another broker leads the partition (the controller fenced the dead one). */
export async function waitForNewLeader(topic: string, partition: number, dead: number, timeoutMs = 120_000): Promise<number> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const leader = await metadata([topic]).then((m) => m.topics.get(topic)?.partitions[partition]?.leader, () => undefined);
    if (leader !== undefined && leader >= 0 && leader !== dead) return leader;
    if (Date.now() > deadline) throw new Error(`no new leader for ${topic}/${partition} after ${timeoutMs / 1000}s`);
    await sleep(250);
  }
}

/** Brings stopped brokers back with the infra script (a no-op for those that run). */
export async function restartBrokers(): Promise<void> {
  const result = await new Promise<{ code: number | null; output: string }>((resolve, reject) => {
    const child = spawn(process.execPath, [path.join(ROOT, 'scripts/infra.ts'), 'up', '--no-postgres', '--timeout', '180'], {
      cwd: ROOT,
      env: { ...process.env, TICKFLOW_KAFKA_PORT: String(firstPort) },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let output = '';
    child.stdout.on('data', (d: Buffer) => (output += d.toString()));
    child.stderr.on('data', (d: Buffer) => (output += d.toString()));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, output }));
  });
  if (result.code !== 0) throw new Error(`infra up failed (exit ${result.code}):\n${result.output}`);
}

/**
 * Waits until every partition of every topic (__consumer_offsets too) has all its replicas
 * in sync: a broker brought back has caught up, so the next test can lose another one.
 * (KafkaJS here: @platformatic/kafka's metadata leaves internal topics out.)
 */
export async function waitForFullIsr(timeoutMs = 180_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  const kafka = new kafkajs.Kafka({ clientId: 'tickflow-faults-isr', brokers: FAULT_BROKERS, logLevel: kafkajs.logLevel.NOTHING });
  let lagging: string[] = ['(not checked yet)'];
  for (;;) {
    const admin = kafka.admin();
    try {
      await admin.connect();
      const { brokers } = await admin.describeCluster();
      const { topics } = await admin.fetchTopicMetadata({ topics: await admin.listTopics() });
      lagging = brokers.length === 3 ? [] : [`${brokers.length} brokers`];
      for (const topic of topics) {
        for (const p of topic.partitions) if (p.leader < 0 || p.isr.length < p.replicas.length) lagging.push(`${topic.name}/${p.partitionId}`);
      }
    } catch (error) {
      lagging = [(error as Error).message];
    } finally {
      await admin.disconnect().catch(() => undefined);
    }
    if (lagging.length === 0) return;
    if (Date.now() > deadline) throw new Error(`replicas not in sync after ${timeoutMs / 1000}s: ${lagging.slice(0, 5).join(', ')}`);
    await sleep(500);
  }
}

/** Fresh topics, replicated on all three brokers with min.insync.replicas 2, created by tickflow itself. */
export async function createTopics(names: string[], partitions = 3): Promise<void> {
  const result = await tickflow(['topics', '--create', names.join(','), '--partitions', String(partitions), '--replication-factor', '3', '--min-insync-replicas', '2', ...BROKERS_FLAG]);
  if (result.code !== 0) throw new Error(`topics --create failed: ${result.stderr}`);
  const meta = await metadata(names);
  for (const name of names) {
    const topic = meta.topics.get(name);
    if (!topic || topic.partitions.length !== partitions || topic.partitions.some((p) => p.replicas.length !== 3)) {
      throw new Error(`${name} was not created with ${partitions} partitions of 3 replicas`);
    }
  }
}

export async function deleteTopics(names: string[]): Promise<void> {
  await withAdmin((admin) => admin.deleteTopics({ topics: names })).catch(() => undefined);
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * Records a read_committed reader sees: for a topic written in transactions the offsets
 * also count the commit markers (and aborted records), so the records are read and counted.
 */
export function committedCount(topic: string): Promise<number> {
  return forEachMessageIndependently(FAULT_BROKERS, topic, () => undefined);
}

/** Messages in a topic now (end − earliest offsets), asked with KafkaJS; a topic written in transactions counts its markers too (see committedCount). */
export async function messageCount(topic: string): Promise<number> {
  const admin = new kafkajs.Kafka({ clientId: 'tickflow-faults-count', brokers: FAULT_BROKERS, logLevel: kafkajs.logLevel.NOTHING }).admin();
  await admin.connect();
  try {
    return (await admin.fetchTopicOffsets(topic)).reduce((n, p) => n + Number(p.high) - Number(p.low), 0);
  } finally {
    await admin.disconnect();
  }
}
