import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { Admin } from '@platformatic/kafka';
import { KafkaLog } from '../../src/log/kafka.ts';
import { KAFKA_BROKERS } from '../helpers/env.ts';
import { transactionsSettled } from '../helpers/transactions.ts';
import { BROKERS, run, unique } from './helpers.ts';
import { T0, assertAsSingleInstance, expectedWindows, finish, kcat, plausible, readAndCommitted, scaleOutFrames, scaleOutTopics, sortedWindows, startMember, streamAndKill } from './scale-out.ts';
import type { Member } from './scale-out.ts';

/**
 * `unique-users --scale-out --repartition` on the real Kafka: input NOT keyed by uid — every
 * frame on a random one of 4 partitions, so each user's frames are spread over all of them —
 * out of order, with late, malformed and implausible-time frames. 2 members (one killed -9
 * mid-run and restarted) and 3 members (one killed -9, not restarted). Read with kcat at
 * read_committed (librdkafka, an independent client): the output holds exactly one record per
 * window, equal to the independent recount (reference.ts) and, text for text, to a single
 * instance's over the same input; the late and dead-letter topics hold the same frames, once
 * each, as the single instance's. The internal topic is created as documented.
 *
 * TICKFLOW_SCALE_THROUGHPUT=1 adds a run that measures 1, 2 and 3 members over frames
 * already in the topic (printed, not asserted: the machine is shared).
 */

const FRAMES = Number(process.env.TICKFLOW_SCALE_FRAMES ?? 120_000);
const PARTITIONS = 4;
const PER_SECOND = 60; // frames per second of event time, all partitions together

/** Frames on random partitions (the same uid on every partition); some late, a few malformed, a few ten years off. */
const frames = (seed: string, count = FRAMES) => scaleOutFrames(seed, count, { partitions: PARTITIONS, keyed: false, perSecond: PER_SECOND, farShare: 0.0005 });

/** A side topic's records as (reason, source partition, offset), sorted: which frames went there, and why. */
function sideRecords(topic: string): string[] {
  return kcat(topic, '%h')
    .map((line) => {
      const headers = new Map(line.split(',').map((kv) => [kv.slice(0, kv.indexOf('=')), kv.slice(kv.indexOf('=') + 1)] as const));
      return `${headers.get('x-reason')} ${headers.get('x-source-topic')}/${headers.get('x-source-partition')}@${headers.get('x-source-offset')}`;
    })
    .sort();
}

