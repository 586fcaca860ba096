import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { seededRandom } from '../../src/core/random.ts';
import { userTrackerFrames } from '../../src/core/user-tracker-frames.ts';
import type { FrameOptions } from '../../src/core/user-tracker-frames.ts';
import { KafkaLog } from '../../src/log/kafka.ts';
import { BIN } from '../helpers/cli.ts';
import { KAFKA_BROKERS } from '../helpers/env.ts';
import { readTopicIndependently } from '../helpers/independent-reader.ts';
import { BROKERS, jsonLines, readAll, run, unique } from './helpers.ts';
import { referenceUniqueUsers, referenceWindows, rootUidTs, zonedCalendarWindow } from './reference.ts';
import type { ReferenceFrame, ReferenceGranularity, ReferenceMinute, ReferenceWindow } from './reference.ts';

function frames(seed: string, count: number, options: Partial<Omit<FrameOptions, 'random'>> = {}): string[] {
  const generator = userTrackerFrames({ random: seededRandom(seed), perSecond: 40, users: 2000, bytes: 600, ...options });
  return Array.from({ length: count }, () => generator.next().value!.text);
}

const asSinglePartition = (texts: readonly string[]): ReferenceFrame[] => texts.map((text) => ({ partition: 0, text }));

/** unique-users over stdin, minutes on stdout. */
async function overStdin(texts: readonly string[], extra: string[] = []) {
  const result = await run(['unique-users', '--input', '-', '--output', '-', ...extra], { input: `${texts.join('\n')}\n`, env: { KAFKA_BROKERS: '' } });
  assert.equal(result.code, 0, result.stderr);
  return { minutes: jsonLines<ReferenceMinute & { approximate?: boolean }>(result.stdout), summary: result.stderr };
}

