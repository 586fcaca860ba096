/**
 * unique-users as a service (a group member catching up a backlog, flushing after
 * --idle-timeout 5s without frames) while the leader of a partition it reads is killed: it
 * keeps running and the output topic holds every minute once, with the distinct users and
 * frames a naive recomputation counts — an outage is not a quiet stream.
 */
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import type { ReferenceMinute } from '../users/reference.ts';
import { forEachMessageIndependently } from '../helpers/independent-reader.ts';
import { BROKERS_FLAG, FAULT_BROKERS, createTopics, deleteTopics } from './cluster.ts';
import { FaultRun, KAFKA_LEADER_KILL, killLeader } from './fault-run.ts';
import { unique } from './suite.ts';
import { FRAMES, assertMinutesAsRecomputed, framesTopic } from './unique-users-data.ts';

describe('fault: unique-users (service)', () => {
  const input = unique('uu-service-in');
  const output = unique('uu-service-out');
  const late = unique('uu-service-late');
  const dead = unique('uu-service-dead');
  let expected: ReferenceMinute[];
  before(async () => {
    expected = await framesTopic(input, 'faults-uu-service');
    await createTopics([output], 1);
    await createTopics([late, dead]);
  });
  after(() => deleteTopics([input, output, late, dead]));

  it(`${KAFKA_LEADER_KILL} 1 s in: keeps running, every minute once, counts as recomputed`, async () => {
    const run = new FaultRun('unique-users (service)', KAFKA_LEADER_KILL);
    try {
      const counter = await run.start('unique-users', ['unique-users', '--input', input, '--output', output, '--late-topic', late, '--dead-letter-topic', dead,
        '--group', unique('uu-service'), '--idle-timeout', '5s', ...BROKERS_FLAG]);
      run.watch(() => counter.metric(['tickflow_records_in_total'], { pipeline: 'unique-users' }));
      await run.strike(() => killLeader(input, 0), { total: FRAMES });
      // Done when as many minutes as expected are out (and a few seconds more, for any extra);
      // counted as records read, the output being written in transactions (markers take offsets too).
      const minutesOut = () => forEachMessageIndependently(FAULT_BROKERS, output, () => undefined);
      await run.waitUntil(async () => (await counter.metric(['tickflow_records_in_total'], { pipeline: 'unique-users' })) >= FRAMES && (await minutesOut()) >= expected.length, `${FRAMES} frames read and ${expected.length} minutes out`, 120_000);
      await sleep(3000);
      await run.stopAll();
      await run.verify(() => assertMinutesAsRecomputed(output, late, expected));
    } finally {
      await run.finish();
    }
  });
});
