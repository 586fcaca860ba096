import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { seededRandom } from '../../src/core/random.ts';
import { KafkaLog } from '../../src/log/kafka.ts';
import { BIN } from '../helpers/cli.ts';
import { KAFKA_BROKERS } from '../helpers/env.ts';
import { transactionsSettled } from '../helpers/transactions.ts';
import { BROKERS, readAll, unique } from './helpers.ts';
import { referenceUniqueUsers, referenceWindows } from './reference.ts';

/**
 * `unique-users` exactly once (the default) on the real Kafka: the service's node process is
 * killed -9 three times at random moments while frames stream into a 4-partition topic, and
 * restarted each time with the same group. Read with kcat at read_committed (librdkafka, an
 * independent client), the output topic must hold exactly one record per window, equal to
 * the independent recount (reference.ts) and to an uninterrupted run; the late topic and
 * the dead-letter topic exactly one record per late and per malformed input frame (by
 * source partition and offset). Minutes and hours: the hour open across every kill makes
 * each restart re-read from its first frame, judging again frames whose minutes are out.
 *
 * 240,000 frames of ~600 bytes by default (TICKFLOW_EXACTLY_ONCE_FRAMES to change): an
 * uninterrupted run takes 10 s and more here; they stream in over about 25 s.
 */

const FRAMES = Number(process.env.TICKFLOW_EXACTLY_ONCE_FRAMES ?? 240_000);
const PARTITIONS = 4;
const KILLS = 3;
const T0 = 1_468_244_340; // 2016-07-11T13:39:00Z: 25 minutes of frames cross 14:00
const PER_SECOND = 40; // frames per second of event time, per partition

interface Frame {
  partition: number;
  text: string;
  kind: 'frame' | 'late' | 'malformed';
}

function frames(seed: string): Frame[] {
  const random = seededRandom(seed);
  const out: Frame[] = [];
  const perPartition = Math.ceil(FRAMES / PARTITIONS);
  for (let i = 0; i < perPartition; i++) {
    for (let partition = 0; partition < PARTITIONS && out.length < FRAMES; partition++) {
      const r = random.next();
      const base = T0 + i / PER_SECOND;
      const pad = 'ü·x'.repeat(120 + random.int(0, 60));
      if (r < 0.002) {
        const bad = [`{"uid": "u${i}", "ts": ${Math.floor(base)}, "page": `, `{"ts": ${Math.floor(base)}, "page": "/a", "pad": "${pad}"}`, `{"uid": "u${i}", "ts": "soon"}`][random.int(0, 2)];
        out.push({ partition, text: bad, kind: 'malformed' });
      } else if (r < 0.012) {
        const ts = Math.floor(base - 20 - random.next() * 70);
        out.push({ partition, text: JSON.stringify({ uid: `user-${random.int(0, 4999)}`, ts, page: '/late', pad }), kind: 'late' });
      } else {
        const ts = Math.round((base + (random.next() - 0.5) * 4) * 1000) / 1000;
        // Sometimes the ts as a string, sometimes a nested decoy uid/ts: only the root ones count.
        const value = random.next() < 0.1 ? String(ts) : ts;
        const nested = random.next() < 0.05 ? { context: { uid: 'decoy', ts: 1 } } : {};
        out.push({ partition, text: JSON.stringify({ uid: `user-${random.int(0, 4999)}`, ...nested, ts: value, page: `/p/${random.int(0, 99)}`, pad }), kind: 'frame' });
      }
    }
  }
  return out;
}

interface SideRecord {
  source: string;
  reason: string;
}

/** What kcat (librdkafka) reads at read_committed: values, or the side records' source partition@offset and reason. */
function kcat(topic: string, format: '%s' | '%h'): string[] {
  const out = execFileSync('/usr/bin/kcat', ['-b', KAFKA_BROKERS[0], '-C', '-t', topic, '-X', 'isolation.level=read_committed', '-e', '-q', '-f', `${format}\\n`], { encoding: 'utf8', timeout: 120_000, maxBuffer: 256 << 20 });
  return out.split('\n').filter(Boolean);
}

function sideRecords(topic: string): SideRecord[] {
  return kcat(topic, '%h').map((headers) => {
    const partition = /(?:^|,)x-source-partition=(\d+)/.exec(headers)?.[1];
    const offset = /(?:^|,)x-source-offset=(\d+)/.exec(headers)?.[1];
    const reason = /(?:^|,)x-reason=([^,]+)/.exec(headers)?.[1];
    assert.ok(partition !== undefined && offset !== undefined && reason !== undefined, `a side record names its source: ${headers.slice(0, 200)}`);
    return { source: `${partition}@${offset}`, reason };
  });
}