describe('unique-users over stdin/stdout (embedded)', () => {
  it('(a) ordered data: the exact distinct count of every minute', async () => {
    const texts = frames('ordered', 6000, { disorderSeconds: 0 });
    const expected = referenceUniqueUsers(asSinglePartition(texts));
    assert.equal(expected.late.length, 0);
    assert.ok(expected.minutes.length >= 2);
    const { minutes, summary } = await overStdin(texts);
    assert.deepEqual(minutes, expected.minutes);
    assert.match(summary, /^6,000 frames in [\d.]+ s \([\d,]+ frames\/s\): 6,000 counted, 0 late, 0 invalid; \d+ minutes to stdout\n$/);
  });

  it('(b) data shuffled within 5 s: nothing is late, counts stay exact', async () => {
    const texts = frames('shuffled', 6000, { disorderSeconds: 5 });
    const expected = referenceUniqueUsers(asSinglePartition(texts));
    assert.equal(expected.late.length, 0);
    assert.deepEqual((await overStdin(texts)).minutes, expected.minutes);
  });

  it('(d) ts as strings, nested uid/ts decoys, duplicate root keys, unicode; bad frames dead-lettered', async () => {
    const texts = [
      ...frames('tricky', 3000, { stringTsShare: 0.5, duplicateKeyShare: 0.3 }),
      '{"uid":"nested-only","x":{"ts":1468244400}}',
      '{"x":{"uid":"nobody"},"ts":1468244400}',
      '{"uid":"x","ts":"soon"}',
      'not json at all',
      '{"ts":"1468244401","uid":"decoy","uid":"Zürich-用户-😀","ts":1468244402,"meta":{"uid":"inner","ts":0}}',
      '{"ts":"1468244402.5","\\u0075id":"Zürich-用户-😀"}',
    ];
    const expected = referenceUniqueUsers(asSinglePartition(texts));
    assert.equal(expected.invalid, 4);
    const { minutes, summary } = await overStdin(texts);
    assert.deepEqual(minutes, expected.minutes);
    assert.match(summary, / 4 invalid \(missing-ts 1, missing-uid 1, bad-ts 1, not-json 1\)/);
  });

  it('a frame 100 years ahead and one in 1970: later frames are not late, minutes exact over the others, both implausible-time', async () => {
    const texts = frames('stray', 6000, { disorderSeconds: 5 });
    const strays = ['{"uid":"from-2116","ts":4622004340}', '{"uid":"from-1970","ts":86400}'];
    const withStrays = [...texts.slice(0, 100), strays[0], ...texts.slice(100, 3000), strays[1], ...texts.slice(3000)];
    const expected = referenceUniqueUsers(asSinglePartition(texts));
    assert.equal(expected.late.length, 0);
    const { minutes, summary } = await overStdin(withStrays);
    assert.deepEqual(minutes, expected.minutes);
    assert.match(summary, /: 6,000 counted, 0 late, 0 invalid, 2 implausible-time; \d+ minutes to stdout\n$/);
  });

  it('--approx: HyperLogLog counts within its error of the exact ones', async () => {
    const texts = frames('approx', 20_000, { perSecond: 150, users: 200_000 });
    const exact = referenceUniqueUsers(asSinglePartition(texts)).minutes;
    const { minutes } = await overStdin(texts, ['--approx']);
    assert.equal(minutes.length, exact.length);
    minutes.forEach((m, i) => {
      assert.equal(m.approximate, true);
      assert.equal(m.frames, exact[i].frames);
      const error = Math.abs(m.uniqueUsers - exact[i].uniqueUsers) / Math.max(1, exact[i].uniqueUsers);
      assert.ok(error < 0.04, `minute ${m.minute}: ${m.uniqueUsers} vs ${exact[i].uniqueUsers}`);
    });
  });

  it('--max-exact-memory: a window whose set outgrows it switches to a sketch and says so; the others stay exact', async () => {
    // 30,000 frames in one hour, ~1,000 users a second: the hour's set (~25,000 uids, ~0.9 MiB)
    // outgrows 512 KiB, a minute's (under 9,000 uids, ~0.45 MiB) does not.
    const texts = frames('budget', 30_000, { perSecond: 150, users: 200_000 });
    const reference = referenceUniqueUsers(asSinglePartition(texts));
    const expected = referenceWindows(reference, ['minute', 'hour']);
    const result = await run(['unique-users', '--input', '-', '--output', '-', '--granularity', 'minute,hour', '--max-exact-memory', '512KiB'], { input: `${texts.join('\n')}\n`, env: { KAFKA_BROKERS: '' } });
    assert.equal(result.code, 0, result.stderr);
    const records = jsonLines<ReferenceWindow & { approximate?: boolean; standardError?: number }>(result.stdout);
    assert.deepEqual(records.filter((r) => r.granularity === 'minute'), expected.filter((w) => w.granularity === 'minute'), 'the minutes stay exact');
    const hours = records.filter((r) => r.granularity === 'hour');
    const exactHours = expected.filter((w) => w.granularity === 'hour');
    assert.equal(hours.length, 1);
    assert.ok(exactHours[0].uniqueUsers > 16_384, `${exactHours[0].uniqueUsers} users in the hour`);
    assert.deepEqual({ ...hours[0], uniqueUsers: 0 }, { ...exactHours[0], uniqueUsers: 0, approximate: true, standardError: 1.04 / 128 }, 'the hour says it is approximate, with its standard error');
    const error = Math.abs(hours[0].uniqueUsers - exactHours[0].uniqueUsers) / exactHours[0].uniqueUsers;
    assert.ok(error <= 3 * hours[0].standardError!, `${hours[0].uniqueUsers} vs ${exactHours[0].uniqueUsers}`);
    assert.match(result.stderr, /; \d+ minutes, 1 hour to stdout \(1 approximate: over --max-exact-memory\)\n$/);
  });

  it('--time-zone Europe/Zurich: days from local midnight, the day the clocks go back lasting 25 hours', async () => {
    const texts = frames('zoned', 8000, { start: 1477778410, perSecond: 0.05, users: 300 }); // from 2016-10-29T22:00:10Z (local midnight and 10 s), 44 hours
    const reference = referenceUniqueUsers(asSinglePartition(texts));
    const expected = referenceWindows(reference, ['day'], zonedCalendarWindow('Europe/Zurich'));
    const result = await run(['unique-users', '--input', '-', '--output', '-', '--granularity', 'day', '--time-zone', 'Europe/Zurich'], { input: `${texts.join('\n')}\n`, env: { KAFKA_BROKERS: '' } });
    assert.equal(result.code, 0, result.stderr);
    const days = jsonLines<ReferenceWindow>(result.stdout);
    assert.deepEqual(days.map((d) => d.window), ['2016-10-30T00:00:00+02:00', '2016-10-31T00:00:00+01:00']);
    assert.equal(days[0].end - days[0].start, 25 * 3600);
    assert.deepEqual(days.map((d) => ({ ...d, window: '' })), expected.map((d) => ({ ...d, window: '' })));
  });

  it('validates its flags', async () => {
    const result = await run(['unique-users', '--allowed-lateness', 'soon']);
    assert.equal(result.code, 2);
    assert.equal(result.stderr, 'tickflow unique-users: --allowed-lateness: expects a duration such as 500ms, 30s, 5m or 1h, got "soon" (see --help)\n');
    const same = await run(['unique-users', '--input', 'a', '--output', 'a']);
    assert.equal(same.code, 2);
    assert.match(same.stderr, /--input: must differ/);
    const granularity = await run(['unique-users', '--granularity', 'minute,fortnight']);
    assert.equal(granularity.code, 2);
    assert.equal(granularity.stderr, 'tickflow unique-users: --granularity: unknown granularity "fortnight": expects any of minute,hour,day,week,month,year (see --help)\n');
    const zone = await run(['unique-users', '--time-zone', 'Europe/Atlantis']);
    assert.equal(zone.code, 2);
    assert.equal(zone.stderr, 'tickflow unique-users: --time-zone: unknown time zone "Europe/Atlantis" (an IANA name such as Europe/Zurich) (see --help)\n');
    const memory = await run(['unique-users', '--max-exact-memory', 'lots']);
    assert.equal(memory.code, 2);
    assert.match(memory.stderr, /--max-exact-memory: expects a size such as/);
    const skew = await run(['unique-users', '--max-time-skew', '2s', '--allowed-lateness', '5s']);
    assert.equal(skew.code, 2);
    assert.equal(skew.stderr, 'tickflow unique-users: --max-time-skew: must be at least --allowed-lateness (5000ms), got 2000ms (see --help)\n');
    const sketches = await run(['unique-users', '--scale-out', '--sketches']);
    assert.equal(sketches.code, 2);
    assert.equal(sketches.stderr, 'tickflow unique-users: --sketches: keeps the minute sketches in the embedded database, which is one process\'s: scaled out, give the members --database-url (see --help)\n');
    const instance = await run(['unique-users', '--scale-out', '--instance-id', 'member one']);
    assert.equal(instance.code, 2);
    assert.equal(instance.stderr, 'tickflow unique-users: --instance-id: must be 1 to 200 letters, digits, \'.\', \'_\' or \'-\', got "member one" (see --help)\n');
    const bounded = await run(['unique-users', '--until-end', '--instance-id', 'm1']);
    assert.equal(bounded.code, 2);
    assert.equal(bounded.stderr, 'tickflow unique-users: --instance-id: is a member\'s id in --group: not with --until-end or --input - (see --help)\n');
    const group = await run(['unique-users', '--input', '-', '--output', '-', '--group', 'mine'], { input: '' });
    assert.equal(group.code, 0, group.stderr);
    assert.ok(group.stderr.startsWith('tickflow unique-users: --group is ignored: a bounded run (--until-end, --input -) reads without a consumer group\n'), group.stderr);
    const session = await run(['unique-users', '--session-timeout', '200ms']);
    assert.equal(session.code, 2);
    assert.match(session.stderr, /^tickflow unique-users: --session-timeout: .*\n$/);
  });
});

