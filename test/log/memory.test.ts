import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { MemoryLog } from '../../src/log/memory.ts';
import { logContract } from './contract.ts';

logContract({ name: 'embedded', open: async () => new MemoryLog(), groupTimeoutMs: 2000 });

describe('embedded log: a partition made unreachable (a lost leader)', () => {
  it('keeps its records from group members, which report it unreachable until it is back', async () => {
    const log = new MemoryLog();
    await log.createTopics([{ name: 't', partitions: 2 }]);
    const producer = log.producer();
    await producer.send('t', [{ value: 'a', partition: 0 }, { value: 'b', partition: 1 }]);
    log.setReachable('t', 1, false);
    const stop = new AbortController();
    const consumer = log.subscribe({ group: 'g', topics: ['t'], signal: stop.signal });
    const seen: string[] = [];
    try {
      for await (const batch of consumer) {
        for (const r of batch.records) seen.push(`${r.partition}:${r.value!.toString()}`);
        if (seen.length === 1) {
          assert.deepEqual(seen, ['0:a'], 'only the reachable partition is fetched');
          assert.deepEqual(consumer.unreachable(), [{ topic: 't', partition: 1 }]);
          log.setReachable('t', 1, true);
        } else break;
      }
      assert.deepEqual(seen, ['0:a', '1:b']);
      assert.deepEqual(consumer.unreachable(), []);
    } finally {
      stop.abort();
      await consumer.close();
    }
  });
});
