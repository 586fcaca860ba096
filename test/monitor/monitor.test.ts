/**
 * `monitor` on the real Kafka and PostgreSQL: it passes after a clean run and fails, with a
 * clear report, when messages are deleted before being consumed or a sink loses records.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import kafkajs from 'kafkajs';
import { KafkaLog } from '../../src/log/kafka.ts';
import { openDatabase } from '../../src/db/open.ts';
import { saveOffsets } from '../../src/db/offset-store.ts';
import { BatchCounts, addCounts } from '../../src/db/pipeline-counts.ts';
import { ReasonCounts, addRejectionCounts } from '../../src/db/rejection-counts.ts';
import { collectSnapshot } from '../../src/observability/reconciliation.ts';
import type { Database } from '../../src/db/types.ts';
import type { RecordBatch } from '../../src/log/types.ts';
import { KAFKA_BROKERS, TEST_DATABASE_URL } from '../helpers/env.ts';
import { tickflow } from '../helpers/cli.ts';

async function until(predicate: () => boolean | Promise<boolean>, what: string, timeoutMs = 30_000) {
  const deadline = Date.now() + timeoutMs;
  while (!(await predicate())) {
    if (Date.now() > deadline) assert.fail(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

describe('monitor on the real Kafka and PostgreSQL', () => {
  const id = randomUUID().slice(0, 8);
  const topic = `monitor-${id}`;
  const group = `monitor-group-${id}`;
  const sink = `monitor-sink-${id}`;
  let log: KafkaLog;
  let db: Database;
  const cli = (extra: string[]) =>
    tickflow(['monitor', '--topics', topic, '--brokers', KAFKA_BROKERS.join(','), '--database-url', TEST_DATABASE_URL, ...extra]);

  before(async () => {
    log = new KafkaLog({ brokers: KAFKA_BROKERS });
    db = await openDatabase({ url: TEST_DATABASE_URL });
    await log.createTopics([{ name: topic, partitions: 3 }]);
    const producer = log.producer();
    await producer.send(topic, Array.from({ length: 300 }, (_, i) => ({ partition: i % 3, value: `m${i}` })));
    await producer.close();
  });
  after(async () => {
    await log.deleteTopics([topic]).catch(() => undefined);
    await db.query('DELETE FROM stored_offsets WHERE consumer = $1', [sink]);
    await db.query('DELETE FROM pipeline_counts WHERE consumer = $1', [sink]);
    await log.close();
    await db.close();
  });

  it('passes after a clean run: a group and an exactly-once sink that read everything', async () => {
    // A Kafka group that commits what it read.
    const consumer = log.subscribe({ group, topics: [topic] });
    let read = 0;
    const done = (async () => {
      for await (const batch of consumer) {
        read += batch.records.length;
        const last = new Map<number, bigint>();
        for (const r of batch.records) last.set(r.partition, r.offset + 1n);
        await consumer.commit([...last].map(([partition, offset]) => ({ topic, partition, offset })));
      }
    })();
    await until(() => read === 300, 'the group to read 300');
    await until(async () => [...(await log.committed(group, topic)).values()].reduce((a, b) => a + b, 0n) === 300n, 'commits');
    await consumer.close();
    await done;

    // A sink keeping offsets and counts in Postgres, one transaction per batch.
    await runSink(log, db, topic, sink, () => true);

    const snapshot = await collectSnapshot(log, db, { topics: [topic] });
    assert.deepEqual(snapshot.problems, []);
    const mine = snapshot.consumers.filter((c) => c.name === group || c.name === sink);
    assert.deepEqual(mine.map((c) => [c.kind, c.consumed, c.lag]).sort(), [['group', 300, 0], ['stored', 300, 0]]);
    assert.deepEqual(snapshot.accounting.map((a) => [a.partition, a.advanced, a.accepted, a.unaccounted]), [[0, 100, 100, 0], [1, 100, 100, 0], [2, 100, 100, 0]]);

    const check = await cli(['--check']);
    assert.equal(check.code, 0, check.stdout + check.stderr);
    assert.match(check.stdout, /reconciliation: OK/);
  });

  it('shows in-flight messages as lag, still reconciled', async () => {
    const producer = log.producer();
    await producer.send(topic, Array.from({ length: 30 }, (_, i) => ({ partition: i % 3, value: `late${i}` })));
    await producer.close();
    const snapshot = await collectSnapshot(log, db, { topics: [topic] });
    assert.deepEqual(snapshot.problems, []);
    assert.equal(snapshot.consumers.find((c) => c.name === group)!.lag, 30);
    assert.equal(snapshot.topics[0].messages, 330);
    const json = await cli(['--json']);
    assert.equal(JSON.parse(json.stdout).consumers.find((c: { name: string }) => c.name === sink).lag, 30);
  });

  it('fails when messages are deleted before a consumer read them', async () => {
    const kafka = new kafkajs.Kafka({ brokers: KAFKA_BROKERS, logLevel: kafkajs.logLevel.NOTHING });
    const admin = kafka.admin();
    await admin.connect();
    // Partition 0 holds offsets 0..109; the group and the sink are at 100. Delete up to 105.
    await admin.fetchTopicMetadata({ topics: [topic] });
    await admin.deleteTopicRecords({ topic, partitions: [{ partition: 0, offset: '105' }] });
    await admin.disconnect();
    const check = await cli(['--check']);
    assert.equal(check.code, 1);
    assert.match(check.stdout, new RegExp(`group ${group} on ${topic}\\[0\\]: 5 messages were deleted before they were consumed`));
    assert.match(check.stdout, new RegExp(`consumer ${sink} on ${topic}\\[0\\]: 5 messages were deleted`));
  });

  it('fails when a sink loses records without accounting for them', async () => {
    const lossy = `${sink}-lossy`;
    const other = `monitor-lossy-${id}`;
    await log.createTopics([{ name: other, partitions: 2 }]);
    const producer = log.producer();
    await producer.send(other, Array.from({ length: 100 }, (_, i) => ({ partition: i % 2, value: `v${i}` })));
    await producer.close();
    // Every tenth record is silently skipped: offsets advance, nothing counts it.
    let n = 0;
    await runSink(log, db, other, lossy, () => ++n % 10 !== 0);
    const snapshot = await collectSnapshot(log, db, { topics: [other] });
    assert.deepEqual(snapshot.accounting.map((a) => a.unaccounted), [5, 5]);
    const check = await tickflow(['monitor', '--check', '--topics', other, '--brokers', KAFKA_BROKERS.join(','), '--database-url', TEST_DATABASE_URL]);
    assert.equal(check.code, 1);
    assert.match(check.stdout, /advanced over 50 records but accounted for 45 \(accepted 45, invalid 0, late 0, dropped 0\): 5 missing/);
    await db.query('DELETE FROM stored_offsets WHERE consumer = $1', [lossy]);
    await db.query('DELETE FROM pipeline_counts WHERE consumer = $1', [lossy]);
    await log.deleteTopics([other]);
  });
});

describe('monitor: late and implausible shares', () => {
  const id = randomUUID().slice(0, 8);
  const topic = `monitor-late-${id}`;
  const sink = `monitor-late-sink-${id}`;
  let log: KafkaLog;
  let db: Database;
  const cli = (extra: string[]) => tickflow(['monitor', '--check', '--topics', topic, '--brokers', KAFKA_BROKERS.join(','), '--database-url', TEST_DATABASE_URL, ...extra]);

  before(async () => {
    log = new KafkaLog({ brokers: KAFKA_BROKERS });
    db = await openDatabase({ url: TEST_DATABASE_URL });
    await log.createTopics([{ name: topic, partitions: 2 }]);
    const producer = log.producer();
    await producer.send(topic, Array.from({ length: 400 }, (_, i) => ({ partition: i % 2, value: `m${i}` })));
    await producer.close();
  });
  after(async () => {
    await log.deleteTopics([topic]).catch(() => undefined);
    for (const table of ['stored_offsets', 'pipeline_counts', 'rejection_counts']) await db.query(`DELETE FROM ${table} WHERE consumer = $1`, [sink]);
    await log.close();
    await db.close();
  });

  it('reports per sink what it dead-lettered as late or implausible, and fails over --max-late-share (default 1%)', async () => {
    // Of 400 records: 8 late, 12 implausible-time, 4 implausible-price = 24 = 6%, all accounted for.
    let n = 0;
    await runClassifyingSink(log, db, topic, sink, () => {
      n++;
      return n % 50 === 0 ? 'late' : n % 33 === 0 ? 'implausible-time' : n % 97 === 0 ? 'implausible-price' : 'accepted';
    });
    const snapshot = await collectSnapshot(log, db, { topics: [topic] });
    assert.deepEqual(snapshot.accounting.map((a) => a.unaccounted), [0, 0], 'the sink accounts for every record');
    assert.deepEqual(snapshot.problems, [], 'the library reports shares without judging them unless asked');
    assert.equal((await collectSnapshot(log, db, { topics: [topic], maxLateShare: 0.01 })).problems.length, 1);
    const view = snapshot.lateness.find((l) => l.consumer === sink)!;
    assert.deepEqual({ ...view, share: Math.round(view.share * 1000) / 1000 }, {
      kind: 'stored', consumer: sink, topic, advanced: 400, late: 8, implausible: { 'implausible-price': 4, 'implausible-time': 12 }, share: 0.06,
    });

    const failing = await cli([]);
    assert.equal(failing.code, 1, failing.stdout + failing.stderr);
    assert.match(failing.stdout, new RegExp(`consumer ${sink} on ${topic}: 6\\.0% of the 400 records it read were dead-lettered as late \\(8\\) or implausible \\(implausible-price 4, implausible-time 12\\): over --max-late-share 1\\.0%`));
    assert.match(failing.stdout, /SINK +TOPIC +READ +LATE +IMPLAUSIBLE +SHARE/);
    assert.match(failing.stdout, /400 +8 +4 price, 12 time +6\.00%/);

    const tolerant = await cli(['--max-late-share', '10%']);
    assert.equal(tolerant.code, 0, tolerant.stdout);
    assert.match(tolerant.stdout, /reconciliation: OK/);
    assert.equal((await cli(['--max-late-share', '0.05'])).code, 1);
    const bad = await cli(['--max-late-share', '150%']);
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /--max-late-share: expects a share such as 1%/);
  });
});

/** A minimal exactly-once sink: offsets and counts in one transaction; `keep` decides what it counts. */
async function runSink(log: KafkaLog, db: Database, topic: string, consumer: string, keep: () => boolean) {
  await runClassifyingSink(log, db, topic, consumer, () => (keep() ? 'accepted' : null));
}

