/**
 * `unique-users --database-url` on the real Kafka and PostgreSQL: every emitted minute is
 * kept in user_minute_sketches (src/db/user-sketch-store.ts) before the commit that makes
 * it visible. Frames span three hours over 3 partitions, out of order within the allowed
 * lateness, with late and malformed frames. Checked against an independent recount
 * (reference.ts): one row per minute with its frames, late and exact count; GET
 * /v1/unique-users over an hour, three hours and the whole span within 3 standard errors
 * of the exact distinct users recomputed from the raw frames; a rerun over the same input
 * leaves byte-equal rows; and the service killed -9 mid-run and restarted (same group,
 * exactly once) leaves every minute row equal to the uninterrupted run's.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import pg from 'pg';
import type { ChildProcess } from 'node:child_process';
import { seededRandom } from '../../src/core/random.ts';
import { createPostgresDatabase } from '../../src/db/postgres.ts';
import type { Database } from '../../src/db/types.ts';
import { buildApp } from '../../src/http/app.ts';
import { KafkaLog } from '../../src/log/kafka.ts';
import { BIN } from '../helpers/cli.ts';
import { KAFKA_BROKERS } from '../helpers/env.ts';
import { startPostgresServer } from '../helpers/postgres-server.ts';
import { isolatedDatabase } from '../stocks/fixtures.ts';
import type { IsolatedDatabase } from '../stocks/fixtures.ts';
import { BROKERS, readAll, run, unique } from './helpers.ts';
import { referenceUniqueUsers } from './reference.ts';
import type { ReferenceFrame, ReferenceResult } from './reference.ts';

const PARTITIONS = 3;
const T0 = 1_711_800_000; // 2024-03-30T12:00:00Z
const HOURS = 3;
const PER_MINUTE = 150; // frames per partition per minute of event time
const SE_12 = 1.04 / 64;

interface Row {
  start: number;
  frames: number;
  late: number;
  exactUsers: number | null;
  sketch: string;
}

/**
 * Three hours of frames per partition in offset order: ts jittered ±2 s around a clock
 * that advances steadily (out of order, within the 5 s allowed lateness), 0.5% late
 * (20–80 s behind), 0.3% malformed. Users: a quarter from 3,000 regulars, the rest from a
 * window of ids that slides with time, so minutes share users and an hour holds thousands.
 */
function frames(seed: string): ReferenceFrame[] {
  const random = seededRandom(seed);
  const out: ReferenceFrame[] = [];
  const perPartition = HOURS * 60 * PER_MINUTE;
  for (let i = 0; i < perPartition; i++) {
    for (let partition = 0; partition < PARTITIONS; partition++) {
      const clock = T0 + (i * 60) / PER_MINUTE;
      const r = random.next();
      const uid = random.next() < 0.25 ? `regular-${random.int(0, 2999)}` : `user-${Math.floor(clock / 6) + random.int(0, 1500)}`;
      if (r < 0.003) {
        out.push({ partition, text: [`{"uid": "${uid}", "ts": `, `{"ts": ${Math.floor(clock)}}`, `{"uid": "${uid}", "ts": "later"}`][random.int(0, 2)]! });
      } else if (r < 0.008) {
        out.push({ partition, text: JSON.stringify({ uid, ts: Math.floor(clock - 20 - random.next() * 60), page: '/late' }) });
      } else {
        const ts = Math.round((clock + (random.next() - 0.5) * 4) * 1000) / 1000;
        out.push({ partition, text: JSON.stringify({ uid, ts: random.next() < 0.1 ? String(ts) : ts, page: `/p/${random.int(0, 99)}` }) });
      }
    }
  }
  return out;
}

/** The exact distinct users of the minutes starting in [from, to), from the on-time frames. */
function exactUsers(reference: ReferenceResult, from: number, to: number): number {
  const users = new Set<string>();
  for (const { uid, ts } of reference.onTime) {
    const minute = Math.floor(ts / 60) * 60;
    if (minute >= from && minute < to) users.add(uid);
  }
  return users.size;
}

