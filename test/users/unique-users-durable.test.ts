import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { seededRandom } from '../../src/core/random.ts';
import { KafkaLog } from '../../src/log/kafka.ts';
import type { Database } from '../../src/db/types.ts';
import { readStateSnapshot } from '../../src/db/unique-users-state-store.ts';
import { BIN } from '../helpers/cli.ts';
import { KAFKA_BROKERS } from '../helpers/env.ts';
import { transactionsSettled } from '../helpers/transactions.ts';
import { isolatedDatabase } from '../stocks/fixtures.ts';
import type { IsolatedDatabase } from '../stocks/fixtures.ts';
import { BROKERS, committedPositions, readAll, unique } from './helpers.ts';
import type { CommittedPosition } from './helpers.ts';
import { referenceUniqueUsers, referenceWindows } from './reference.ts';

/**
 * Durable state of `unique-users` (--database-url, exactly once) on the real Kafka and
 * PostgreSQL: frames spanning 2.5 days stream into a 3-partition topic while the service
 * (minute, hour, day, --state-interval 2s) is killed -9 three times, each time mid-day
 * (10:00 to 22:00 of event time at the read position: the day window open since
 * midnight), and restarted with the same group. Then:
 *
 * - the output topic (read_committed) holds each (granularity, start) once, equal to the
 *   independent recount (reference.ts) and to an uninterrupted run; the late topic one
 *   record per late frame;
 * - every restart resumed from the snapshot the committed offsets named (its resume line
 *   against the committed metadata and the snapshot's row in PostgreSQL): each partition
 *   read from the snapshot's position — or from its committed offset, the first frame of
 *   the open windows, when that is further on — and, over the restarts, far less than
 *   the committed offsets (what a restart without the snapshot re-reads: the day so far).
 */

const PARTITIONS = 3;
const T0 = 1_468_202_400; // 2016-07-11T02:00:00Z
const DAYS = 2.5;
const STEP = 20; // seconds of event time between a partition's frames
const MINUTES_PER_CHUNK = 20;
const KILLS = 3;

interface Frame {
  partition: number;
  text: string;
  ts: number;
}