describe('unique-users on real Kafka', () => {
  let dir: string;
  let log: KafkaLog;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'tickflow-unique-'));
    log = new KafkaLog({ brokers: KAFKA_BROKERS });
  });
  after(async () => {
    await log.close();
    await rm(dir, { recursive: true, force: true });
  });

  /** Frames into a fresh 3-partition topic through `replay --key uid`; returns them as the broker holds them. */
  async function topicWith(texts: readonly string[], name: string, raw: readonly string[] = []): Promise<{ topic: string; stored: ReferenceFrame[]; offsets: bigint[] }> {
    const topic = unique(name);
    const file = join(dir, `${topic}.jsonl`);
    await writeFile(file, `${texts.join('\n')}\n`);
    const replayed = await run(['replay', file, '--output', topic, '--key', 'uid', '--partitions', '3', ...BROKERS]);
    assert.equal(replayed.code, 0, replayed.stderr);
    if (raw.length > 0) {
      // Bytes replay would refuse (not JSON), written directly.
      const producer = log.producer();
      await producer.send(topic, raw.map((value) => ({ value, partition: 1 })));
      await producer.close();
    }
    const messages = (await readTopicIndependently(KAFKA_BROKERS, topic)).sort((a, b) => a.partition - b.partition || Number(BigInt(a.offset) - BigInt(b.offset)));
    return { topic, stored: messages.map((m) => ({ partition: m.partition, text: m.value! })), offsets: messages.map((m) => BigInt(m.offset)) };
  }

  it('(d) on Kafka: string ts, decoys, duplicate keys, unicode and escaped uids, bad frames; two threads and one agree with the reference', async () => {
    const texts = [
      ...frames('tricky-kafka', 6000, { stringTsShare: 0.5, duplicateKeyShare: 0.3 }),
      '{"uid":"nested-only","x":{"ts":1468244400}}',
      '{"x":{"uid":"nobody"},"ts":1468244400}',
      '{"uid":"x","ts":"soon"}',
      '{"ts":"1468244401","uid":"decoy","uid":"Zürich-用户-😀","ts":1468244402,"meta":{"uid":"inner","ts":0}}',
      '{"ts":"1468244402.5","\\u0075id":"Zürich-用户-😀"}',
      // A minute of its own, minutes after the rest (within --max-time-skew of it: these few
      // frames count at once): three users, one of them written with an escape.
      '{"ts":1468244640,"uid":"Zürich-用户-😀"}',
      '{"ts":1468244641,"uid":"Genève-👍"}',
      '{"ts":1468244642,"uid":"esc\\u0061ped"}',
      '{"ts":1468244643,"uid":"escaped"}',
      '{"ts":1468244644,"uid":"Zürich-用户-😀"}',
    ];
    const { topic, stored } = await topicWith(texts, 'uu-tricky', ['not json at all']);
    const expected = referenceUniqueUsers(stored);
    assert.equal(expected.invalid, 4);
    assert.deepEqual(expected.minutes.at(-1), { granularity: 'minute', window: '2016-07-11T13:44:00Z', minute: '2016-07-11T13:44:00Z', start: 1468244640, end: 1468244700, uniqueUsers: 3, frames: 5, late: 0 });
    for (const threads of ['2', '1']) {
      const output = unique(`uu-tricky-out-${threads}`);
      const deadTopic = unique(`uu-tricky-dead-${threads}`);
      const result = await run(['unique-users', '--until-end', '--input', topic, '--output', output, '--late-topic', unique('uu-tricky-late'), '--dead-letter-topic', deadTopic, '--threads', threads, '--json', ...BROKERS]);
      assert.equal(result.code, 0, result.stderr);
      const minutes = (await readAll(log, output)).map((r) => JSON.parse(r.value) as ReferenceMinute);
      assert.deepEqual(minutes, expected.minutes, `--threads ${threads}`);
      const dead = await readAll(log, deadTopic);
      assert.deepEqual(dead.map((r) => r.headers['x-reason']).sort(), ['bad-ts', 'missing-ts', 'missing-uid', 'not-json'], `--threads ${threads}`);
      assert.ok(dead.every((r) => r.headers['x-error'] !== ''), 'each dead letter says what is wrong');
    }
  });

  it('every time frame from one pass: 3.5 days across a year end, out of order, 1% late; every window of every granularity equals the calendar reference, with one thread and two', async () => {
    // 2016-12-30T12:00Z (a Friday), 20 frames a minute for 3.5 days: days, an ISO week from Monday 2 January, two months, two years.
    const texts = frames('time-frames', 100_800, { start: 1483099200, perSecond: 1 / 3, users: 3000, bytes: 240, lateShare: 0.01, lateSeconds: [30, 120] });
    const { topic, stored } = await topicWith(texts, 'uu-frames');
    const reference = referenceUniqueUsers(stored);
    assert.ok(reference.late.length >= 700 && reference.late.length <= 1300, `about 1% late (${reference.late.length})`);
    const all: ReferenceGranularity[] = ['minute', 'hour', 'day', 'week', 'month', 'year'];
    const expected = referenceWindows(reference, all);
    const count = (g: string) => expected.filter((w) => w.granularity === g).length;
    assert.ok(count('minute') >= 5040 && count('hour') >= 84, 'minutes and hours of 3.5 days (and any a late first frame opened before)');
    assert.deepEqual(all.slice(2).map(count), [4, 2, 2, 2], 'days, weeks, months, years');
    assert.ok(expected.some((w) => w.granularity === 'day' && w.late > 0), 'late frames show in the days they belong to');
    assert.deepEqual(expected.filter((w) => w.granularity === 'minute'), reference.minutes, 'the minutes are the minute-only answer');

    for (const threads of ['1', '2']) {
      const output = unique(`uu-frames-out-${threads}`);
      const result = await run(['unique-users', '--until-end', '--input', topic, '--output', output, '--granularity', 'year,month,week,day,hour,minute', '--threads', threads,
        '--late-topic', unique('uu-frames-late'), '--dead-letter-topic', unique('uu-frames-dead'), '--json', ...BROKERS]);
      assert.equal(result.code, 0, result.stderr);
      const summary = JSON.parse(result.stdout) as { frames: number; late: number; minutes: number; windows: Record<string, number>; approximateWindows: number };
      assert.deepEqual([summary.frames, summary.late, summary.minutes, summary.approximateWindows], [texts.length, reference.late.length, count('minute'), 0], `--threads ${threads}`);
      assert.deepEqual(summary.windows, Object.fromEntries(all.map((g) => [g, count(g)])));
      const records = await readAll(log, output);
      assert.deepEqual(records.map((r) => JSON.parse(r.value) as ReferenceWindow), expected, `--threads ${threads}: every window, in order (by end, finest first)`);
      assert.deepEqual(records.map((r) => r.key), expected.map((w) => (w.granularity === 'minute' ? w.window : `${w.granularity}/${w.window}`)), 'a minute keyed by its start as before, others by granularity/start');
      assert.ok(records.some((r) => r.key === 'week/2017-01-02T00:00:00Z') && records.some((r) => r.key === 'year/2016-01-01T00:00:00Z'));
    }

    // Over a small exact-memory budget the days and coarser (3,000 users) become sketches, the
    // same with one thread and two; minutes and hours (at most ~1,200 users) stay exact.
    const bounded: string[][] = [];
    for (const threads of ['1', '2']) {
      const output = unique(`uu-frames-bounded-${threads}`);
      const result = await run(['unique-users', '--until-end', '--input', topic, '--output', output, '--granularity', 'minute,hour,day,week,month,year', '--threads', threads, '--max-exact-memory', '64KiB',
        '--late-topic', unique('uu-frames-late'), '--dead-letter-topic', unique('uu-frames-dead'), '--json', ...BROKERS]);
      assert.equal(result.code, 0, result.stderr);
      bounded.push((await readAll(log, output)).map((r) => r.value));
    }
    assert.deepEqual(bounded[1], bounded[0], 'the same records, sketches included, with one thread and two');
    const records = bounded[0].map((value) => JSON.parse(value) as ReferenceWindow & { approximate?: boolean; standardError?: number });
    assert.equal(records.length, expected.length);
    records.forEach((r, i) => {
      const e = expected[i];
      if (['minute', 'hour'].includes(r.granularity)) return assert.deepEqual(r, e, `${r.granularity} ${r.window} stays exact`);
      assert.deepEqual({ ...r, uniqueUsers: 0 }, { ...e, uniqueUsers: 0, approximate: true, standardError: 1.04 / 128 }, `${r.granularity} ${r.window} (${e.uniqueUsers} users) is a sketch`);
      assert.ok(Math.abs(r.uniqueUsers - e.uniqueUsers) <= 3 * r.standardError! * e.uniqueUsers, `${r.granularity} ${r.window}: ${r.uniqueUsers} vs ${e.uniqueUsers}`);
    });
  });

  it('(c) 1% of frames 10–60 s late: late frames on the side topic with how late, minutes exact over the on-time frames, a re-run gives the same output', async () => {
    const texts = frames('late', 12_000, { lateShare: 0.01 });
    const { topic, stored, offsets } = await topicWith(texts, 'uu-late', ['not json', '{"uid":"u"}']);
    const expected = referenceUniqueUsers(stored);
    assert.ok(expected.late.length >= 80 && expected.late.length <= 160, `about 1% late (${expected.late.length})`);
    assert.equal(expected.invalid, 2);

    const output = unique('uu-late-out');
    const lateTopic = unique('uu-late-side');
    const deadTopic = unique('uu-late-dead');
    const args = ['unique-users', '--until-end', '--input', topic, '--output', output, '--late-topic', lateTopic, '--dead-letter-topic', deadTopic, '--json', ...BROKERS];
    const first = await run(args);
    assert.equal(first.code, 0, first.stderr);
    const summary = JSON.parse(first.stdout) as { frames: number; counted: number; late: number; invalid: number; minutes: number };
    assert.deepEqual([summary.frames, summary.late, summary.invalid, summary.minutes], [texts.length + 2, expected.late.length, 2, expected.minutes.length]);

    const minutes = (await readAll(log, output)).map((r) => JSON.parse(r.value) as ReferenceMinute);
    assert.deepEqual(minutes, expected.minutes, 'per-minute counts = exact counts of the on-time frames');

    const late = await readAll(log, lateTopic);
    const byPosition = (partition: number, offset: bigint) => `${partition}@${offset}`;
    assert.deepEqual(
      late.map((r) => [byPosition(Number(r.headers['x-source-partition']), BigInt(r.headers['x-source-offset'])), Number(r.headers['x-late-by-seconds']), r.key]).sort(),
      expected.late.map((l) => [byPosition(l.partition, offsets[l.index]), l.lateBySeconds, l.uid]).sort(),
      'every late frame, with how late it was',
    );
    for (const r of late) {
      assert.equal(r.headers['x-reason'], 'beyond-lateness');
      assert.match(r.headers['x-error'], /behind its partition's stream time/);
      assert.equal(r.headers['x-pipeline'], 'unique-users');
      assert.equal(r.headers['x-source-topic'], topic);
      assert.ok(Number(r.headers['x-late-by-seconds']) > 5);
      assert.equal(r.value, stored.find((s, i) => s.partition === Number(r.headers['x-source-partition']) && offsets[i] === BigInt(r.headers['x-source-offset']))!.text, 'the original frame bytes');
    }
    const dead = await readAll(log, deadTopic);
    assert.deepEqual(dead.map((r) => r.headers['x-reason']).sort(), ['missing-ts', 'not-json']);

    const second = await run([...args, '--threads', '1']);
    assert.equal(second.code, 0, second.stderr);
    const twice = (await readAll(log, output)).map((r) => JSON.parse(r.value) as ReferenceMinute);
    assert.deepEqual(twice, [...expected.minutes, ...expected.minutes], 're-running on the same topic (read on one thread this time) gives the same output');
    assert.equal((await readAll(log, lateTopic)).length, 2 * expected.late.length);
  });

  it('(b) 0.1% of frames with one random bit of ts flipped (bits 12 to 31): real minutes exact over the untouched frames, none outside the real range, every flipped frame on the side topic as implausible-time; --until-end and as a service', async () => {
    // 24,000 frames over 20 minutes of event time; 0.1% get one bit of their root ts flipped.
    const random = seededRandom('uu-bitflip/flips');
    const generated = frames('bitflip', 24_000, { perSecond: 20, duplicateKeyShare: 0 });
    const flippedTexts = new Map<string, { ts: number; original: number }>();
    const texts = generated.map((text) => {
      if (random.next() >= 0.001) return text;
      const original = rootUidTs(text)!.ts;
      const ts = (original ^ (1 << random.int(12, 31))) >>> 0;
      const flipped = text.replace(new RegExp(`"ts":("?)${original}(?=[",}])`), `"ts":$1${ts}`);
      assert.equal(rootUidTs(flipped)?.ts, ts, 'the root ts is the flipped one');
      flippedTexts.set(flipped, { ts, original });
      return flipped;
    });
    assert.ok(flippedTexts.size >= 12 && flippedTexts.size <= 40, `about 0.1% flipped (${flippedTexts.size})`);
    const { topic, stored, offsets } = await topicWith(texts, 'uu-bitflip');
    const at = (partition: number, offset: bigint) => `${partition}@${offset}`;
    const flipped = new Map<string, { ts: number; original: number }>();
    stored.forEach((f, i) => {
      const flip = flippedTexts.get(f.text);
      if (flip) flipped.set(at(f.partition, offsets[i]), flip);
    });
    assert.equal(flipped.size, flippedTexts.size);
    // The exact answer, recomputed from the untouched frames alone.
    const expected = referenceUniqueUsers(stored.filter((f) => !flippedTexts.has(f.text)));
    assert.equal(expected.late.length, 0, 'the untouched frames are on time');
    const realTimes = stored.filter((f) => !flippedTexts.has(f.text)).map((f) => rootUidTs(f.text)!.ts);
    const [first, last] = [Math.min(...realTimes), Math.max(...realTimes)];

    const check = async (output: string, lateTopic: string, how: string) => {
      const minutes = (await readAll(log, output)).map((r) => JSON.parse(r.value) as ReferenceMinute);
      assert.deepEqual(minutes, expected.minutes, `${how}: every minute exactly as counted over the untouched frames`);
      for (const m of minutes) assert.ok(m.start >= Math.floor(first / 60) * 60 && m.start <= last, `${how}: minute ${m.minute} lies in the real range`);
      const side = await readAll(log, lateTopic);
      assert.deepEqual(side.map((r) => at(Number(r.headers['x-source-partition']), BigInt(r.headers['x-source-offset']))).sort(), [...flipped.keys()].sort(), `${how}: every flipped frame, and nothing else, on the side topic`);
      for (const r of side) {
        const flip = flipped.get(at(Number(r.headers['x-source-partition']), BigInt(r.headers['x-source-offset'])))!;
        assert.equal(r.headers['x-reason'], 'implausible-time');
        const skew = Number(r.headers['x-time-skew-ms']);
        assert.ok(Math.abs(skew) > 600_000 && Math.sign(skew) === Math.sign(flip.ts - flip.original), `${how}: skew ${skew} ms, beyond the 10 minutes and the flip's way`);
        assert.ok(Math.abs(skew - (flip.ts - flip.original) * 1000) <= 20 * 60_000, `${how}: skew ${skew} ms is the flip (${flip.ts - flip.original} s) give or take the stream's 20 minutes`);
        assert.equal(r.headers['x-event-time'], new Date(flip.ts * 1000).toISOString());
        assert.match(r.headers['x-error'], /(ahead of|behind) its partition's stream time .* and the stream did not confirm it/);
        assert.equal(rootUidTs(r.value)?.ts, flip.ts, 'the original frame bytes');
      }
    };

    const output = unique('uu-bitflip-out');
    const lateTopic = unique('uu-bitflip-late');
    const result = await run(['unique-users', '--until-end', '--input', topic, '--output', output, '--late-topic', lateTopic, '--dead-letter-topic', unique('uu-bitflip-dead'), '--json', ...BROKERS]);
    assert.equal(result.code, 0, result.stderr);
    const summary = JSON.parse(result.stdout) as { frames: number; counted: number; late: number; invalid: number; implausible: number };
    assert.deepEqual([summary.frames, summary.counted, summary.late, summary.invalid, summary.implausible], [texts.length, texts.length - flipped.size, 0, 0, flipped.size]);
    await check(output, lateTopic, '--until-end');

    // The service: a group member, idle after the topic is read (all quiet: minutes flushed, held frames decided).
    const serviceOutput = unique('uu-bitflip-svc-out');
    const serviceLate = unique('uu-bitflip-svc-late');
    const service = spawn(process.execPath, [BIN, 'unique-users', '--input', topic, '--output', serviceOutput, '--group', unique('uu-bitflip-group'), '--idle-timeout', '2s',
      '--late-topic', serviceLate, '--dead-letter-topic', unique('uu-bitflip-svc-dead'), ...BROKERS], { env: { ...process.env, LOG_LEVEL: 'warn' }, stdio: ['ignore', 'pipe', 'inherit'] });
    const closed = once(service, 'close');
    const count = async (name: string) => (await log.offsets(name).catch(() => [])).reduce((n, p) => n + Number(p.latest), 0);
    for (let attempt = 0; attempt < 480 && ((await count(serviceOutput)) < expected.minutes.length || (await count(serviceLate)) < flipped.size); attempt++) await sleep(250);
    service.kill('SIGTERM');
    const [code] = await closed;
    assert.equal(code, 0);
    await check(serviceOutput, serviceLate, 'service');
  });

  it('as a service: commits only what emitted minutes no longer need, so a restart emits every minute once, complete', async () => {
    const texts = frames('service', 8000, { disorderSeconds: 5 });
    const { topic, stored } = await topicWith(texts, 'uu-svc');
    const expected = referenceUniqueUsers(stored);
    assert.equal(expected.late.length, 0);
    // Minutes the watermark closes without an idle flush: those ending at or before the lowest partition watermark.
    const combined = Math.min(...expected.streamTimes.values()) - 5;
    const closable = expected.minutes.filter((m) => m.start + 60 <= combined).length;
    assert.ok(closable >= 1 && closable < expected.minutes.length, 'some minutes stay open without the idle flush');

    const output = unique('uu-svc-out');
    const group = unique('uu-svc-group');
    const service = (idle: string) => spawn(process.execPath, [BIN, 'unique-users', '--input', topic, '--output', output, '--group', group, '--idle-timeout', idle,
      '--late-topic', unique('uu-svc-late'), '--dead-letter-topic', unique('uu-svc-dead'), ...BROKERS], { env: { ...process.env, LOG_LEVEL: 'warn' }, stdio: ['ignore', 'pipe', 'inherit'] });
    // Records a read_committed reader sees (the end offsets count transaction markers too).
    const waitFor = async (count: number) => {
      for (let attempt = 0; attempt < 240; attempt++) {
        let n = 0;
        try {
          for await (const batch of log.readRange({ topic: output })) n += batch.length;
        } catch {
          // not created yet
        }
        if (n >= count) return;
        await sleep(250);
      }
      assert.fail(`the output topic did not reach ${count} minutes`);
    };

    const first = service('5m');
    const firstClosed = once(first, 'close');
    await waitFor(closable);
    first.kill('SIGTERM');
    const [firstCode] = await firstClosed;
    assert.equal(firstCode, 0);
    assert.equal((await readAll(log, output)).length, closable, 'the open minutes were not emitted');

    const second = service('1s');
    const secondClosed = once(second, 'close');
    await waitFor(expected.minutes.length);
    second.kill('SIGTERM');
    await secondClosed;
    const minutes = (await readAll(log, output)).map((r) => JSON.parse(r.value) as ReferenceMinute);
    assert.deepEqual(minutes, expected.minutes, 'every minute exactly once, with every frame counted');
  });
});
