import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { testKafkaLog } from '../helpers/kafka-log.ts';
import { transactionsSettled } from '../helpers/transactions.ts';
import { unique } from './helpers.ts';
import { T0, assertAsSingleInstance, countRecords, expectedWindows as expectedOf, finish as finishOn, kcat, readAndCommitted, scaleOutFrames, scaleOutTopics as topics, sleep, sortedWindows as sorted, startMember } from './scale-out.ts';
import type { Member } from './scale-out.ts';

/**
 * `unique-users --scale-out` on the real Kafka: 2 and 3 members of one group over a 6-partition
 * input keyed by uid (each user on one partition), one member killed -9 while frames stream
 * in. Read with kcat at read_committed (librdkafka, an independent client), the output topic
 * must hold exactly one record per window, equal to the independent recount (reference.ts)
 * and to a single instance without --scale-out.
 *
 * TICKFLOW_SCALE_THROUGHPUT=1 adds a run that measures 1, 2 and 3 members over frames already
 * in the topic (printed, not asserted: the machine is shared).
 */

const FRAMES = Number(process.env.TICKFLOW_SCALE_FRAMES ?? 120_000);
const PARTITIONS = 6;
const PER_SECOND = 15; // frames per second of event time, per partition

/** Frames keyed by uid: user k always on partition k mod PARTITIONS; some late, a few malformed. */
const frames = (seed: string, count = FRAMES) => scaleOutFrames(seed, count, { partitions: PARTITIONS, keyed: true, perSecond: PER_SECOND });

describe('unique-users --scale-out: several members of one group', { timeout: 1_500_000 }, () => {
  const kafka = testKafkaLog();
  const { created } = kafka;

  const start = (input: string, t: ReturnType<typeof topics>, group: string, scaleOut: boolean): Member => startMember(input, t, group, scaleOut ? ['--scale-out'] : []);
  const records = (topic: string) => countRecords(kafka.log, topic);
  const expectedWindows = (input: string) => expectedOf(kafka.log, input);
  const finish = (members: Member[], output: string, count: number, limitMs?: number) => finishOn(kafka.log, members, output, count, limitMs);

  for (const size of [2, 3]) {
    it(`${size} members, one killed -9 mid-run: one record per window, as the recount and a single instance`, async () => {
      const input = unique(`uu-so${size}`);
      const scaled = topics(`uu-so${size}`);
      const single = topics(`uu-so${size}-one`);
      const group = unique(`uu-so${size}-group`);
      created.push(input, ...Object.values(scaled), ...Object.values(single), `${group}-partials`);
      await kafka.log.createTopics([{ name: input, partitions: PARTITIONS }]);
      const all = frames(`unique-users-scale-out-${size}`);

      const members = Array.from({ length: size }, () => start(input, scaled, group, true));
      // Frames stream in over about 15 s while the members run.
      const producer = kafka.log.producer();
      const chunk = Math.ceil(all.length / 10);
      let killed = '';
      for (let i = 0, n = 0; i < all.length; i += chunk, n++) {
        await producer.send(input, all.slice(i, i + chunk).map((f) => ({ value: f.text, partition: f.partition })));
        if (n === 5) {
          // Mid-run, after the partials topic has committed records: the first member (the likely combiner) goes.
          for (let w = 0; (await records(`${group}-partials`)) === 0; w++) {
            if (w > 600) assert.fail(`no partials in 60 s: ${members.map((m) => m.stderr()).join('\n---\n')}`);
            await sleep(100);
          }
          const partials = await records(`${group}-partials`);
          members[0]!.child.kill('SIGKILL');
          assert.equal(await members[0]!.exited, 'SIGKILL', members[0]!.stderr());
          killed = `member 1 of ${size} killed -9 with ${partials} partial and progress records committed`;
        }
        await sleep(1500);
      }
      await producer.close();

      const expected = await expectedWindows(input);
      if (T0 + FRAMES / PARTITIONS / PER_SECOND > 1_468_245_610) assert.equal(expected.filter((w) => w.granularity === 'hour').length, 1, 'the hour before 14:00');
      const scaledSeconds = await finish(members, scaled.output, expected.length);
      const singleSeconds = await finish([start(input, single, unique(`uu-so${size}-one-group`), false)], single.output, expected.length);

      for (const t of [scaled, single]) assert.ok(await transactionsSettled(kafka.log, t.output), `no transaction left open on ${t.output}`);
      assertAsSingleInstance(scaled.output, single.output, expected);
      console.log(`# ${size} members: ${FRAMES} frames, ${expected.length} windows; ${killed}; done ${scaledSeconds.toFixed(1)} s after the last frame (single instance over the whole topic ${singleSeconds.toFixed(1)} s)`);
    });
  }

  it('throughput with 1, 2 and 3 members over frames already in the topic', { skip: process.env.TICKFLOW_SCALE_THROUGHPUT !== '1' }, async () => {
    const count = Number(process.env.TICKFLOW_SCALE_THROUGHPUT_FRAMES ?? 600_000);
    const input = unique('uu-so-tp');
    created.push(input);
    await kafka.log.createTopics([{ name: input, partitions: PARTITIONS }]);
    const all = frames('unique-users-scale-out-throughput', count);
    const producer = kafka.log.producer();
    for (let i = 0; i < all.length; i += 20_000) await producer.send(input, all.slice(i, i + 20_000).map((f) => ({ value: f.text, partition: f.partition })));
    await producer.close();
    const expected = await expectedWindows(input);
    const lines: string[] = [];
    for (const [size, scaleOut] of [[1, false], [1, true], [2, true], [3, true]] as const) {
      const t = topics(`uu-so-tp${size}`);
      const group = unique(`uu-so-tp${size}-group`);
      created.push(...Object.values(t), `${group}-partials`);
      const started = Date.now();
      const members = Array.from({ length: size }, () => start(input, t, group, scaleOut));
      const readSeconds = await readAndCommitted(kafka.log, group, input, count, started);
      // ... and until the last window is out (the idle flush of the minutes adds --idle-timeout, 5 s).
      await finish(members, t.output, expected.length, 600_000);
      const seconds = (Date.now() - started) / 1000 - 3;
      const got = kcat(t.output).map((v) => JSON.parse(v) as Record<string, unknown>);
      assert.deepEqual(sorted(got), sorted(expected));
      lines.push(`${size} member(s)${scaleOut ? ' --scale-out' : ''}: all read in ${readSeconds.toFixed(1)} s (${Math.round(count / readSeconds)} frames/s), last window out after ${seconds.toFixed(1)} s`);
    }
    console.log(`# throughput over ${count} frames, ${PARTITIONS} partitions, from the members' start: ${lines.join('; ')}`);
  });
});
