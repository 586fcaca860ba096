/**
 * produce prices while the leader of a partition it writes is killed: exactly N records,
 * none twice (every tick's event time, unique by construction, is there once), read back
 * by an independent client.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { forEachMessageIndependently } from '../helpers/independent-reader.ts';
import { BROKERS_FLAG, FAULT_BROKERS, createTopics, deleteTopics } from './cluster.ts';
import { FaultRun, KAFKA_LEADER_KILL, killLeader } from './fault-run.ts';
import { unique } from './suite.ts';

const COUNT = 600_000;
const START = Date.UTC(2024, 0, 1);
const INTERVAL_MS = 10;
/** `yyyy-mm-dd hh:mm:ss.fff`, UTC: the i-th tick's ts. */
const tsOf = (i: number) => new Date(START + i * INTERVAL_MS).toISOString().replace('T', ' ').slice(0, 23);

describe('fault: produce prices', () => {
  const topic = unique('prices');
  before(() => createTopics([topic]));
  after(() => deleteTopics([topic]));

  it(`${KAFKA_LEADER_KILL} 1 s in: exactly ${COUNT} records, none twice`, async () => {
    const run = new FaultRun('produce prices', KAFKA_LEADER_KILL);
    try {
      const producer = await run.start('produce-prices', ['produce', 'prices', '--output', topic, '-n', String(COUNT), '--seed', 'faults',
        '--start', new Date(START).toISOString(), '--interval', String(INTERVAL_MS), ...BROKERS_FLAG]);
      run.watch(() => producer.metric(['tickflow_records_out_total'], { pipeline: 'produce-prices' }));
      await run.strike(() => killLeader(topic, 0), { total: COUNT });
      await run.waitForExit();
      await run.verify(async () => {
        const seen = new Map<string, number>();
        const perPartition = new Map<number, number>();
        const malformed: string[] = [];
        const total = await forEachMessageIndependently(FAULT_BROKERS, topic, (m) => {
          perPartition.set(m.partition, (perPartition.get(m.partition) ?? 0) + 1);
          const match = /^\{"ts":"([^"]+)","symbol":"([A-Z]+)","price":\d+\.\d{2}\}$/.exec(m.value ?? '');
          if (!match || match[2] !== m.key) {
            if (malformed.length < 3) malformed.push(`${m.partition}@${m.offset}: ${m.value}`);
            return;
          }
          seen.set(match[1], (seen.get(match[1]) ?? 0) + 1);
        });
        assert.deepEqual(malformed, [], 'every record a well-formed tick keyed by its symbol');
        assert.equal(total, COUNT, `exactly ${COUNT} records in the topic`);
        const twice = [...seen].filter(([, n]) => n > 1).map(([ts]) => ts);
        assert.deepEqual(twice.slice(0, 5), [], `no tick twice (${twice.length} were)`);
        const missing: string[] = [];
        for (let i = 0; i < COUNT && missing.length < 5; i++) if (!seen.has(tsOf(i))) missing.push(tsOf(i));
        assert.deepEqual(missing, [], 'every tick there');
        assert.ok((perPartition.get(0) ?? 0) > 0, 'the partition whose leader was killed holds records');
      });
    } finally {
      await run.finish();
    }
  });
});
