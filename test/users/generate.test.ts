import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { KAFKA_BROKERS } from '../helpers/env.ts';
import { readTopicIndependently } from '../helpers/independent-reader.ts';
import { BROKERS, jsonLines, run, unique } from './helpers.ts';
import { rootUidTs } from './reference.ts';

let dir: string;
before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'tickflow-generate-'));
});
after(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('generate users', () => {
  it('writes seeded user records: same seed, same bytes; another seed, other bytes', async () => {
    const [a, b, c] = await Promise.all([run(['generate', 'users', '--count', '200', '--seed', 's1']), run(['generate', 'users', '--count', '200', '--seed', 's1']), run(['generate', 'users', '--count', '200', '--seed', 's2'])]);
    assert.equal(a.code, 0, a.stderr);
    assert.equal(a.stdout, b.stdout);
    assert.notEqual(a.stdout, c.stdout);
    const users = jsonLines<Record<string, unknown>>(a.stdout);
    assert.equal(users.length, 200);
    assert.deepEqual(Object.keys(users[0]), ['id', 'first_name', 'last_name', 'email', 'gender', 'ip_address', 'date', 'country']);
    const ids = users.map((u) => u.id);
    assert.ok(new Set(ids).size < ids.length, 'exact duplicates are part of the dirt');
    assert.ok(users.some((u) => typeof u.country === 'string' && u.country === u.country.toLowerCase()), 'lower-case countries');
  });

  it('writes frames to a .gz file: ~2 KB each, a share late, a JSON array on request', async () => {
    const file = join(dir, 'frames.jsonl.gz');
    const result = await run(['generate', 'users', '--frames', '--count', '2000', '--late-share', '0.05', '-o', file]);
    assert.equal(result.code, 0, result.stderr);
    assert.match(result.stderr, /^wrote 2000 frames \(\d+ bytes, \d+ late\) to .*frames\.jsonl\.gz in [\d.]+ s\n$/);
    const lines = gunzipSync(await readFile(file)).toString('utf8').trim().split('\n');
    assert.equal(lines.length, 2000);
    const mean = lines.reduce((n, l) => n + Buffer.byteLength(l), 0) / lines.length;
    assert.ok(mean > 1500 && mean < 2600, `mean frame size ${mean}`);
    for (const l of lines) assert.ok(rootUidTs(l), 'every frame has a root uid and ts');
    const array = await run(['generate', 'users', '--frames', '--count', '5', '--format', 'array']);
    assert.equal((JSON.parse(array.stdout) as unknown[]).length, 5);
  });

  it('replaces a share of lines by non-JSON with --bad-share', async () => {
    const result = await run(['generate', 'users', '--count', '1000', '--bad-share', '0.05']);
    const bad = result.stdout.trim().split('\n').filter((l) => {
      try {
        JSON.parse(l);
        return false;
      } catch {
        return true;
      }
    });
    assert.ok(bad.length > 20 && bad.length < 90, `${bad.length} bad lines`);
  });
});

describe('generate users --frames --rate: a live source', () => {
  const shape = ['--seed', 'live', '--frame-bytes', '256', '--late-share', '0.05', '--bad-share', '0.02'];

  it('sends to a Kafka topic, keyed by uid, the frames a file of the same --start, --seed and --per-second holds, each partition in their order', async () => {
    const file = join(dir, 'live-frames.jsonl');
    const written = await run(['generate', 'users', '--frames', '-n', '400', '--start', '1700000000s', '--per-second', '200', ...shape, '-o', file]);
    assert.equal(written.code, 0, written.stderr);
    const [, late, bad] = /\((?:\d+) bytes, (\d+) late, (\d+) not JSON\)/.exec(written.stderr)!.map(Number);
    const lines = (await readFile(file, 'utf8')).trimEnd().split('\n');
    assert.equal(lines.length, 400);
    assert.ok(late > 0 && bad > 0, `${late} late, ${bad} not JSON`);

    const topic = unique('live-frames');
    const sent = await run(['generate', 'users', '--frames', '--rate', '200', '-n', '400', '--start', '1700000000s', ...shape, '--output', topic, ...BROKERS, '--json']);
    assert.equal(sent.code, 0, sent.stderr);
    const summary = JSON.parse(sent.stdout) as { topic: string; frames: number; late: number; bad: number; seed: string; start: string };
    assert.deepEqual({ ...summary, seconds: undefined, rate: undefined }, { topic, frames: 400, late, bad, seed: 'live', start: '2023-11-14T22:13:20.000Z', seconds: undefined, rate: undefined });

    const messages = await readTopicIndependently(KAFKA_BROKERS, topic);
    assert.deepEqual(messages.map((m) => m.value).sort(), [...lines].sort(), 'the file\'s frames, each once');
    const partitions = [...new Set(messages.map((m) => m.partition))].sort();
    assert.deepEqual(partitions, [0, 1, 2], 'created with 3 partitions, all used');
    const partitionOf = new Map<string, number>();
    for (const m of messages) {
      const frame = rootUidTs(m.value!);
      if (frame) assert.equal(m.key, frame.uid, 'keyed by the root uid');
      assert.ok(m.key, 'every frame has a key, the not-JSON ones too');
      assert.equal(partitionOf.get(m.key!) ?? m.partition, m.partition, `uid ${m.key} on one partition`);
      partitionOf.set(m.key!, m.partition);
    }
    for (const p of partitions) {
      const mine = messages.filter((m) => m.partition === p).map((m) => m.value);
      let at = 0;
      for (const line of lines) if (line === mine[at]) at++;
      assert.equal(at, mine.length, `partition ${p} holds its frames in the file's order`);
    }
  });

  it('without --start takes event time from the wall clock: the frames of the file that starts where the run started', async () => {
    const first = Date.now();
    const live = await run(['generate', 'users', '--frames', '--rate', '500', '-n', '200', ...shape, '--output', '-', '--json']);
    const last = Date.now();
    assert.equal(live.code, 0, live.stderr);
    const summary = JSON.parse(live.stderr.trim().split('\n').at(-1)!) as { frames: number; start: string };
    assert.equal(summary.frames, 200);
    const start = Date.parse(summary.start);
    assert.ok(start >= first && start <= last, `started ${summary.start}, between ${new Date(first).toISOString()} and ${new Date(last).toISOString()}`);
    const frames = live.stdout.trimEnd().split('\n');
    assert.equal(frames.length, 200);
    // Frame i carries start + i/rate, less than --disorder (5 s) behind, or 10–60 s when late.
    for (const frame of frames.map(rootUidTs).filter((f) => f !== null)) {
      assert.ok(frame.ts <= Math.floor(last / 1000) && frame.ts >= Math.floor(start / 1000) - 60, `ts ${frame.ts}`);
    }
    const file = await run(['generate', 'users', '--frames', '-n', '200', '--per-second', '500', '--start', `${start}ms`, ...shape]);
    assert.equal(file.code, 0, file.stderr);
    assert.equal(live.stdout, file.stdout);
  });

  const rejected: Array<[string[], string]> = [
    [['--rate', '5'], '--rate: streams user-tracker frames: give --frames too'],
    [['--frames', '--rate', '0'], '--rate: must be greater than 0, got 0'],
    [['--frames', '--rate', '5', '--per-second', '5'], '--per-second: with --rate, frames are --rate per second of wall-clock and event time alike: give only --rate'],
    [['--frames', '--rate', '5', '--format', 'array'], '--format: with --rate, each frame is one record: --format is for files'],
    [['--frames', '--rate', '5', '-o', 'frames.jsonl.gz'], '--output: with --rate, frames go to a topic (or - for stdout), and "frames.jsonl.gz" names a file: give a topic (default user-tracker), or write a file without --rate'],
    [['--frames', '--rate', '5', '-o', 'a/b'], '--output: "a/b" is not a topic name (letters, digits, ".", "_", "-")'],
    [['--frames', '--rate', '5', '--duration', 'soon'], '--duration: expects a duration such as 500ms, 30s, 5m or 1h, got "soon"'],
    [['--frames', '--duration', '5s'], '--duration: needs --rate (a live stream to a topic)'],
    [['--frames', '--partitions', '2'], '--partitions: needs --rate (a live stream to a topic)'],
  ];
  for (const [args, message] of rejected) {
    it(`refuses ${args.join(' ')} in one line, exit 2`, async () => {
      const result = await run(['generate', 'users', ...args]);
      assert.equal(result.code, 2);
      assert.equal(result.stderr, `tickflow generate users: ${message} (see --help)\n`);
      assert.equal(result.stdout, '');
    });
  }
});