function frames(seed: string): Frame[] {
  const random = seededRandom(seed);
  const out: Frame[] = [];
  const perPartition = Math.floor((DAYS * 86_400) / STEP);
  for (let i = 0; i < perPartition; i++) {
    for (let partition = 0; partition < PARTITIONS; partition++) {
      const base = T0 + i * STEP + partition;
      const r = random.next();
      const ts = r < 0.01 ? base - 30 - random.int(0, 60) : Math.round((base + (random.next() - 0.5) * 4) * 1000) / 1000;
      out.push({ partition, ts, text: JSON.stringify({ uid: `user-${random.int(0, 2999)}`, ts, page: `/p/${random.int(0, 9)}` }) });
    }
  }
  return out;
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe('unique-users durable state under kill -9', { timeout: 900_000 }, () => {
  let log: KafkaLog;
  const created: string[] = [];
  const databases: IsolatedDatabase[] = [];
  const open: Database[] = [];

  before(() => {
    log = new KafkaLog({ brokers: KAFKA_BROKERS });
  });
  after(async () => {
    await log.deleteTopics(created).catch(() => undefined);
    await log.close();
    for (const db of open) await db.close().catch(() => undefined);
    for (const d of databases) await d.drop().catch(() => undefined);
  });

  it(`killed -9 ${KILLS} times mid-day and restarted: each window once, as the recount and an uninterrupted run; restarts read from the snapshots`, async () => {
    const input = unique('uu-durable');
    const topics = (name: string) => ({ output: unique(`${name}-out`), late: unique(`${name}-late`), dead: unique(`${name}-dlq`) });
    const killed = topics('uu-durable');
    const whole = topics('uu-durable-ref');
    created.push(input, ...Object.values(killed), ...Object.values(whole));
    await log.createTopics([{ name: input, partitions: PARTITIONS }]);
    const killedDb = await isolatedDatabase('uu_durable');
    const wholeDb = await isolatedDatabase('uu_durable_ref');
    databases.push(killedDb, wholeDb);
    const db = await killedDb.open();
    open.push(db);
    const all = frames('unique-users-durable');
    const group = unique('uu-durable-group');
    const service = (t: typeof killed, g: string, url: string) => spawn(process.execPath, [BIN, 'unique-users', '--input', input, '--output', t.output, '--late-topic', t.late, '--dead-letter-topic', t.dead,
      '--group', g, '--granularity', 'minute,hour,day', '--idle-timeout', '5s', '--state-interval', '2s', '--database-url', url, ...BROKERS], { env: { ...process.env, LOG_LEVEL: 'info' }, stdio: ['ignore', 'ignore', 'pipe'] });
    const committed = (g: string) => committedPositions(log, g, input);
    const readSum = (c: Map<number, CommittedPosition>) => [...c.values()].reduce((n, p) => n + p.read, 0n);
    /** The event time (hour of the day, UTC) of partition 0's read position: frames come one per STEP seconds. */
    const hourOfDay = (c: Map<number, CommittedPosition>) => {
      const read = c.get(0)?.read;
      if (read === undefined || read === 0n) return null;
      return new Date(all[Number(read - 1n) * PARTITIONS].ts * 1000).getUTCHours();
    };

    // The frames stream in 20 minutes of event time at a time (about 110 s in all) while the service runs, is killed and restarted.
    const feeding = (async () => {
      const producer = log.producer();
      const chunk = ((MINUTES_PER_CHUNK * 60) / STEP) * PARTITIONS;
      for (let i = 0; i < all.length; i += chunk) {
        await producer.send(input, all.slice(i, i + chunk).map((f) => ({ value: f.text, partition: f.partition })));
        await sleep(600);
      }
      await producer.close();
    })();
    feeding.catch(() => undefined); // awaited below

    /** A restart's resume line: per partition where it started, up to where frames are judged again. */
    const resumeLine = (stderr: string): { snapshot: string; chain: number; starts: Map<number, { start: bigint; read: bigint }> } | null => {
      for (const line of stderr.split('\n')) {
        if (!line.includes('resuming from durable state')) continue;
        const entry = JSON.parse(line) as { snapshot: string; chain: number; partitions: string[] };
        const starts = new Map<number, { start: bigint; read: bigint }>();
        for (const text of entry.partitions) {
          const m = /^(\d+)@(\d+)\.\.(\d+) /.exec(text);
          assert.ok(m, text);
          starts.set(Number(m[1]), { start: BigInt(m[2]), read: BigInt(m[3]) });
        }
        return { snapshot: entry.snapshot, chain: entry.chain, starts };
      }
      return null;
    };
    const restarts: Array<{ durable: bigint; old: bigint; label: string; chain: number }> = [];
    /** Checks a restarted run's resume line against what the run before left committed and in the table. */
    const checkResume = (stderr: string, before: Map<number, CommittedPosition>, row: Awaited<ReturnType<typeof readStateSnapshot>>, label: string) => {
      const resumed = resumeLine(stderr);
      assert.ok(resumed, `${label}: a resume line from durable state: ${stderr.slice(-2000)}`);
      const ids = new Set([...before.values()].map((c) => c.snapshot));
      assert.deepEqual([...ids], [resumed.snapshot], `${label}: the snapshot the committed offsets name`);
      assert.ok(row, `${label}: the snapshot is in PostgreSQL`);
      assert.equal(row.id, resumed.snapshot);
      let durable = 0n;
      let old = 0n;
      for (const [partition, c] of before) {
        assert.equal(row.positions.get(partition), c.at, `${label}: partition ${partition}'s position in the snapshot row is the one committed`);
        const { start, read }: { start: bigint; read: bigint } = resumed.starts.get(partition)!;
        assert.equal(read, c.read, `${label}: partition ${partition} judged again up to the committed read position`);
        assert.equal(start, c.offset > c.at! ? c.offset : c.at, `${label}: partition ${partition} from the snapshot's position, or its committed offset when further on`);
        durable += c.read - start;
        old += c.read - c.offset;
      }
      // The named snapshot and the ones it builds on, down to a full one, as the table links them.
      let links = 1;
      for (let parent = row.parent; parent !== null; links++) parent = parents.get(parent) ?? null;
      assert.equal(resumed.chain, links, `${label}: read the snapshot's chain of ${links}`);
      restarts.push({ durable, old, label, chain: links });
    };

    let before = new Map<number, CommittedPosition>();
    /** The snapshot row the committed offsets name, read right after the kill (a restart deletes it once two newer ones are written). */
    let row: Awaited<ReturnType<typeof readStateSnapshot>> = null;
    /** Each snapshot's parent (null: a full one), as the table held them right after each kill. */
    const parents = new Map<string, string | null>();
    const kills: string[] = [];
    for (let kill = 0; kill < KILLS; kill++) {
      const child = service(killed, group, killedDb.url);
      let stderr = '';
      child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
      const exited = new Promise<NodeJS.Signals | number | null>((resolve) => child.on('close', (code, signal) => resolve(signal ?? code)));
      // This run committed a snapshot of its own, then a random moment more, then mid-day (event time) at the read position.
      const startedAt = readSum(before);
      for (let i = 0; ; i++) {
        const now = await committed(group);
        const ids = new Set([...now.values()].map((c) => c.snapshot));
        if (readSum(now) > startedAt && !ids.has(null) && [...ids].some((id) => ![...before.values()].some((c) => c.snapshot === id))) break;
        if (i > 1200) assert.fail(`run ${kill + 1} took no snapshot in 2 minutes: ${stderr.slice(-3000)}`);
        await sleep(100);
      }
      await sleep(Math.floor(Math.random() * 1500));
      for (let i = 0; ; i++) {
        const hour = hourOfDay(await committed(group));
        if (hour !== null && hour >= 10 && hour < 22) break;
        if (i > 1200) assert.fail(`run ${kill + 1} never read to the middle of a day: ${stderr.slice(-3000)}`);
        await sleep(50);
      }
      child.kill('SIGKILL');
      assert.equal(await exited, 'SIGKILL', stderr.slice(-3000));
      if (kill > 0) checkResume(stderr, before, row, `restart ${kill}`);
      before = await committed(group);
      row = await readStateSnapshot(db, group, input, [...before.values()][0].snapshot!);
      for (const r of (await db.query<{ snapshot_id: string; parent_id: string | null }>('SELECT snapshot_id, parent_id FROM unique_users_state')).rows) parents.set(r.snapshot_id, r.parent_id);
      kills.push(`kill ${kill + 1} at ${hourOfDay(before)}h of event time, read ${readSum(before)}`);
    }
    await feeding;

    const inputRecords = await readAll(log, input);
    assert.equal(inputRecords.length, all.length);
    const reference = referenceUniqueUsers(inputRecords.map((r) => ({ partition: r.partition, text: r.value })));
    const sourceOf = (index: number) => `${inputRecords[index].partition}@${inputRecords[index].offset}`;
    // Once the input is quiet every open minute goes out, closing the coarser windows that end with the last of them.
    const windowsOf = referenceWindows(reference, ['minute', 'hour', 'day']);
    const closedThrough = Math.max(...windowsOf.filter((w) => w.granularity === 'minute').map((w) => w.end));
    const expected = windowsOf.filter((w) => w.granularity === 'minute' || w.end <= closedThrough);
    assert.equal(expected.filter((w) => w.granularity === 'day').length, 2, 'two whole days');
    const late = reference.late.map((l) => sourceOf(l.index)).sort();
    assert.ok(late.length > all.length * 0.002, `late frames (${late.length})`);

    const records = async (topic: string) => {
      let n = 0;
      for await (const batch of log.readRange({ topic })) n += batch.length;
      return n;
    };
    const runToEnd = async (t: typeof killed, g: string, url: string) => {
      const child = service(t, g, url);
      let stderr = '';
      child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
      const exited = new Promise<NodeJS.Signals | number | null>((resolve) => child.on('close', (code, signal) => resolve(signal ?? code)));
      const started = Date.now();
      for (;;) {
        if (Date.now() - started > 240_000) assert.fail(`not done in 4 minutes: ${stderr.slice(-3000)}`);
        if (readSum(await committed(g)) >= BigInt(all.length) && (await records(t.output)) >= expected.length) break;
        await sleep(200);
      }
      child.kill('SIGTERM');
      assert.equal(await exited, 0, stderr.slice(-3000));
      return stderr;
    };
    const last = await runToEnd(killed, group, killedDb.url);
    checkResume(last, before, row, `restart ${KILLS}`);
    await runToEnd(whole, unique('uu-durable-ref-group'), wholeDb.url);

    for (const t of [killed, whole]) for (const topic of Object.values(t)) assert.ok(await transactionsSettled(log, topic), `no transaction left open on ${topic}`);
    const windows = async (t: typeof killed) => (await readAll(log, t.output)).map((r) => JSON.parse(r.value) as Record<string, unknown>);
    const key = (w: Record<string, unknown>) => `${String(w.granularity)}/${String(w.start)}`;
    const got = await windows(killed);
    assert.equal(new Set(got.map(key)).size, got.length, 'no window twice');
    const sorted = (list: ReadonlyArray<Record<string, unknown>>) => [...list].sort((a, b) => key(a).localeCompare(key(b)));
    assert.deepEqual(sorted(got), sorted(expected as unknown as Array<Record<string, unknown>>), 'every window once, as the independent recount');
    assert.deepEqual(sorted(got), sorted(await windows(whole)), 'as the uninterrupted run');
    const side = (await readAll(log, killed.late)).map((r) => `${r.headers['x-source-partition']}@${r.headers['x-source-offset']}`).sort();
    assert.deepEqual(side, late, 'one late record per late frame');

    const durable = restarts.reduce((n, r) => n + r.durable, 0n);
    const old = restarts.reduce((n, r) => n + r.old, 0n);
    console.log(`# ${all.length} frames, ${expected.length} windows, ${late.length} late; ${kills.join('; ')}; re-read per restart from snapshots / from the committed offsets: ${restarts.map((r) => `${r.durable}/${r.old}`).join(', ')}; chains read: ${restarts.map((r) => r.chain).join(', ')}`);
    assert.ok(restarts.some((r) => r.chain > 1), 'a restart resumed from a chain of deltas');
    assert.ok(durable * 3n < old, `restarts re-read ${durable} frames from the snapshots; from the committed offsets (the open day's first frames) it would have been ${old}`);
  });
});