function kcatCount(topic: string, isolation: 'read_committed' | 'read_uncommitted'): number {
  const out = execFileSync('/usr/bin/kcat', ['-b', KAFKA_BROKERS[0], '-C', '-t', topic, '-X', `isolation.level=${isolation}`, '-e', '-q', '-f', '%p\\n'], { encoding: 'utf8', timeout: 120_000, maxBuffer: 64 << 20 });
  return out.split('\n').filter(Boolean).length;
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe('unique-users exactly once under kill -9', { timeout: 900_000 }, () => {
  let log: KafkaLog;
  let uncommitted: KafkaLog;
  const created: string[] = [];

  before(() => {
    log = new KafkaLog({ brokers: KAFKA_BROKERS });
    uncommitted = new KafkaLog({ brokers: KAFKA_BROKERS, isolationLevel: 'read_uncommitted' });
  });
  after(async () => {
    await log.deleteTopics(created).catch(() => undefined);
    await log.close();
    await uncommitted.close();
  });

  it(`killed -9 ${KILLS} times and restarted: one record per window as the recount and an uninterrupted run, one side record per late and malformed frame; kcat agrees`, async () => {
    const input = unique('uu-eo');
    const topics = (name: string) => ({ output: unique(`${name}-out`), late: unique(`${name}-late`), dead: unique(`${name}-dlq`) });
    const killed = topics('uu-eo');
    const whole = topics('uu-eo-ref');
    created.push(input, ...Object.values(killed), ...Object.values(whole));
    await log.createTopics([{ name: input, partitions: PARTITIONS }]);
    const all = frames('unique-users-exactly-once');
    const group = unique('uu-eo-group');
    const service = (t: typeof killed, g: string) => spawn(process.execPath, [BIN, 'unique-users', '--input', input, '--output', t.output, '--late-topic', t.late, '--dead-letter-topic', t.dead,
      '--group', g, '--granularity', 'minute,hour', '--idle-timeout', '5s', ...BROKERS], { env: { ...process.env, LOG_LEVEL: 'warn' }, stdio: ['ignore', 'ignore', 'pipe'] });
    /** How far the group's commits have read, over all partitions (the read position of each resume point). */
    const read = async (g: string) => {
      const committed = await log.committedWithMetadata(g, input).catch(() => new Map());
      let sum = 0n;
      for (const { metadata } of committed.values()) sum += BigInt((JSON.parse(metadata ?? '{}') as { read?: string }).read ?? '0');
      return sum;
    };

    // The frames stream in while the service runs, is killed and restarted (about 25 s). The
    // pauses stay well under --idle-timeout: a pause longer would flush the open minute.
    const feeding = (async () => {
      const producer = log.producer();
      const chunk = Math.ceil(all.length / 12);
      for (let i = 0; i < all.length; i += chunk) {
        await producer.send(input, all.slice(i, i + chunk).map((f) => ({ value: f.text, partition: f.partition })));
        await sleep(1500);
      }
      await producer.close();
    })();
    let fed = false;
    void feeding.then(() => (fed = true), () => undefined);

    const kills: string[] = [];
    for (let kill = 0; kill < KILLS; kill++) {
      const before = await read(group);
      const child = service(killed, group);
      let stderr = '';
      child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
      const exited = new Promise<NodeJS.Signals | number | null>((resolve) => child.on('close', (code, signal) => resolve(signal ?? code)));
      // This run committed something (its read position moved), then a random moment more.
      for (let i = 0; (await read(group)) <= before && !(fed && before >= BigInt(FRAMES)); i++) {
        if (i > 1200) assert.fail(`run ${kill + 1} committed nothing in 2 minutes: ${stderr}`);
        await sleep(100);
      }
      let moment: string;
      if (kill === 1) {
        // The second kill waits for an open transaction holding records (a side topic's high
        // watermark above its last stable offset): the worst moment.
        let open = 0n;
        for (const started = Date.now(); open === 0n && Date.now() - started < 30_000;) {
          for (const topic of [killed.late, killed.dead, killed.output]) {
            const [stable, high] = await Promise.all([log.offsets(topic).catch(() => []), uncommitted.offsets(topic).catch(() => [])]);
            open += high.reduce((n, p, i) => n + p.latest - (stable[i]?.latest ?? p.latest), 0n);
          }
        }
        child.kill('SIGKILL');
        moment = open > 0n ? `in a transaction holding ${open} records` : 'no open transaction seen in 30 s';
      } else {
        const delay = Math.floor(Math.random() * 2000);
        await sleep(delay);
        child.kill('SIGKILL');
        moment = `${delay} ms after its first commit`;
      }
      assert.equal(await exited, 'SIGKILL', stderr);
      kills.push(`kill ${kill + 1}: ${moment}, read ${await read(group)} of ${FRAMES}`);
    }
    await feeding;

    // What the topic holds, and the recount of it.
    const inputRecords = await readAll(log, input);
    assert.equal(inputRecords.length, FRAMES);
    const reference = referenceUniqueUsers(inputRecords.map((r) => ({ partition: r.partition, text: r.value })));
    const sourceOf = (index: number) => `${inputRecords[index].partition}@${inputRecords[index].offset}`;
    // Every window the service emits: all minutes (flushed once the input is quiet), and the hours the watermark passed.
    const watermark = Math.min(...reference.streamTimes.values()) - 5;
    const expected = referenceWindows(reference, ['minute', 'hour']).filter((w) => w.granularity === 'minute' || w.end <= watermark);
    const byText = new Map(all.map((f) => [f.text, f.kind]));
    const malformed = inputRecords.flatMap((r, i) => (byText.get(r.value) === 'malformed' ? [sourceOf(i)] : [])).sort();
    const late = reference.late.map((l) => sourceOf(l.index)).sort();
    const span = FRAMES / PARTITIONS / PER_SECOND;
    assert.ok(expected.filter((w) => w.granularity === 'minute').length >= Math.floor(span / 60), `a minute record per minute of event time (${expected.length} windows)`);
    if (T0 + span > 1_468_245_610) assert.equal(expected.filter((w) => w.granularity === 'hour').length, 1, 'the hour before 14:00');
    assert.ok(late.length > FRAMES * 0.008 && malformed.length > FRAMES * 0.001, `late (${late.length}) and malformed (${malformed.length}) frames`);

    /** Records a read_committed reader sees now (the end offsets count transaction markers too). */
    const records = async (topic: string) => {
      let n = 0;
      for await (const batch of log.readRange({ topic })) n += batch.length;
      return n;
    };
    /** Runs a service until its output holds every window and its commits have read every frame; then stops it (SIGTERM). */
    const runToEnd = async (t: typeof killed, g: string) => {
      const child = service(t, g);
      let stderr = '';
      child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
      const exited = new Promise<NodeJS.Signals | number | null>((resolve) => child.on('close', (code, signal) => resolve(signal ?? code)));
      const started = Date.now();
      for (;;) {
        if (Date.now() - started > 240_000) assert.fail(`not done in 4 minutes: ${stderr}`);
        if ((await read(g)) >= BigInt(FRAMES) && (await records(t.output)) >= expected.length) break;
        await sleep(200);
      }
      const seconds = (Date.now() - started) / 1000;
      child.kill('SIGTERM');
      assert.equal(await exited, 0, stderr);
      return seconds;
    };
    const lastRun = await runToEnd(killed, group);
    const wholeRun = await runToEnd(whole, unique('uu-eo-ref-group'));

    for (const t of [killed, whole]) for (const topic of Object.values(t)) assert.ok(await transactionsSettled(log, topic), `no transaction left open on ${topic}`);
    const windows = (t: typeof killed) => kcat(t.output, '%s').map((v) => JSON.parse(v) as Record<string, unknown>);
    const key = (w: Record<string, unknown>) => `${String(w.granularity)}/${String(w.start)}`;
    const got = windows(killed);
    assert.equal(new Set(got.map(key)).size, got.length, 'no window twice');
    const sorted = (list: ReadonlyArray<Record<string, unknown>>) => [...list].sort((a, b) => key(a).localeCompare(key(b)));
    assert.deepEqual(sorted(got), sorted(expected as unknown as Array<Record<string, unknown>>), 'every window once, as the independent recount');
    assert.deepEqual(sorted(got), sorted(windows(whole)), 'as the uninterrupted run');

    for (const [name, topic, sources] of [['late', killed.late, late], ['dead-letter', killed.dead, malformed]] as const) {
      const side = sideRecords(topic);
      const seen = side.map((s) => s.source).sort();
      assert.equal(new Set(seen).size, seen.length, `no ${name} record twice`);
      assert.deepEqual(seen, sources, `one ${name} record per ${name === 'late' ? 'late' : 'malformed'} frame`);
    }
    assert.ok(sideRecords(killed.late).every((s) => s.reason === 'beyond-lateness'));
    assert.deepEqual(sideRecords(whole.late).map((s) => s.source).sort(), late, 'the uninterrupted run: the same late frames');
    const aborted = kcatCount(killed.late, 'read_uncommitted') - late.length + kcatCount(killed.output, 'read_uncommitted') - got.length;
    console.log(`# ${FRAMES} frames, ${expected.length} windows, ${late.length} late, ${malformed.length} malformed; ${kills.join('; ')}; last run ${lastRun.toFixed(1)} s, uninterrupted run ${wholeRun.toFixed(1)} s; aborted records in the log: ${aborted}`);
  });

  it('switched from --at-least-once with minutes open: the first exactly-once start skips the minutes already out, every minute once', async () => {
    const input = unique('uu-switch');
    const t = { output: unique('uu-switch-out'), late: unique('uu-switch-late'), dead: unique('uu-switch-dlq') };
    created.push(input, ...Object.values(t));
    await log.createTopics([{ name: input, partitions: 3 }]);
    const group = unique('uu-switch-group');
    // Three minutes on every partition, each partition with users of its own; after the
    // first frames of the third minute, one of the second (on time): re-read after the
    // switch, it must not bring that minute out again.
    const texts = (from: number, to: number) => Array.from({ length: 3 }, (_, partition) => {
      const list: Array<{ value: string; partition: number }> = [];
      const frame = (s: number) => list.push({ partition, value: JSON.stringify({ uid: `p${partition}-u${s % 14}`, ts: T0 + s }) });
      for (let s = from; s < to; s += 2) {
        frame(s);
        if (s === 122) frame(118);
      }
      return list;
    }).flat();
    const producer = log.producer();
    await producer.send(input, texts(0, 150)); // the third minute stays open
    const service = (idle: string, delivery: string) => spawn(process.execPath, [BIN, 'unique-users', '--input', input, '--output', t.output, '--late-topic', t.late, '--dead-letter-topic', t.dead,
      '--group', group, '--idle-timeout', idle, delivery, ...BROKERS], { env: { ...process.env, LOG_LEVEL: 'warn' }, stdio: ['ignore', 'ignore', 'pipe'] });
    const minutes = async () => {
      const out: Array<{ start: number; uniqueUsers: number; frames: number }> = [];
      if (!(await log.listTopics()).includes(t.output)) return out;
      for await (const batch of log.readRange({ topic: t.output })) for (const r of batch) out.push(JSON.parse(r.value!.toString('utf8')) as { start: number; uniqueUsers: number; frames: number });
      return out.map(({ start, uniqueUsers, frames: n }) => ({ start, uniqueUsers, frames: n }));
    };
    const runUntil = async (child: ReturnType<typeof service>, count: number) => {
      let stderr = '';
      child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
      const exited = new Promise<number | null>((resolve) => child.on('close', resolve));
      for (let i = 0; (await minutes()).length < count; i++) {
        if (i > 600) assert.fail(`${count} minutes not out in 60 s: ${stderr}`);
        await sleep(100);
      }
      child.kill('SIGTERM');
      assert.equal(await exited, 0, stderr);
    };
    await runUntil(service('5m', '--at-least-once'), 2);
    const before = await log.committedWithMetadata(group, input);
    assert.deepEqual([...before.values()].map((c) => [c.offset, c.metadata]), [[60n, null], [60n, null], [60n, null]], 'at least once: the first frame of the open minute, no resume point');
    await producer.send(input, texts(150, 180));
    await producer.close();
    await runUntil(service('1s', '--exactly-once'), 3);
    await sleep(1500); // time for a repeat, were there one
    const expected = [0, 60, 120].map((offset) => ({ start: T0 + offset, uniqueUsers: 21, frames: offset === 60 ? 93 : 90 }));
    assert.deepEqual(await minutes(), expected, 'every minute once, the third complete');
    const after = await log.committedWithMetadata(group, input);
    assert.ok([...after.values()].every((c) => c.offset === 91n && c.metadata?.startsWith('{"tickflow":1,')), `exactly once from its first commit: offsets with resume points (${[...after.values()].map((c) => c.offset).join(', ')})`);
  });
});
