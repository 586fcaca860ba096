import { spawn } from 'node:child_process';
import { BIN } from '../helpers/cli.ts';
import type { CliResult } from '../helpers/cli.ts';
import { KAFKA_BROKERS } from '../helpers/env.ts';
import { transactionsSettled } from '../helpers/transactions.ts';
import type { Log } from '../../src/log/types.ts';
import type { KafkaLog } from '../../src/log/kafka.ts';

let sequence = 0;

/** A topic or group name no other test run uses. */
export function unique(prefix: string): string {
  return `${prefix}-${process.pid}-${Date.now().toString(36)}-${++sequence}`;
}

export const BROKERS = ['--brokers', KAFKA_BROKERS.join(',')];

/** Runs the real tickflow entry with binary-safe stdin. */
export function run(args: readonly string[], options: { input?: Buffer | string; env?: NodeJS.ProcessEnv; timeoutMs?: number } = {}): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [BIN, ...args], { env: { ...process.env, LOG_LEVEL: 'warn', ...options.env }, stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    const timer = setTimeout(() => child.kill('SIGKILL'), options.timeoutMs ?? 180_000);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
    child.stdin.on('error', () => undefined);
    child.stdin.end(options.input ?? '');
  });
}

export interface ReadRecord {
  partition: number;
  offset: bigint;
  key: string | null;
  value: string;
  headers: Record<string, string>;
}

/** Every record of a topic, partition by partition in offset order (through tickflow's own client). */
/** Every record a read_committed reader sees, once no transaction is open on the topic (or after 10 s). */
export async function readAll(log: Log, topic: string): Promise<ReadRecord[]> {
  await transactionsSettled(log, topic);
  const out: ReadRecord[] = [];
  for await (const batch of log.readRange({ topic })) {
    for (const r of batch) {
      out.push({
        partition: r.partition,
        offset: r.offset,
        key: r.key?.toString('utf8') ?? null,
        value: r.value?.toString('utf8') ?? '',
        headers: Object.fromEntries(r.headers.map(([k, v]) => [k, v.toString('utf8')])),
      });
    }
  }
  return out.sort((a, b) => a.partition - b.partition || (a.offset < b.offset ? -1 : a.offset > b.offset ? 1 : 0));
}

/** JSON Lines → parsed objects. */
export function jsonLines<T = Record<string, unknown>>(text: string): T[] {
  return text.split('\n').filter((l) => l.trim() !== '').map((l) => JSON.parse(l) as T);
}

/** A partition's exactly-once commit: the offset, the read position and the snapshot its metadata names (durable state). */
export interface CommittedPosition {
  offset: bigint;
  read: bigint;
  snapshot: string | null;
  /** The partition's position in that snapshot. */
  at: bigint | null;
}

/** What `group` has committed for `input`, per partition, as the offsets' metadata says (none yet: empty). */
export async function committedPositions(log: KafkaLog, group: string, input: string): Promise<Map<number, CommittedPosition>> {
  const out = new Map<number, CommittedPosition>();
  for (const [partition, { offset, metadata }] of await log.committedWithMetadata(group, input).catch(() => new Map<number, { offset: bigint; metadata?: string | null }>())) {
    const parsed = JSON.parse(metadata ?? '{}') as { read?: string; state?: { snap?: [string, string] } };
    const snap = parsed.state?.snap;
    out.set(partition, { offset, read: BigInt(parsed.read ?? offset), snapshot: snap?.[0] ?? null, at: snap ? BigInt(snap[1]) : null });
  }
  return out;
}