type Outcome = 'accepted' | 'late' | `implausible-${string}` | null;

/** The same sink, dead-lettering some records: late (the late outcome) or implausible (invalid, counted by reason). */
async function runClassifyingSink(log: KafkaLog, db: Database, topic: string, consumer: string, classify: () => Outcome) {
  const ends = await log.offsets(topic);
  const total = ends.reduce((n, p) => n + Number(p.latest), 0);
  const member = log.subscribe({ group: consumer, topics: [topic] });
  let seen = 0;
  for await (const batch of member as AsyncIterable<RecordBatch>) {
    const counts = new BatchCounts();
    const reasons = new ReasonCounts();
    const next = new Map<number, bigint>();
    for (const record of batch.records) {
      counts.observe(record.partition, record.offset);
      const outcome = classify();
      if (outcome === 'accepted' || outcome === 'late') counts.count(record.partition, record.offset, outcome);
      else if (outcome !== null) counts.count(record.partition, record.offset, 'invalid');
      // null: lost, not counted
      if (outcome !== null && outcome !== 'accepted') reasons.count(record.partition, outcome);
      next.set(record.partition, record.offset + 1n);
    }
    await db.transaction(async (tx) => {
      await saveOffsets(tx, consumer, topic, next, batch.generation);
      await addCounts(tx, consumer, topic, counts.partitions);
      await addRejectionCounts(tx, consumer, topic, reasons.take());
    });
    seen += batch.records.length;
    if (seen >= total) break;
  }
  await member.close();
}
