/**
 * The log contract: every adapter (Kafka, embedded) must pass this same suite, which is
 * what lets pipelines run unchanged on either.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { partitionForKey } from '../../src/core/murmur2.ts';
import { isTickflowError } from '../../src/core/errors.ts';
import type { GroupConsumer, Log, LogRecord, RecordBatch } from '../../src/log/types.ts';

export interface ContractTarget {
  name: string;
  open(): Promise<Log>;
  /** How long group operations may take (Kafka rebalances take seconds). */
  groupTimeoutMs: number;
  /** Closes the log and opens it again on the same data (a restart); absent: not durable. */
  reopen?(log: Log): Promise<Log>;
}

const unique = (label: string) => `contract-${label}-${randomUUID().slice(0, 8)}`;

async function readAll(log: Log, topic: string): Promise<LogRecord[]> {
  const out: LogRecord[] = [];
  for await (const batch of log.readRange({ topic })) out.push(...batch);
  return out;
}

/** Pulls batches from a member in the background, so several members can run at once. */
function drain(consumer: GroupConsumer) {
  const batches: RecordBatch[] = [];
  const done = (async () => {
    for await (const batch of consumer) batches.push(batch);
  })();
  return {
    batches,
    records: () => batches.flatMap((b) => b.records),
    done,
  };
}

