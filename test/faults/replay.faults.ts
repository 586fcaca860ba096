/**
 * replay of a JSON Lines file while the leader of a partition it writes is killed: every
 * line in the topic exactly once, byte for byte, read back by an independent client.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { forEachMessageIndependently } from '../helpers/independent-reader.ts';
import { BROKERS_FLAG, FAULT_BROKERS, createTopics, deleteTopics } from './cluster.ts';
import { FaultRun, KAFKA_LEADER_KILL, killLeader } from './fault-run.ts';
import { unique } from './suite.ts';

const COUNT = 200_000;
/** Paced, so the run lasts ~8 s on any machine and the fault lands mid-run. */
const RATE = 25_000;
const lineOf = (seq: number) => JSON.stringify({ seq, uid: `user-${seq % 997}`, ts: 1_700_000_000 + Math.floor(seq / 100), page: `/item/${(seq * 7919) % 10_007}`, note: 'ümlaut ✓ '.repeat(8) });

describe('fault: replay', () => {
  const topic = unique('replay');
  let dir: string;
  let file: string;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'tickflow-faults-replay-'));
    file = join(dir, 'frames.jsonl');
    await writeFile(file, `${Array.from({ length: COUNT }, (_, i) => lineOf(i)).join('\n')}\n`);
    await createTopics([topic]);
  });
  after(async () => {
    await deleteTopics([topic]);
    await rm(dir, { recursive: true, force: true });
  });

  it(`${KAFKA_LEADER_KILL} 1 s in: exactly ${COUNT} records, each line once, byte for byte`, async () => {
    const run = new FaultRun('replay', KAFKA_LEADER_KILL);
    try {
      const replay = await run.start('replay', ['replay', file, '--output', topic, '--key', 'uid', '--rate', String(RATE), ...BROKERS_FLAG]);
      run.watch(() => replay.metric(['tickflow_records_out_total'], { pipeline: 'replay' }));
      await run.strike(() => killLeader(topic, 0), { total: COUNT });
      await run.waitForExit();
      await run.verify(async () => {
        const seen = new Uint8Array(COUNT);
        const wrong: string[] = [];
        const perPartition = new Map<number, number>();
        const total = await forEachMessageIndependently(FAULT_BROKERS, topic, (m) => {
          perPartition.set(m.partition, (perPartition.get(m.partition) ?? 0) + 1);
          const seq = Number(/^\{"seq":(\d+),/.exec(m.value ?? '')?.[1] ?? -1);
          if (seq < 0 || seq >= COUNT || m.value !== lineOf(seq) || m.key !== `user-${seq % 997}`) {
            if (wrong.length < 3) wrong.push(`${m.partition}@${m.offset}`);
            return;
          }
          seen[seq]++;
        });
        assert.deepEqual(wrong, [], 'every record is a line of the file, keyed by its uid');
        assert.equal(total, COUNT, `exactly ${COUNT} records`);
        const twice = seen.reduce((n, c) => n + (c > 1 ? 1 : 0), 0);
        const missing = seen.reduce((n, c) => n + (c === 0 ? 1 : 0), 0);
        assert.deepEqual({ twice, missing }, { twice: 0, missing: 0 });
        assert.ok((perPartition.get(0) ?? 0) > 0, 'the partition whose leader was killed holds records');
      });
    } finally {
      await run.finish();
    }
  });
});
