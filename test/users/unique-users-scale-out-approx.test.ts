import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { testKafkaLog } from '../helpers/kafka-log.ts';
import { transactionsSettled } from '../helpers/transactions.ts';
import { run, unique } from './helpers.ts';
import { T0, assertAsSingleInstance, expectedWindows, finish, kcat, plausible, scaleOutFrames, scaleOutTopics, startMember, streamAndKill, testDatabases, windowKey } from './scale-out.ts';
import type { Member } from './scale-out.ts';

/**
 * `unique-users --scale-out --approx` on the real Kafka: input NOT keyed by uid — every frame
 * on a random one of 4 partitions, so every member's partials hold some of the same users —
 * and no --repartition. The partials carry their windows' HyperLogLog sketches and the
 * combiner merges them. 2 members, one killed -9 mid-stream (not started again). Read with
 * kcat at read_committed (librdkafka, an independent client): exactly one record per window,
 * text for text a single `--approx` instance's over the same input, and each within 3
 * standard errors of the independent exact recount (reference.ts), frames and late exact.
 * Both run with --database-url: the minute rows the combiner writes (the partials' minute
 * sketches merged) are, byte for byte, the single instance's.
 */

const FRAMES = Number(process.env.TICKFLOW_SCALE_FRAMES ?? 120_000);
const PARTITIONS = 4;
const PER_SECOND = 60; // frames per second of event time, all partitions together

const SCALED = ['--scale-out', '--approx'];

describe('unique-users --scale-out --approx: sketches merged, input not keyed by uid', { timeout: 1_500_000 }, () => {
  const kafka = testKafkaLog();
  const { created } = kafka;
  const databases = testDatabases();

  it('needs no --repartition, and refuses it', async () => {
    const result = await run(['unique-users', '--scale-out', '--approx', '--repartition']);
    assert.equal(result.code, 2);
    assert.equal(result.stderr, 'tickflow unique-users: --repartition: is not needed with --approx: the partials\' sketches merge whatever the keys (drop --repartition) (see --help)\n');
  });

  it('2 members, one killed -9 mid-stream: one record per window, as a single --approx instance and within 3 standard errors of the recount', async () => {
    const name = 'uu-soa';
    const input = unique(name);
    const scaled = scaleOutTopics(name);
    const single = scaleOutTopics(`${name}-one`);
    const group = unique(`${name}-group`);
    created.push(input, ...Object.values(scaled), ...Object.values(single), `${group}-partials`);
    await kafka.log.createTopics([{ name: input, partitions: PARTITIONS }]);
    const all = scaleOutFrames('unique-users-scale-out-approx', FRAMES, { partitions: PARTITIONS, keyed: false, perSecond: PER_SECOND, farShare: 0.0005 });
    const scaledDb = await databases.create('uu_soa');
    const singleDb = await databases.create('uu_soa_one');

    const members: Member[] = Array.from({ length: 2 }, () => startMember(input, scaled, group, [...SCALED, '--database-url', scaledDb.url]));
    // Frames stream in over about 15 s; mid-stream, once a partial is committed, the first member goes (not started again).
    const killed = await streamAndKill(kafka.log, input, all, group, members);

    const expected = await expectedWindows(kafka.log, input, plausible);
    if (T0 + FRAMES / PER_SECOND > 1_468_245_610) assert.equal(expected.filter((w) => w.granularity === 'hour').length, 1, 'the hour before 14:00');
    const scaledSeconds = await finish(kafka.log, members, scaled.output, expected.length);
    const singleSeconds = await finish(kafka.log, [startMember(input, single, unique(`${name}-one-group`), ['--approx', '--database-url', singleDb.url])], single.output, expected.length);

    for (const t of [scaled, single]) assert.ok(await transactionsSettled(kafka.log, t.output), `no transaction left open on ${t.output}`);
    assertAsSingleInstance(scaled.output, single.output, expected, true);

    // The partials overlap (each user's frames on every partition): where a full window has several, their counts summed are too high.
    const partials = kcat(`${group}-partials`).map((v) => JSON.parse(v) as Record<string, unknown>).filter((v) => typeof v.granularity === 'string');
    assert.ok(partials.every((p) => typeof p.sketch === 'string'), 'every partial carries its sketch');
    const byWindow = Map.groupBy(partials, windowKey);
    const combined = expected.filter((w) => (w.uniqueUsers as number) >= 1000 && (byWindow.get(windowKey(w))?.length ?? 0) > 1);
    assert.ok(combined.length >= 5, `${combined.length} windows of 1,000 users or more with several partials`);
    for (const w of combined) {
      const sum = byWindow.get(windowKey(w))!.reduce((n, p) => n + (p.uniqueUsers as number), 0);
      assert.ok(sum > 1.05 * (w.uniqueUsers as number), `${windowKey(w)}: its partials sum to ${sum} users, it has ${String(w.uniqueUsers)}`);
    }
    // The minutes kept for ranges: the partials' minute sketches merged are the single instance's, byte for byte (no exact count: --approx).
    await databases.assertMinuteRows(scaledDb, singleDb, expected, true);
    console.log(`# 2 members --scale-out --approx over ${PARTITIONS} unkeyed partitions: ${FRAMES} frames, ${expected.length} windows, ${partials.length} partials (${combined.length} windows of several); ${killed}; done ${scaledSeconds.toFixed(1)} s after the last frame (single instance over the whole topic ${singleSeconds.toFixed(1)} s)`);
  });
});
