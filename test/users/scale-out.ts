import assert from 'node:assert/strict';
import { after } from 'node:test';
import type { Database } from '../../src/db/types.ts';
import { isolatedDatabase } from '../stocks/fixtures.ts';
import type { IsolatedDatabase } from '../stocks/fixtures.ts';
import { execFileSync, spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import type { KafkaLog } from '../../src/log/kafka.ts';
import { BIN } from '../helpers/cli.ts';
import { KAFKA_BROKERS } from '../helpers/env.ts';
import { BROKERS, readAll, unique } from './helpers.ts';
import { referenceUniqueUsers, referenceWindows } from './reference.ts';
import type { ReferenceFrame } from './reference.ts';
import { seededRandom } from '../../src/core/random.ts';

/** What the `unique-users --scale-out` tests share: members as child processes, an independent reader, the expected windows. */

/** The topic as librdkafka reads it at read_committed (an independent client), one line per record in `format`. */
export function kcat(topic: string, format = '%s'): string[] {
  const out = execFileSync('/usr/bin/kcat', ['-b', KAFKA_BROKERS[0], '-C', '-t', topic, '-X', 'isolation.level=read_committed', '-e', '-q', '-f', `${format}\\n`], { encoding: 'utf8', timeout: 120_000, maxBuffer: 256 << 20 });
  return out.split('\n').filter(Boolean);
}

export const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

export interface Member {
  child: ChildProcess;
  exited: Promise<NodeJS.Signals | number | null>;
  stderr: () => string;
}

export const scaleOutTopics = (name: string) => ({ output: unique(`${name}-out`), late: unique(`${name}-late`), dead: unique(`${name}-dlq`) });
export type ScaleOutTopics = ReturnType<typeof scaleOutTopics>;

/** One member: node itself runs the CLI (a kill -9 of `child` kills the member, no wrapper in between). */
export function startMember(input: string, t: ScaleOutTopics, group: string, extra: readonly string[], logLevel = 'warn'): Member {
  const child = spawn(process.execPath, [BIN, 'unique-users', '--input', input, '--output', t.output, '--late-topic', t.late, '--dead-letter-topic', t.dead,
    '--group', group, '--granularity', 'minute,hour', '--idle-timeout', '5s', ...extra, ...BROKERS], { env: { ...process.env, LOG_LEVEL: logLevel }, stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
  const exited = new Promise<NodeJS.Signals | number | null>((resolve) => child.on('close', (code, signal) => resolve(signal ?? code)));
  return { child, exited, stderr: () => stderr };
}

/**
 * Sends `frames` to `input` in ten chunks 1.5 s apart (about 15 s, while the members run);
 * after the sixth, once a partial is committed, kills the first member with -9 (the likely
 * combiner) and, with `restart`, starts another in its place. Returns what it did, for the log.
 */
export async function streamAndKill(log: KafkaLog, input: string, frames: readonly Frame[], group: string, members: Member[], restart?: () => Member): Promise<string> {
  const producer = log.producer();
  const chunk = Math.ceil(frames.length / 10);
  let killed = '';
  for (let i = 0, n = 0; i < frames.length; i += chunk, n++) {
    await producer.send(input, frames.slice(i, i + chunk).map((f) => ({ value: f.text, partition: f.partition })));
    if (n === 5) {
      const partials = async () => ((await countRecords(log, `${group}-partials`)) > 0 ? kcat(`${group}-partials`).filter((v) => v.includes('"granularity"')).length : 0);
      let counted = 0;
      for (let w = 0; (counted = await partials()) === 0; w++) {
        if (w > 300) assert.fail(`no partials in 60 s: ${members.map((m) => m.stderr()).join('\n---\n')}`);
        await sleep(200);
      }
      members[0]!.child.kill('SIGKILL');
      assert.equal(await members[0]!.exited, 'SIGKILL', members[0]!.stderr());
      killed = `member 1 of ${members.length} killed -9 with ${counted} partials committed`;
      if (restart) {
        members.push(restart());
        killed += ', and started again';
      }
    }
    await sleep(1500);
  }
  await producer.close();
  return killed;
}

/** Records a read_committed reader sees now. */
export async function countRecords(log: KafkaLog, topic: string): Promise<number> {
  if (!(await log.listTopics()).includes(topic)) return 0;
  let n = 0;
  for await (const batch of log.readRange({ topic })) n += batch.length;
  return n;
}

/** Every minute of the independent recount (flushed once the input is quiet), and the hours every partition's watermark passed. */
export async function expectedWindows(log: KafkaLog, input: string, keep: (frame: ReferenceFrame) => boolean = () => true): Promise<Array<Record<string, unknown>>> {
  const inputRecords = await readAll(log, input);
  const reference = referenceUniqueUsers(inputRecords.map((r) => ({ partition: r.partition, text: r.value })).filter(keep));
  const watermark = Math.min(...reference.streamTimes.values()) - 5;
  return referenceWindows(reference, ['minute', 'hour']).filter((w) => w.granularity === 'minute' || w.end <= watermark) as unknown as Array<Record<string, unknown>>;
}

/**
 * Waits until the group's committed offsets cover `count` input records (each offset's
 * metadata says how far its partition is read) and returns the seconds since `started`
 * (start-up, group join and rebalances included).
 */
export async function readAndCommitted(log: KafkaLog, group: string, input: string, count: number, started: number): Promise<number> {
  for (;;) {
    const committed = await log.committedWithMetadata(group, input).catch(() => new Map<number, { metadata?: string | null }>());
    let sum = 0n;
    for (const { metadata } of committed.values()) sum += BigInt((JSON.parse(metadata ?? '{}') as { read?: string }).read ?? '0');
    if (sum >= BigInt(count)) return (Date.now() - started) / 1000;
    if (Date.now() - started > 600_000) assert.fail('not read in 10 minutes');
    await sleep(100);
  }
}

export const windowKey = (w: Record<string, unknown>) => `${String(w.granularity)}/${String(w.start)}`;
export const sortedWindows = (list: ReadonlyArray<Record<string, unknown>>) => [...list].sort((a, b) => windowKey(a).localeCompare(windowKey(b)));

/** Waits until the output holds `count` records, then a little more (a repeat would show), and stops the members. Returns the seconds waited. */
export async function finish(log: KafkaLog, members: Member[], output: string, count: number, limitMs = 300_000): Promise<number> {
  const started = Date.now();
  for (;;) {
    if (Date.now() - started > limitMs) assert.fail(`${count} windows not out in ${limitMs / 1000} s (${await countRecords(log, output)}): ${members.map((m) => m.stderr()).join('\n---\n')}`);
    if ((await countRecords(log, output)) >= count) break;
    await sleep(250);
  }
  const seconds = (Date.now() - started) / 1000;
  await sleep(3000);
  for (const m of members) if (m.child.exitCode === null && m.child.signalCode === null) m.child.kill('SIGTERM');
  for (const m of members) {
    const code = await m.exited;
    assert.ok(code === 0 || code === 'SIGKILL', `member exited ${String(code)}: ${m.stderr()}`);
  }
  return seconds;
}

/**
 * The scaled-out output read at read_committed (kcat): no window twice, every window equal to
 * the independent recount (`approximate`: its uniqueUsers a HyperLogLog estimate within 3
 * standard errors of the recount's, every other field equal) and, text for text, to the single
 * instance's output.
 */
export function assertAsSingleInstance(scaledOutput: string, singleOutput: string, expected: ReadonlyArray<Record<string, unknown>>, approximate = false): void {
  const got = kcat(scaledOutput).map((v) => JSON.parse(v) as Record<string, unknown>);
  assert.equal(new Set(got.map(windowKey)).size, got.length, 'no window twice');
  if (approximate) assertEstimates(got, expected);
  else assert.deepEqual(sortedWindows(got), sortedWindows(expected), 'every window once, as the independent recount');
  const one = kcat(singleOutput).map((v) => JSON.parse(v) as Record<string, unknown>);
  assert.deepEqual(sortedWindows(got), sortedWindows(one), 'as a single instance');
  assert.deepEqual(kcat(scaledOutput).sort(), kcat(singleOutput).sort(), 'the same record text as a single instance');
}

/** `--approx` windows against the exact recount: the same windows, frames and late; each estimate within 3 standard errors. */
function assertEstimates(got: ReadonlyArray<Record<string, unknown>>, expected: ReadonlyArray<Record<string, unknown>>): void {
  assert.deepEqual(got.map(windowKey).sort(), expected.map(windowKey).sort(), 'every window once, as the independent recount');
  const exact = new Map(expected.map((w) => [windowKey(w), w]));
  for (const w of got) {
    const e = exact.get(windowKey(w))!;
    const { uniqueUsers, approximate, standardError, ...rest } = w as { uniqueUsers: number; approximate: unknown; standardError: number };
    const { uniqueUsers: count, ...others } = e as { uniqueUsers: number };
    assert.deepEqual(rest, others, `${windowKey(w)}: as the recount, but for its estimate`);
    assert.equal(approximate, true);
    assert.equal(standardError, 1.04 / Math.sqrt(2 ** 14), 'the standard error of --precision 14');
    assert.ok(Math.abs(uniqueUsers - count) <= 3 * standardError * count, `${windowKey(w)}: ${uniqueUsers} within 3 standard errors of ${count}`);
  }
}

/** The recount leaves out the frames ten years off (the guard's, never counted): they do not move a partition's time. */
export const plausible = (frame: { text: string }) => !frame.text.includes('"/far"');

/** 2016-07-11T13:39:00Z: the frames of the scale-out tests cross 14:00. */
export const T0 = 1_468_244_340;
const USERS = 6000;
/** A ts ten years off: held by the event-time guard, then implausible. */
const FAR = 10 * 365 * 86_400;

export interface Frame {
  partition: number;
  text: string;
}

/**
 * Frames of ~300 bytes, a few seconds out of order, 0.7% late (20–90 s), 0.1% malformed, and
 * a `farShare` ten years off. `keyed`: user k always on partition k mod `partitions`, and
 * `perSecond` frames of event time per second on each partition; else every frame on a random
 * partition (each uid on all of them), `perSecond` frames per second in all.
 */
export function scaleOutFrames(seed: string, count: number, o: { partitions: number; keyed: boolean; perSecond: number; farShare?: number }): Frame[] {
  const random = seededRandom(seed);
  const far = o.farShare ?? 0;
  const out: Frame[] = [];
  for (let n = 0; n < count; n++) {
    const partition = o.keyed ? n % o.partitions : random.int(0, o.partitions - 1);
    const base = T0 + (o.keyed ? Math.floor(n / o.partitions) : n) / o.perSecond;
    const user = o.keyed ? random.int(0, USERS / o.partitions - 1) * o.partitions + partition : random.int(0, USERS - 1);
    const r = random.next();
    const pad = 'x'.repeat(200 + random.int(0, 100));
    if (r < 0.001) {
      out.push({ partition, text: `{"uid": "user-${user}", "ts": ${Math.floor(base)}, "page": ` });
    } else if (r < 0.001 + far) {
      out.push({ partition, text: JSON.stringify({ uid: `user-${user}`, ts: Math.floor(base) + FAR, page: '/far', pad }) });
    } else if (r < 0.008) {
      const ts = Math.floor(base - 20 - random.next() * 70);
      out.push({ partition, text: JSON.stringify({ uid: `user-${user}`, ts, page: '/late', pad }) });
    } else {
      const ts = Math.round((base + (random.next() - 0.5) * 4) * 1000) / 1000;
      out.push({ partition, text: JSON.stringify({ uid: `user-${user}`, ts, page: `/p/${random.int(0, 99)}`, pad }) });
    }
  }
  return out;
}

/** For a `describe` block: isolated PostgreSQL databases (schemas), each opened connection closed and each dropped after the block. */
export function testDatabases() {
  const databases: IsolatedDatabase[] = [];
  const open: Database[] = [];
  after(async () => {
    for (const db of open) await db.close().catch(() => undefined);
    for (const d of databases) await d.drop().catch(() => undefined);
  });
  return {
    async create(label: string): Promise<IsolatedDatabase> {
      const d = await isolatedDatabase(label);
      databases.push(d);
      return d;
    },
    /** The rows of user_minute_sketches in `d`, one `start/frames/late/exact users/sketch hex` line each, by minute. */
    async minuteRows(d: IsolatedDatabase): Promise<string[]> {
      const db = await d.open();
      open.push(db);
      const { rows } = await db.query<{ minute_start: string; frames: string; late: string; exact_users: string | null; sketch: Buffer }>(
        'SELECT minute_start, frames, late, exact_users, sketch FROM user_minute_sketches ORDER BY minute_start');
      return rows.map((r) => `${r.minute_start}/${r.frames}/${r.late}/${r.exact_users}/${r.sketch.toString('hex')}`);
    },
    /**
     * The minute rows the scaled-out run left in `scaled`: one per minute of the recount, with
     * its frames, late and exact users (none with `approximate`), and every row, sketch
     * included, byte for byte the single instance's in `single`. Returns how many.
     */
    async assertMinuteRows(scaled: IsolatedDatabase, single: IsolatedDatabase, expected: ReadonlyArray<Record<string, unknown>>, approximate = false): Promise<number> {
      const rows = await this.minuteRows(scaled);
      const minutes = expected.filter((w) => w.granularity === 'minute');
      assert.deepEqual(rows.map((r) => r.split('/').slice(0, 4).join('/')), minutes.map((w) => `${String(w.start)}/${String(w.frames)}/${String(w.late)}/${approximate ? 'null' : String(w.uniqueUsers)}`), 'one row per minute, as the recount');
      assert.deepEqual(rows, await this.minuteRows(single), 'the minute rows, sketches included, byte for byte as a single instance\'s');
      return rows.length;
    },
  };
}
