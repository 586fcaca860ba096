import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { isTickflowError } from '../../src/core/errors.ts';
import { KafkaLog } from '../../src/log/kafka.ts';
import { isGroupFenced, isProducerFenced } from '../../src/log/kafka-transaction.ts';
import type { GroupMember, LogRecord, TransactionalProducer } from '../../src/log/types.ts';
import { KAFKA_BROKERS } from '../helpers/env.ts';

/**
 * Transactions on the real broker: tickflow's own record batches with the transactional
 * bit, committed and aborted; read_committed readers (ours and kcat) see exactly the
 * committed records; a zombie producer's writes after a newer one took its id are never
 * visible; offsets commit with the outputs.
 */

const KCAT = '/usr/bin/kcat';

/** The values kcat reads at read_committed (an independent client: librdkafka). */
function kcatValues(topic: string): string[] {
  const out = execFileSync(KCAT, ['-b', KAFKA_BROKERS[0], '-C', '-t', topic, '-X', 'isolation.level=read_committed', '-e', '-q', '-f', '%p %o %s\\n'], { encoding: 'utf8', timeout: 60_000 });
  return out.split('\n').filter(Boolean).map((line) => line.split(' ').slice(2).join(' ')).sort();
}

/** Polls `read` until `done` says its answer is complete (a commit's markers are written asynchronously). */
async function eventually<T>(read: () => Promise<T>, done: (value: T) => boolean): Promise<T> {
  for (let i = 0; ; i++) {
    const value = await read();
    if (done(value) || i >= 100) return value;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

async function values(log: KafkaLog, topic: string): Promise<string[]> {
  const all: LogRecord[] = [];
  for await (const batch of log.readRange({ topic })) all.push(...batch);
  return all.map((r) => r.value!.toString()).sort();
}

describe('Kafka transactions', { timeout: 180_000 }, () => {
  let log: KafkaLog;
  let uncommitted: KafkaLog;
  const producers: TransactionalProducer[] = [];
  const open = (id: string) => {
    const p = log.transactionalProducer(id);
    producers.push(p);
    return p;
  };

  before(() => {
    log = new KafkaLog({ brokers: KAFKA_BROKERS });
    uncommitted = new KafkaLog({ brokers: KAFKA_BROKERS, isolationLevel: 'read_uncommitted' });
  });
  after(async () => {
    await Promise.all(producers.map((p) => p.close().catch(() => undefined)));
    await log.close();
    await uncommitted.close();
  });

  it('makes committed records visible to read_committed readers and never aborted ones', async () => {
    const topic = `txn-${randomUUID()}`;
    await log.createTopics([{ name: topic, partitions: 2 }]);
    const producer = open(`test-${randomUUID()}`);
    await producer.init();
    await producer.send(topic, [{ key: 'a', value: 'c1' }, { key: 'b', value: 'c2' }, { key: 'c', value: 'c3' }]);
    await producer.commit();
    await producer.send(topic, [{ key: 'a', value: 'x1' }, { key: 'b', value: 'x2' }]);
    await producer.abort();
    await producer.send(topic, [{ key: 'a', value: 'c4' }, { key: 'd', value: 'c5' }]);
    await producer.commit();
    const committed = ['c1', 'c2', 'c3', 'c4', 'c5'];
    assert.deepEqual(await eventually(() => values(log, topic), (v) => v.length >= 5), committed);
    assert.deepEqual(kcatValues(topic), committed);
    // read_uncommitted sees the aborted records too (never the markers).
    assert.deepEqual(await values(uncommitted, topic), [...committed, 'x1', 'x2'].sort());
    // The end offsets count the markers: 7 records + 3 markers on 2 partitions.
    const ends = await log.offsets(topic);
    assert.ok(ends.reduce((n, p) => n + p.latest, 0n) > 7n);
  });

  it('ends read_committed reads at the last stable offset while a transaction is open', async () => {
    const topic = `txn-${randomUUID()}`;
    await log.createTopics([{ name: topic, partitions: 1 }]);
    const producer = open(`test-${randomUUID()}`);
    await producer.init();
    await producer.send(topic, [{ value: 'done' }]);
    await producer.commit();
    // The record and its commit marker: the last stable offset reaches 2 once the marker is written.
    const stable = (await eventually(() => log.offsets(topic), (o) => o[0].latest === 2n))[0].latest;
    assert.equal(stable, 2n);
    await producer.send(topic, [{ value: 'open-1' }, { value: 'open-2' }]);
    assert.equal((await log.offsets(topic))[0].latest, stable, 'read_committed end stays at the last stable offset');
    assert.equal((await uncommitted.offsets(topic))[0].latest, stable + 2n, 'read_uncommitted end is the high watermark');
    assert.deepEqual(await values(log, topic), ['done']);
    await producer.commit();
    // EndTxn returns once the commit is decided; the markers that move the last stable offset follow.
    assert.deepEqual(await eventually(() => values(log, topic), (v) => v.length === 3), ['done', 'open-1', 'open-2']);
  });

  it('commits consumed offsets in the transaction, and only when it commits', async () => {
    const topic = `txn-${randomUUID()}`;
    const group = `g-${randomUUID()}`;
    await log.createTopics([{ name: topic, partitions: 2 }]);
    const producer = open(`test-${randomUUID()}`);
    await producer.init();
    await producer.send(topic, [{ value: 'v' }]);
    await producer.commit({ group, offsets: [{ topic, partition: 0, offset: 5n }, { topic, partition: 1, offset: 7n }] });
    assert.deepEqual(await log.committed(group, topic), new Map([[0, 5n], [1, 7n]]));
    await producer.send(topic, [{ value: 'w' }]);
    await producer.abort();
    assert.deepEqual(await log.committed(group, topic), new Map([[0, 5n], [1, 7n]]));
  });

  it('offsets carry the group member (KIP-447): the group refuses a stale generation or an unknown member, and that transaction is aborted', async () => {
    const topic = `txn-${randomUUID()}`;
    const input = `txn-in-${randomUUID()}`;
    const group = `g-${randomUUID()}`;
    await log.createTopics([{ name: topic, partitions: 1 }, { name: input, partitions: 2 }]);
    // A member of the group: its assignment says who it is in which generation.
    let member: GroupMember | undefined;
    const consumer = log.subscribe({ group, topics: [input], onAssign: async (assignment) => void (member = assignment.member) });
    const reading = (async () => {
      for await (const _ of consumer) break;
    })();
    for (let i = 0; member === undefined; i++) {
      if (i > 300) assert.fail('no assignment in 30 s');
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    assert.ok(member.generationId > 0 && member.memberId !== '', `a member of a generation: ${JSON.stringify(member)}`);
    const offsets = (n: bigint) => ({ group, offsets: [{ topic: input, partition: 0, offset: n, metadata: `at ${n}` }, { topic: input, partition: 1, offset: n }], member });
    const producer = open(`test-${randomUUID()}`);
    await producer.init();
    await producer.send(topic, [{ value: 'current' }]);
    await producer.commit(offsets(5n));
    assert.deepEqual(await log.committedWithMetadata(group, input), new Map([[0, { offset: 5n, metadata: 'at 5' }], [1, { offset: 5n, metadata: null }]]));

    const refused: string[] = [];
    for (const [stale, code] of [[{ ...member, generationId: member.generationId + 1 }, 'ILLEGAL_GENERATION'], [{ ...member, memberId: `${member.memberId}-gone` }, 'UNKNOWN_MEMBER_ID']] as const) {
      await producer.send(topic, [{ value: `stale ${code}` }]);
      const error = await producer.commit({ ...offsets(9n), member: stale }).then(() => null, (e: unknown) => e);
      assert.ok(isGroupFenced(error) && isTickflowError(error, 'FENCED'), `commit as ${JSON.stringify(stale)}: ${String(error)}`);
      assert.equal(error.details.kafkaCode, code);
      refused.push(code);
      await producer.abort(); // as the runtime does on a group's refusal
    }
    assert.deepEqual(refused, ['ILLEGAL_GENERATION', 'UNKNOWN_MEMBER_ID']);
    // The producer goes on: the next transaction commits.
    await producer.send(topic, [{ value: 'after' }]);
    await producer.commit(offsets(7n));
    consumer.close();
    await reading;
    assert.deepEqual(await log.committed(group, input), new Map([[0, 7n], [1, 7n]]), 'no refused offsets, ever');
    assert.deepEqual(await eventually(() => values(log, topic), (v) => v.length >= 2), ['after', 'current']);
    assert.deepEqual(kcatValues(topic), ['after', 'current'], 'kcat: the refused transactions\' records never visible');
  });

  it('fences a zombie: its writes after a newer producer took the id are never visible', async () => {
    const topic = `txn-${randomUUID()}`;
    await log.createTopics([{ name: topic, partitions: 2 }]);
    const id = `test-${randomUUID()}`;
    const zombie = open(id);
    await zombie.init();
    await zombie.send(topic, [{ key: 'k', value: 'old-committed' }]);
    await zombie.commit();
    await zombie.send(topic, [{ key: 'k', value: 'old-open' }]); // open when the newer one starts
    const newer = open(id);
    await newer.init(); // aborts the zombie's open transaction
    const late = await zombie.send(topic, [{ key: 'k', value: 'old-late' }, { key: 'z', value: 'old-late-2' }]).then(() => null, (e: unknown) => e);
    const commit = await zombie.commit().then(() => null, (e: unknown) => e);
    // Whichever call the broker refuses first, the zombie learns it was fenced and cannot commit.
    assert.ok(late === null || isProducerFenced(late), `send: ${String(late)}`);
    assert.ok(isTickflowError(commit, 'FENCED') && isProducerFenced(commit), `commit: ${String(commit)}`);
    await newer.send(topic, [{ key: 'k', value: 'new-committed' }]);
    await newer.commit();
    const expected = ['new-committed', 'old-committed'];
    assert.deepEqual(await eventually(() => values(log, topic), (v) => v.length >= 2), expected);
    assert.deepEqual(kcatValues(topic), expected);
  });
});
