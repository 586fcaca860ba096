/**
 * unique-users scaled out (`--scale-out`, two members of one group, each with its own
 * --instance-id) catching up a backlog keyed by uid while the leader of `<group>-partials` —
 * the internal topic every member writes its partials to and the combiner reads — is killed:
 * both members keep running and the output topic holds every minute once, with the distinct
 * users and frames a naive recomputation counts, as a single instance would.
 */
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import type { ReferenceMinute } from '../users/reference.ts';
import { forEachMessageIndependently } from '../helpers/independent-reader.ts';
import { BROKERS_FLAG, FAULT_BROKERS, createTopics, deleteTopics } from './cluster.ts';
import { FaultRun, KAFKA_LEADER_KILL, killLeader } from './fault-run.ts';
import { unique } from './suite.ts';
import type { TickflowProcess } from './tickflow-process.ts';
import { FRAMES, assertMinutesAsRecomputed, framesTopic } from './unique-users-data.ts';

describe('fault: unique-users --scale-out (2 members)', () => {
  const input = unique('uu-scaled-in');
  const output = unique('uu-scaled-out');
  const late = unique('uu-scaled-late');
  const dead = unique('uu-scaled-dead');
  const group = unique('uu-scaled');
  let expected: ReferenceMinute[];
  before(async () => {
    expected = await framesTopic(input, 'faults-uu-scale-out');
    await createTopics([output], 1);
    await createTopics([late, dead]);
  });
  after(() => deleteTopics([input, output, late, dead, `${group}-partials`]));

  it(`${KAFKA_LEADER_KILL} of the partials topic 1 s in: both members keep running, every minute once, counts as recomputed`, async () => {
    const run = new FaultRun('unique-users --scale-out', KAFKA_LEADER_KILL);
    try {
      const members: TickflowProcess[] = [];
      for (const id of ['member-1', 'member-2']) {
        members.push(await run.start(id, ['unique-users', '--scale-out', '--instance-id', id, '--input', input, '--output', output, '--late-topic', late, '--dead-letter-topic', dead,
          '--group', group, '--idle-timeout', '5s', ...BROKERS_FLAG]));
      }
      const framesIn = async () => (await Promise.all(members.map((m) => m.metric(['tickflow_records_in_total'], { pipeline: 'unique-users' })))).reduce((a, b) => a + b, 0);
      run.watch(framesIn);
      await run.strike(() => killLeader(`${group}-partials`, 0), { total: FRAMES });
      const minutesOut = () => forEachMessageIndependently(FAULT_BROKERS, output, () => undefined);
      await run.waitUntil(async () => (await framesIn()) >= FRAMES && (await minutesOut()) >= expected.length, `${FRAMES} frames read and ${expected.length} minutes out`, 180_000);
      await sleep(3000);
      await run.stopAll();
      await run.verify(() => assertMinutesAsRecomputed(output, late, expected));
    } finally {
      await run.finish();
    }
  });
});
