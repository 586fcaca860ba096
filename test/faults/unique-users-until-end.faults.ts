/**
 * unique-users --until-end (a bounded run) while the leader of a partition it reads is
 * killed: it exits 0 and the output topic holds every minute once, with the distinct users
 * and frames a naive recomputation counts.
 */
import { after, before, describe, it } from 'node:test';
import type { ReferenceMinute } from '../users/reference.ts';
import { BROKERS_FLAG, createTopics, deleteTopics } from './cluster.ts';
import { FaultRun, KAFKA_LEADER_KILL, killLeader } from './fault-run.ts';
import { unique } from './suite.ts';
import { FRAMES, assertMinutesAsRecomputed, framesTopic } from './unique-users-data.ts';

describe('fault: unique-users --until-end', () => {
  const input = unique('uu-bounded-in');
  const output = unique('uu-bounded-out');
  const late = unique('uu-bounded-late');
  const dead = unique('uu-bounded-dead');
  let expected: ReferenceMinute[];
  before(async () => {
    expected = await framesTopic(input, 'faults-uu-bounded');
    await createTopics([output], 1);
    await createTopics([late, dead]);
  });
  after(() => deleteTopics([input, output, late, dead]));

  it(`${KAFKA_LEADER_KILL} 1 s in: exits 0, every minute once, counts as recomputed`, async () => {
    const run = new FaultRun('unique-users --until-end', KAFKA_LEADER_KILL);
    try {
      const counter = await run.start('unique-users', ['unique-users', '--until-end', '--input', input, '--output', output, '--late-topic', late, '--dead-letter-topic', dead, '--json', ...BROKERS_FLAG]);
      run.watch(() => counter.metric(['tickflow_records_in_total'], { pipeline: 'unique-users' }));
      await run.strike(() => killLeader(input, 0), { total: FRAMES });
      await run.waitForExit();
      await run.verify(() => assertMinutesAsRecomputed(output, late, expected));
    } finally {
      await run.finish();
    }
  });
});