describe('unique-users --scale-out --repartition: input not keyed by uid', { timeout: 1_500_000 }, () => {
  let log: KafkaLog;
  let admin: Admin;
  const created: string[] = [];

  before(() => {
    log = new KafkaLog({ brokers: KAFKA_BROKERS });
    admin = new Admin({ clientId: 'tickflow-test', bootstrapBrokers: KAFKA_BROKERS });
  });
  after(async () => {
    await log.deleteTopics(created).catch(() => undefined);
    await log.close();
    await admin.close();
  });

  const SCALED = ['--scale-out', '--repartition'];

  /** The internal topics of `group`, as created: partitions, replicas and min.insync.replicas of the repartition topic. */
  const assertInternalTopics = async (group: string) => {
    const repartition = `${group}-repartition`;
    const brokers = (await admin.metadata({ topics: [], forceUpdate: true })).brokers.size;
    const metadata = await admin.metadata({ topics: [repartition, `${group}-partials`], forceUpdate: true });
    const replicas = Math.min(3, brokers);
    assert.deepEqual(metadata.topics.get(repartition)!.partitions.map((p) => p.replicas.length), Array.from({ length: PARTITIONS }, () => replicas), 'as many partitions as the input, min(3, brokers) replicas');
    assert.deepEqual(metadata.topics.get(`${group}-partials`)!.partitions.map((p) => p.replicas.length), [replicas]);
    const configs = await admin.describeConfigs({ resources: [{ resourceType: 2, resourceName: repartition, configurationKeys: ['min.insync.replicas'] }] });
    assert.equal(configs[0]!.configs.find((c) => c.name === 'min.insync.replicas')!.value, String(Math.max(1, replicas - 1)));
  };

  it('is a way to run --scale-out, and needs the input topic', async () => {
    const alone = await run(['unique-users', '--repartition']);
    assert.equal(alone.code, 2);
    assert.equal(alone.stderr, 'tickflow unique-users: --repartition: is a way to run --scale-out: give --scale-out too (see --help)\n');
    const partitions = await run(['unique-users', '--scale-out', '--repartition-partitions', '8']);
    assert.equal(partitions.code, 2);
    assert.equal(partitions.stderr, 'tickflow unique-users: --repartition-partitions: needs --repartition (see --help)\n');
    const missing = unique('uu-rp-missing');
    const group = unique('uu-rp-missing-group');
    const result = await run(['unique-users', '--scale-out', '--repartition', '--input', missing, '--group', group, ...BROKERS], { timeoutMs: 60_000 });
    assert.notEqual(result.code, 0);
    assert.equal(result.stderr, `tickflow unique-users: topic ${missing} does not exist (create it first)\n`);
    assert.ok(!(await log.listTopics()).includes(`${group}-repartition`), 'nothing created');
  });

  for (const [size, restart] of [[2, true], [3, false]] as const) {
    it(`${size} members, one killed -9 mid-run${restart ? ' and restarted' : ''}: one record per window, as the recount and a single instance`, async () => {
      const name = `uu-rp${size}`;
      const input = unique(name);
      const scaled = scaleOutTopics(name);
      const single = scaleOutTopics(`${name}-one`);
      const group = unique(`${name}-group`);
      created.push(input, ...Object.values(scaled), ...Object.values(single), `${group}-partials`, `${group}-repartition`);
      await log.createTopics([{ name: input, partitions: PARTITIONS }]);
      const all = frames(`unique-users-repartition-${size}`);

      const members: Member[] = Array.from({ length: size }, () => startMember(input, scaled, group, SCALED));
      // Frames stream in over about 15 s; mid-run, once frames went through the repartition topic and a partial is committed, the first member goes.
      const killed = await streamAndKill(log, input, all, group, members, restart ? () => startMember(input, scaled, group, SCALED) : undefined);

      const expected = await expectedWindows(log, input, plausible);
      if (T0 + FRAMES / PER_SECOND > 1_468_245_610) assert.equal(expected.filter((w) => w.granularity === 'hour').length, 1, 'the hour before 14:00');
      const scaledSeconds = await finish(log, members, scaled.output, expected.length);
      const singleSeconds = await finish(log, [startMember(input, single, unique(`${name}-one-group`), [])], single.output, expected.length);

      for (const t of [scaled, single]) assert.ok(await transactionsSettled(log, t.output), `no transaction left open on ${t.output}`);
      await assertInternalTopics(group);
      assertAsSingleInstance(scaled.output, single.output, expected);

      // Late (beyond the lateness, implausible time) and dead letters: the same frames, once each, as the single instance.
      const late = sideRecords(scaled.late);
      assert.deepEqual(late, sideRecords(single.late), 'the same late frames as a single instance');
      assert.equal(new Set(late).size, late.length, 'no late frame twice');
      const far = all.filter((f) => !plausible(f)).length;
      assert.equal(late.filter((l) => l.startsWith('implausible-time ')).length, far, 'every frame ten years off is implausible-time');
      const dead = sideRecords(scaled.dead);
      assert.deepEqual(dead, sideRecords(single.dead), 'the same dead letters as a single instance');
      assert.equal(dead.length, all.filter((f) => f.text.endsWith('"page": ')).length, 'every malformed frame once');
      console.log(`# ${size} members over ${PARTITIONS} unkeyed partitions: ${FRAMES} frames, ${expected.length} windows, ${late.length} late, ${dead.length} dead letters; ${killed}; done ${scaledSeconds.toFixed(1)} s after the last frame (single instance over the whole topic ${singleSeconds.toFixed(1)} s)`);
    });
  }

  it('throughput with 1, 2 and 3 members over frames already in the topic', { skip: process.env.TICKFLOW_SCALE_THROUGHPUT !== '1' }, async () => {
    const count = Number(process.env.TICKFLOW_SCALE_THROUGHPUT_FRAMES ?? 600_000);
    const input = unique('uu-rp-tp');
    created.push(input);
    await log.createTopics([{ name: input, partitions: PARTITIONS }]);
    const all = frames('unique-users-repartition-throughput', count);
    const producer = log.producer();
    for (let i = 0; i < all.length; i += 20_000) await producer.send(input, all.slice(i, i + 20_000).map((f) => ({ value: f.text, partition: f.partition })));
    await producer.close();
    const expected = await expectedWindows(log, input, plausible);
    const lines: string[] = [];
    for (const [size, extra] of [[1, []], [1, SCALED], [2, SCALED], [3, SCALED]] as const) {
      const t = scaleOutTopics(`uu-rp-tp${size}`);
      const group = unique(`uu-rp-tp${size}-group`);
      created.push(...Object.values(t), `${group}-partials`, `${group}-repartition`);
      const started = Date.now();
      const members = Array.from({ length: size }, () => startMember(input, t, group, extra));
      const readSeconds = await readAndCommitted(log, group, input, count, started);
      // ... and until the last window is out (the idle flush of the minutes adds --idle-timeout, 5 s, twice when repartitioned).
      await finish(log, members, t.output, expected.length, 600_000);
      const seconds = (Date.now() - started) / 1000 - 3;
      const got = kcat(t.output).map((v) => JSON.parse(v) as Record<string, unknown>);
      assert.deepEqual(sortedWindows(got), sortedWindows(expected));
      lines.push(`${size} member(s)${extra.length > 0 ? ' --scale-out --repartition' : ''}: all read in ${readSeconds.toFixed(1)} s (${Math.round(count / readSeconds)} frames/s), last window out after ${seconds.toFixed(1)} s (${Math.round(count / seconds)} frames/s)`);
    }
    console.log(`# throughput over ${count} frames, ${PARTITIONS} unkeyed partitions, from the members' start: ${lines.join('; ')}`);
  });
});