async function until(predicate: () => boolean, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!predicate()) {
    if (Date.now() > deadline) assert.fail(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

const value = (r: LogRecord) => r.value?.toString() ?? null;

export function logContract(target: ContractTarget): void {
  describe(`log contract: ${target.name}`, () => {
    let log: Log;
    before(async () => {
      log = await target.open();
    });
    after(async () => {
      await log.close();
    });

    it('creates topics idempotently and reports empty offsets', async () => {
      const topic = unique('create');
      await log.createTopics([{ name: topic, partitions: 3 }]);
      await log.createTopics([{ name: topic, partitions: 5 }]);
      assert.ok((await log.listTopics()).includes(topic));
      assert.deepEqual(await log.offsets(topic), [0, 1, 2].map((partition) => ({ partition, earliest: 0n, latest: 0n })));
    });

    it('refuses to produce to a topic that does not exist', async () => {
      const producer = log.producer();
      await assert.rejects(producer.send(unique('missing'), [{ value: 'x' }]), (e) => isTickflowError(e, 'UNKNOWN_TOPIC'));
      await producer.close();
    });

    it('keeps order per partition, gives consecutive offsets, and partitions by key like the Java client', async () => {
      const topic = unique('order');
      await log.createTopics([{ name: topic, partitions: 4 }]);
      const producer = log.producer();
      const keys = Array.from({ length: 12 }, (_, i) => `key-${i}`);
      for (let round = 0; round < 3; round++) {
        await producer.send(topic, Array.from({ length: 200 }, (_, i) => ({ key: keys[(round * 200 + i) % keys.length], value: `${round * 200 + i}` })));
      }
      await producer.close();

      const offsets = await log.offsets(topic);
      assert.equal(offsets.reduce((sum, p) => sum + p.latest, 0n), 600n);
      const records = await readAll(log, topic);
      assert.equal(records.length, 600);
      for (const { partition, latest } of offsets) {
        const mine = records.filter((r) => r.partition === partition);
        assert.deepEqual(mine.map((r) => r.offset), Array.from({ length: Number(latest) }, (_, i) => BigInt(i)));
      }
      for (const key of keys) {
        const mine = records.filter((r) => r.key?.toString() === key);
        assert.equal(mine.length, 50);
        assert.ok(mine.every((r) => r.partition === partitionForKey(Buffer.from(key), 4)), `key ${key} on its murmur2 partition`);
        const sequence = mine.map((r) => Number(value(r)));
        assert.deepEqual(sequence, [...sequence].sort((a, b) => a - b), `key ${key} in produce order`);
      }
    });

    it('round-trips explicit partitions, null keys, headers and timestamps', async () => {
      const topic = unique('fields');
      await log.createTopics([{ name: topic, partitions: 2 }]);
      const producer = log.producer();
      // A recent timestamp: Kafka's time-based retention would delete a segment of 2020 records at once.
      const timestamp = BigInt(Date.now() - 60_000);
      await producer.send(topic, [
        { partition: 1, key: null, value: 'a', headers: { trace: 'abc', bin: Buffer.from([0, 255]) }, timestamp },
        { partition: 1, key: 'k', value: null },
      ]);
      await producer.close();
      const [first, second] = await readAll(log, topic);
      assert.equal(first.partition, 1);
      assert.equal(first.key, null);
      assert.equal(value(first), 'a');
      assert.equal(first.timestamp, timestamp);
      assert.deepEqual(await log.offsets(topic), [{ partition: 0, earliest: 0n, latest: 0n }, { partition: 1, earliest: 0n, latest: 2n }]);
      assert.deepEqual(first.headers.map(([k, v]) => [k, [...v]]), [['trace', [...Buffer.from('abc')]], ['bin', [0, 255]]]);
      assert.equal(second.key?.toString(), 'k');
      assert.equal(second.value, null);
      assert.equal(second.offset, 1n);
    });

    it('reads a fixed range and stops at the end offsets, even while more is produced', async () => {
      const topic = unique('range');
      await log.createTopics([{ name: topic, partitions: 2 }]);
      const producer = log.producer();
      await producer.send(topic, Array.from({ length: 100 }, (_, i) => ({ partition: i % 2, value: `${i}` })));
      const range = log.readRange({ topic });
      // The end offsets are snapshotted when the read starts; later records are not included.
      const iterator = range[Symbol.asyncIterator]();
      const first = await iterator.next();
      await producer.send(topic, Array.from({ length: 50 }, (_, i) => ({ partition: i % 2, value: `late-${i}` })));
      const records = [...(first.done ? [] : first.value)];
      for (let next = await iterator.next(); !next.done; next = await iterator.next()) records.push(...next.value);
      assert.equal(records.length, 100);
      assert.ok(records.every((r) => !value(r)!.startsWith('late')));

      const slice: LogRecord[] = [];
      for await (const batch of log.readRange({ topic, partitions: [1], from: new Map([[1, 10n]]), to: new Map([[1, 20n]]) })) slice.push(...batch);
      assert.deepEqual(slice.map((r) => r.offset), Array.from({ length: 10 }, (_, i) => BigInt(10 + i)));
      const empty: LogRecord[] = [];
      for await (const batch of log.readRange({ topic, from: new Map([[0, 75n], [1, 75n]]), to: new Map([[0, 75n], [1, 75n]]) })) empty.push(...batch);
      assert.equal(empty.length, 0);
      await producer.close();
    });

    it('gives one member every partition, resumes a new member from committed offsets', async () => {
      const topic = unique('commit');
      const group = unique('g');
      await log.createTopics([{ name: topic, partitions: 3 }]);
      const producer = log.producer();
      await producer.send(topic, Array.from({ length: 90 }, (_, i) => ({ key: `k${i}`, value: `${i}` })));

      const first = log.subscribe({ group, topics: [topic] });
      const firstRun = drain(first);
      await until(() => firstRun.records().length === 90, target.groupTimeoutMs, 'the first member to read 90 records');
      assert.deepEqual(first.assignment().partitions.map((p) => p.partition), [0, 1, 2]);
      const ends = await log.offsets(topic);
      await first.commit(ends.map((p) => ({ topic, partition: p.partition, offset: p.latest })));
      await first.close();
      await firstRun.done;
      assert.deepEqual(await log.committed(group, topic), new Map(ends.map((p) => [p.partition, p.latest])));
      assert.ok((await log.groups()).includes(group), 'the group is listed');

      await producer.send(topic, Array.from({ length: 30 }, (_, i) => ({ key: `k${i}`, value: `second-${i}` })));
      const second = log.subscribe({ group, topics: [topic] });
      const secondRun = drain(second);
      await until(() => secondRun.records().length >= 30, target.groupTimeoutMs, 'the second member to read 30 records');
      await new Promise((r) => setTimeout(r, 300));
      await second.close();
      await secondRun.done;
      assert.equal(secondRun.records().length, 30);
      assert.ok(secondRun.records().every((r) => value(r)!.startsWith('second-')));
      await producer.close();
    });

    it('seeks each assigned partition to offsets returned by onAssign (externally stored offsets)', async () => {
      const topic = unique('stored');
      const group = unique('g');
      await log.createTopics([{ name: topic, partitions: 2 }]);
      const producer = log.producer();
      await producer.send(topic, Array.from({ length: 40 }, (_, i) => ({ partition: i % 2, value: `${i}` })));
      await producer.close();
      const calls: number[] = [];
      const consumer = log.subscribe({
        group,
        topics: [topic],
        onAssign: async (assignment) => {
          calls.push(assignment.generation);
          return [{ topic, partition: 0, offset: 15n }];
        },
      });
      const run = drain(consumer);
      // Partition 0 starts at the stored 15 (5 records); partition 1 has no commit: earliest (20).
      await until(() => run.records().length === 25, target.groupTimeoutMs, '25 records');
      await new Promise((r) => setTimeout(r, 300));
      await consumer.close();
      await run.done;
      const zero = run.records().filter((r) => r.partition === 0).map((r) => r.offset);
      assert.deepEqual(zero, [15n, 16n, 17n, 18n, 19n]);
      assert.equal(run.records().filter((r) => r.partition === 1).length, 20);
      assert.ok(calls.length >= 1 && calls.every((g) => g > 0));
      assert.ok(run.batches.every((b) => b.generation === consumer.assignment().generation));
    });

    it('starts at the end with fallback latest', async () => {
      const topic = unique('latest');
      const group = unique('g');
      await log.createTopics([{ name: topic, partitions: 1 }]);
      const producer = log.producer();
      await producer.send(topic, [{ value: 'old' }]);
      const consumer = log.subscribe({ group, topics: [topic], fallback: 'latest' });
      let assigned = false;
      const run = drain(consumer);
      await until(() => (assigned = consumer.assignment().partitions.length === 1), target.groupTimeoutMs, 'an assignment');
      assert.ok(assigned);
      await new Promise((r) => setTimeout(r, 500));
      await producer.send(topic, [{ value: 'new' }]);
      await until(() => run.records().length >= 1, target.groupTimeoutMs, 'the new record');
      await consumer.close();
      await run.done;
      assert.deepEqual(run.records().map(value), ['new']);
      await producer.close();
    });

    if (target.reopen) {
      it('keeps topics, records and committed offsets across close and reopen, and goes on from there', async () => {
        const topic = unique('restart');
        const group = unique('g');
        await log.createTopics([{ name: topic, partitions: 3 }]);
        const producer = log.producer();
        const timestamp = BigInt(Date.now() - 1000);
        await producer.send(topic, Array.from({ length: 300 }, (_, i) => ({ key: `k${i % 7}`, value: `${i}`, headers: { n: String(i) }, timestamp })));
        await producer.send(topic, [{ partition: 2, key: null, value: null }]);
        await producer.close();
        const before = await readAll(log, topic);
        const ends = await log.offsets(topic);
        const consumer = log.subscribe({ group, topics: [topic] });
        const run = drain(consumer);
        await until(() => run.records().length === 301, target.groupTimeoutMs, 'the member to read 301 records');
        const half = ends.map((p) => ({ topic, partition: p.partition, offset: p.latest / 2n }));
        await consumer.commit(half);
        await consumer.close();
        await run.done;

        log = await target.reopen!(log);
        assert.ok((await log.listTopics()).includes(topic));
        assert.deepEqual(await log.offsets(topic), ends);
        const after = await readAll(log, topic);
        const shape = (r: LogRecord) => [r.partition, r.offset, r.timestamp, r.key?.toString() ?? null, value(r), r.headers.map(([k, v]) => `${k}=${v}`)];
        assert.deepEqual(after.map(shape), before.map(shape));
        assert.deepEqual(await log.committed(group, topic), new Map(half.map((h) => [h.partition, h.offset])));

        const again = log.producer();
        await again.send(topic, [{ partition: 0, value: 'after-restart' }]);
        await again.close();
        const resumed = log.subscribe({ group, topics: [topic] });
        const resumedRun = drain(resumed);
        const expected = ends.reduce((n, p) => n + Number(p.latest - p.latest / 2n), 0) + 1;
        await until(() => resumedRun.records().length >= expected, target.groupTimeoutMs, `the resumed member to read ${expected} records`);
        await new Promise((r) => setTimeout(r, 300));
        await resumed.close();
        await resumedRun.done;
        assert.equal(resumedRun.records().length, expected, 'resumes at the committed offsets, nothing read twice');
        const last = resumedRun.records().find((r) => value(r) === 'after-restart');
        assert.equal(last?.offset, ends[0].latest, 'offsets go on where they stopped');
      });
    }

    it('splits partitions between two members and hands them all back when one leaves', async () => {
      const topic = unique('rebalance');
      const group = unique('g');
      await log.createTopics([{ name: topic, partitions: 4 }]);
      const a = log.subscribe({ group, topics: [topic] });
      const aRun = drain(a);
      await until(() => a.assignment().partitions.length === 4, target.groupTimeoutMs, 'member a to own 4 partitions');
      const firstGeneration = a.assignment().generation;

      const b = log.subscribe({ group, topics: [topic] });
      const bRun = drain(b);
      await until(
        () => a.assignment().partitions.length === 2 && b.assignment().partitions.length === 2 && a.assignment().generation === b.assignment().generation,
        target.groupTimeoutMs,
        'a 2/2 split',
      );
      const owned = [...a.assignment().partitions, ...b.assignment().partitions].map((p) => p.partition).sort();
      assert.deepEqual(owned, [0, 1, 2, 3]);
      assert.ok(a.assignment().generation > firstGeneration);

      const producer = log.producer();
      await producer.send(topic, Array.from({ length: 80 }, (_, i) => ({ partition: i % 4, value: `${i}` })));
      await until(() => aRun.records().length + bRun.records().length === 80, target.groupTimeoutMs, 'both members to read 80 records');
      for (const run of [aRun, bRun]) {
        const mine = new Set(run.records().map((r) => r.partition));
        assert.equal(mine.size, 2, 'each member reads only its own partitions');
      }

      await b.close();
      await bRun.done;
      await until(() => a.assignment().partitions.length === 4, target.groupTimeoutMs, 'member a to get all partitions back');
      await a.close();
      await aRun.done;
      await producer.close();
    });
  });
}