async function rows(db: Database): Promise<Row[]> {
  const { rows: raw } = await db.query<{ minute_start: string; frames: string; late: string; exact_users: string | null; sketch: Buffer }>(
    'SELECT minute_start, frames, late, exact_users, sketch FROM user_minute_sketches ORDER BY minute_start');
  return raw.map((r) => ({ start: Number(r.minute_start), frames: Number(r.frames), late: Number(r.late), exactUsers: r.exact_users === null ? null : Number(r.exact_users), sketch: r.sketch.toString('hex') }));
}

async function rollups(db: Database): Promise<string[]> {
  const { rows: raw } = await db.query<{ seconds: number; start: string; minutes: number; frames: string; late: string; exact_users: string | null; sketch: Buffer }>(
    'SELECT seconds, start, minutes, frames, late, exact_users, sketch FROM user_sketch_rollups ORDER BY seconds, start');
  return raw.map((r) => `${r.seconds}/${r.start}/${r.minutes}/${r.frames}/${r.late}/${r.exact_users}/${r.sketch.toString('hex')}`);
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe('unique-users --database-url: minute sketches in PostgreSQL', { timeout: 900_000 }, () => {
  let log: KafkaLog;
  let input: string;
  let all: ReferenceFrame[];
  let reference: ReferenceResult;
  const created: string[] = [];
  const databases: IsolatedDatabase[] = [];
  const open: Database[] = [];
  /** The rows of the first, uninterrupted run. */
  let whole: Row[] = [];
  let wholeRollups: string[] = [];

  const topics = (name: string) => {
    const t = { output: unique(`${name}-out`), late: unique(`${name}-late`), dead: unique(`${name}-dlq`) };
    created.push(...Object.values(t));
    return t;
  };
  const database = async (label: string) => {
    const isolated = await isolatedDatabase(label);
    databases.push(isolated);
    const db = createPostgresDatabase(isolated.url);
    open.push(db);
    return { url: isolated.url, db };
  };
  /** Streams the frames into `topic` in 16 chunks 700 ms apart: well under --idle-timeout, so no pause flushes the open minute. */
  const feedInChunks = async (topic: string, frames: readonly ReferenceFrame[]) => {
    const producer = log.producer();
    const chunk = Math.ceil(frames.length / 16);
    for (let i = 0; i < frames.length; i += chunk) {
      await producer.send(topic, frames.slice(i, i + chunk).map((f) => ({ value: f.text, partition: f.partition })));
      await sleep(700);
    }
    await producer.close();
  };
  const untilEnd = (t: ReturnType<typeof topics>, url: string, extra: string[] = []) =>
    run(['unique-users', '--until-end', '--input', input, '--output', t.output, '--late-topic', t.late, '--dead-letter-topic', t.dead,
      '--granularity', 'minute,hour', '--commit-interval', '200ms', '--database-url', url, ...BROKERS, ...extra], { timeoutMs: 300_000 });

  before(async () => {
    log = new KafkaLog({ brokers: KAFKA_BROKERS });
    input = unique('uu-sketch');
    created.push(input);
    await log.createTopics([{ name: input, partitions: PARTITIONS }]);
    all = frames('unique-users-sketches');
    reference = referenceUniqueUsers(all);
    const producer = log.producer();
    for (let i = 0; i < all.length; i += 5_000) await producer.send(input, all.slice(i, i + 5_000).map((f) => ({ value: f.text, partition: f.partition })));
    await producer.close();
  });
  after(async () => {
    for (const db of open) await db.close().catch(() => undefined);
    for (const isolated of databases) await isolated.drop().catch(() => undefined);
    await log.deleteTopics(created).catch(() => undefined);
    await log.close();
  });

  it('a bounded run writes one row per emitted minute, equal to the independent recount, and the output topic\'s minutes are all there', async () => {
    const t = topics('uu-sketch');
    const { url, db } = await database('uu_sketch_whole');
    const result = await untilEnd(t, url);
    assert.equal(result.code, 0, result.stderr);
    whole = await rows(db);
    wholeRollups = await rollups(db);
    const expected = reference.minutes;
    assert.ok(expected.length >= HOURS * 60 && expected.length <= HOURS * 60 + 2, `${expected.length} minutes (the jitter spills over each end)`);
    assert.equal(whole.length, expected.length);
    for (let i = 0; i < expected.length; i++) {
      const [row, minute] = [whole[i]!, expected[i]!];
      assert.deepEqual({ start: row.start, frames: row.frames, late: row.late, exactUsers: row.exactUsers },
        { start: minute.start, frames: minute.frames, late: minute.late, exactUsers: minute.uniqueUsers }, `minute ${minute.window}`);
    }
    // Every minute record the output topic holds has its row, with the same counts.
    const records = (await readAll(log, t.output)).map((r) => JSON.parse(r.value) as { granularity: string; start: number; frames: number; late: number; uniqueUsers: number });
    const minutes = records.filter((r) => r.granularity === 'minute');
    assert.equal(minutes.length, whole.length);
    const byStart = new Map(whole.map((r) => [r.start, r]));
    for (const m of minutes) assert.deepEqual([byStart.get(m.start)?.frames, byStart.get(m.start)?.late, byStart.get(m.start)?.exactUsers], [m.frames, m.late, m.uniqueUsers]);
    // Rollups: one per hour touched and per quarter hour, each summing its minutes.
    const hourRollups = wholeRollups.filter((r) => r.startsWith('3600/'));
    assert.equal(hourRollups.length, new Set(whole.map((r) => Math.floor(r.start / 3600))).size);
    const framesIn = (from: number, to: number) => whole.filter((r) => r.start >= from && r.start < to).reduce((sum, r) => sum + r.frames, 0);
    for (const line of hourRollups) {
      const [, start, minutesIn, framesSum] = line.split('/').map(Number);
      assert.equal(minutesIn, whole.filter((r) => r.start >= start! && r.start < start! + 3600).length);
      assert.equal(framesSum, framesIn(start!, start! + 3600));
    }
    console.log(`# sketches: ${whole.length} minute rows, ${wholeRollups.length} rollups; ${reference.late.length} late, ${reference.invalid} invalid frames`);
  });

  it('GET /v1/unique-users over an hour, three hours and the whole span: within 3 standard errors of the exact distinct users; frames and late exact', async () => {
    assert.ok(whole.length > 0, 'needs the first case');
    const db = open[0]!;
    const app = await buildApp({ db });
    try {
      const end = whole.at(-1)!.start + 60;
      const ranges: Array<[number, number, string]> = [[T0 + 3600, T0 + 7200, 'hour'], [T0, T0 + 3 * 3600, 'hour'], [T0 - 3600, end + 3600, 'day'], [T0 + 1800, T0 + 1800 + 45 * 60, 'minute']];
      for (const [from, to, granularity] of ranges) {
        const response = await app.inject({ method: 'GET', url: `/v1/unique-users?from=${from * 1000}&to=${to * 1000}&granularity=${granularity}` });
        assert.equal(response.statusCode, 200, response.body);
        const body = response.json() as { total: { uniqueUsers: number; frames: number; late: number; minutes: number; approximate: boolean; standardError: number }; buckets: Array<{ start: number; end: number; uniqueUsers: number; frames: number; approximate: boolean }> };
        const exact = exactUsers(reference, from, to);
        const inRange = reference.minutes.filter((m) => m.start >= from && m.start < to);
        assert.equal(body.total.frames, inRange.reduce((s, m) => s + m.frames, 0));
        assert.equal(body.total.late, inRange.reduce((s, m) => s + m.late, 0));
        assert.equal(body.total.minutes, inRange.length);
        assert.equal(body.total.approximate, true);
        assert.equal(body.total.standardError, 0.01625);
        const error = Math.abs(body.total.uniqueUsers - exact) / exact;
        assert.ok(error <= 3 * SE_12, `[${from}, ${to}): ${body.total.uniqueUsers} vs exact ${exact} (${(error * 100).toFixed(2)}%)`);
        // Each bucket too (a single exact minute is exact).
        for (const bucket of body.buckets) {
          const truth = exactUsers(reference, bucket.start, bucket.end);
          if (!bucket.approximate) assert.equal(bucket.uniqueUsers, truth, `bucket ${bucket.start}`);
          else assert.ok(Math.abs(bucket.uniqueUsers - truth) <= 3 * SE_12 * truth, `bucket ${bucket.start}: ${bucket.uniqueUsers} vs ${truth}`);
        }
        console.log(`# ${new Date(from * 1000).toISOString()}..${new Date(to * 1000).toISOString()} by ${granularity}: ${body.total.uniqueUsers} vs exact ${exact} (${(error * 100).toFixed(2)}%, ${body.buckets.length} buckets)`);
      }
    } finally {
      await app.close();
    }
  });

  it('a rerun over the same input (a replay) leaves byte-equal rows and rollups', async () => {
    assert.ok(whole.length > 0, 'needs the first case');
    const db = open[0]!;
    const result = await untilEnd(topics('uu-sketch-again'), databases[0]!.url, ['--commit-interval', '1s']);
    assert.equal(result.code, 0, result.stderr);
    assert.deepEqual(await rows(db), whole);
    assert.deepEqual(await rollups(db), wholeRollups);
  });

  it('the service killed -9 mid-run and restarted (same group, exactly once): every minute row present and equal to the uninterrupted run\'s', async () => {
    assert.ok(whole.length > 0, 'needs the first case');
    // A topic of its own that the frames stream into while the service runs.
    const streamed = unique('uu-sketch-kill');
    created.push(streamed);
    await log.createTopics([{ name: streamed, partitions: PARTITIONS }]);
    const t = topics('uu-sketch-kill');
    const { url, db } = await database('uu_sketch_kill');
    const group = unique('uu-sketch-group');
    const service = (): ChildProcess => spawn(process.execPath, [BIN, 'unique-users', '--input', streamed, '--output', t.output, '--late-topic', t.late, '--dead-letter-topic', t.dead,
      '--group', group, '--granularity', 'minute,hour', '--idle-timeout', '5s', '--commit-interval', '300ms', '--database-url', url, ...BROKERS], { env: { ...process.env, LOG_LEVEL: 'warn' }, stdio: ['ignore', 'ignore', 'pipe'] });
    const exited = (child: ChildProcess) => new Promise<NodeJS.Signals | number | null>((resolve) => child.on('exit', (code, signal) => resolve(signal ?? code)));
    const count = async () => Number((await db.query<{ n: string }>('SELECT count(*) AS n FROM user_minute_sketches').catch(() => ({ rows: [{ n: '0' }] }))).rows[0]!.n);

    const feeding = feedInChunks(streamed, all);
    let first = service();
    let stderr = '';
    first.stderr!.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    let firstExit = exited(first);
    // Killed once some minutes are in the table, while frames still stream in.
    const deadline = Date.now() + 120_000;
    while ((await count()) < 20 && Date.now() < deadline) await sleep(100);
    const before = await count();
    first.kill('SIGKILL');
    assert.equal(await firstExit, 'SIGKILL', stderr);
    assert.ok(before > 0 && before < whole.length, `killed mid-run (${before} of ${whole.length} minutes in the table)`);
    first = service();
    first.stderr!.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    firstExit = exited(first);
    await feeding;
    // Every minute goes out once the stream is idle (--idle-timeout).
    const done = Date.now() + 180_000;
    while ((await count()) < whole.length && Date.now() < done) await sleep(250);
    await sleep(1000);
    first.kill('SIGTERM');
    assert.equal(await firstExit, 0, stderr);
    const minutes = (await readAll(log, t.output)).map((r) => JSON.parse(r.value) as { granularity: string; start: number }).filter((r) => r.granularity === 'minute');
    assert.equal(minutes.length, whole.length, 'one minute record per minute in the output topic');
    assert.deepEqual(await rows(db), whole);
    console.log(`# killed -9 with ${before} of ${whole.length} minute rows written; after the restart all ${whole.length} equal the uninterrupted run's`);
  });

  it('PostgreSQL stopped mid-run (own server) and started again: no minute reaches the output topic without its row; afterwards every row equals the uninterrupted run\'s', async () => {
    assert.ok(whole.length > 0, 'needs the first case');
    const server = await startPostgresServer('tickflow-uu-sketch');
    try {
      const url = await server.createDatabase('sketches');
      const streamed = unique('uu-sketch-pg');
      created.push(streamed);
      await log.createTopics([{ name: streamed, partitions: PARTITIONS }]);
      const t = topics('uu-sketch-pg');
      const child = spawn(process.execPath, [BIN, 'unique-users', '--input', streamed, '--output', t.output, '--late-topic', t.late, '--dead-letter-topic', t.dead,
        '--group', unique('uu-sketch-pg-group'), '--granularity', 'minute,hour', '--idle-timeout', '5s', '--commit-interval', '300ms', '--database-url', url, ...BROKERS],
      { env: { ...process.env, LOG_LEVEL: 'warn' }, stdio: ['ignore', 'ignore', 'pipe'] });
      let stderr = '';
      child.stderr!.setEncoding('utf8').on('data', (d: string) => (stderr += d));
      const exit = new Promise<NodeJS.Signals | number | null>((resolve) => child.on('exit', (code, signal) => resolve(signal ?? code)));
      const count = async () => {
        const client = new pg.Client({ connectionString: url });
        client.on('error', () => undefined);
        try {
          await client.connect();
          return Number((await client.query<{ n: string }>('SELECT count(*) AS n FROM user_minute_sketches')).rows[0]!.n);
        } catch {
          return 0;
        } finally {
          await client.end().catch(() => undefined);
        }
      };
      const outputMinutes = async () => (await readAll(log, t.output)).filter((r) => (JSON.parse(r.value) as { granularity: string }).granularity === 'minute').length;
      const feeding = feedInChunks(streamed, all);
      const deadline = Date.now() + 120_000;
      while ((await count()) < 20 && Date.now() < deadline) await sleep(100);
      await server.stop();
      await sleep(500);
      const beforeOutage = await outputMinutes();
      // Frames keep streaming in; minutes close, but none may be committed to Kafka while PostgreSQL is away.
      await sleep(4000);
      const duringOutage = await outputMinutes();
      await server.start();
      const rowsAtRestart = await count();
      assert.ok(duringOutage <= rowsAtRestart, `the output topic held ${duringOutage} minutes while the table had ${rowsAtRestart}`);
      assert.equal(duringOutage, beforeOutage, 'no minute committed to Kafka while PostgreSQL was down');
      await feeding;
      const done = Date.now() + 180_000;
      while ((await count()) < whole.length && Date.now() < done) await sleep(250);
      await sleep(1000);
      child.kill('SIGTERM');
      assert.equal(await exit, 0, stderr);
      assert.equal(await outputMinutes(), whole.length);
      const db = createPostgresDatabase(url);
      try {
        assert.deepEqual(await rows(db), whole);
      } finally {
        await db.close();
      }
      console.log(`# PostgreSQL stopped with ${rowsAtRestart} minute rows and ${beforeOutage} minute records out; ${duringOutage} out after 4 s down; all ${whole.length} equal after the restart`);
    } finally {
      await server.destroy();
    }
  });
});
