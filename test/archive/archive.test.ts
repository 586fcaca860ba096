import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import pino from 'pino';
import { openDatabase } from '../../src/db/open.ts';
import type { Database } from '../../src/db/types.ts';
import { KafkaLog } from '../../src/log/kafka.ts';
import { MemoryLog } from '../../src/log/memory.ts';
import type { Log, LogRecord, RecordToProduce } from '../../src/log/types.ts';
import { headersToJson } from '../../src/db/archive-store.ts';
import { runArchive } from '../../src/pipelines/archive.ts';
import { KAFKA_BROKERS } from '../helpers/env.ts';
import { messageCount, privateSchema, readAll, startTickflow, uniqueName, waitFor } from '../indicators/fixtures.ts';
import type { PrivateSchema } from '../indicators/fixtures.ts';

const logger = pino({ level: 'warn' });

interface Row {
  topic: string;
  partition: number;
  offset: string;
  key: Buffer | null;
  value: Buffer | null;
  headers: unknown;
  record_time: Date;
}

/** Messages of every shape: keyed and not, binary, empty, null values, headers text and binary. */
function variedMessages(n: number): RecordToProduce[] {
  return Array.from({ length: n }, (_, i) => ({
    key: i % 5 === 0 ? null : `key-${i % 17}`,
    value: i % 11 === 0 ? null : i % 7 === 0 ? Buffer.from([0, 255, 1, 254, i & 255]) : i % 13 === 0 ? '' : JSON.stringify({ i, text: 'prix → €' }),
    headers: i % 3 === 0 ? { origin: 'test', binary: Buffer.from([0xff, 0x00, i & 255]) } : undefined,
  }));
}

async function assertArchived(rows: Row[], records: LogRecord[]) {
  assert.equal(rows.length, records.length, 'one row per message');
  const byPosition = new Map(rows.map((row) => [`${row.topic}/${row.partition}/${row.offset}`, row]));
  assert.equal(byPosition.size, rows.length);
  for (const record of records) {
    const row = byPosition.get(`${record.topic}/${record.partition}/${record.offset}`);
    assert.ok(row, `row for ${record.partition}/${record.offset}`);
    assert.deepEqual(row.key, record.key);
    assert.deepEqual(row.value, record.value);
    assert.deepEqual(row.headers, headersToJson(record.headers));
    assert.equal(BigInt(row.record_time.getTime()), record.timestamp);
  }
}

async function partitionSummary(schema: PrivateSchema, topic: string) {
  return schema.query<{ partition: number; n: string; first: string; last: string }>(
    'SELECT partition, count(*) AS n, min("offset") AS first, max("offset") AS last FROM archived_messages WHERE topic = $1 GROUP BY partition ORDER BY partition',
    [topic],
  );
}

describe('archive on the real Kafka and PostgreSQL', () => {
  let log: KafkaLog;
  let schema: PrivateSchema;
  let db: Database;
  const created: string[] = [];

  before(async () => {
    log = new KafkaLog({ brokers: KAFKA_BROKERS });
    schema = await privateSchema('archive_test');
    db = await schema.open();
  });
  after(async () => {
    await log.deleteTopics(created).catch(() => undefined);
    await log.close();
    await db.close();
    await schema.drop();
  });

  it('stores every message byte for byte: key, value, headers, timestamp', async () => {
    const topic = uniqueName('archive-shapes');
    created.push(topic);
    await log.createTopics([{ name: topic, partitions: 3 }]);
    const producer = log.producer();
    await producer.send(topic, variedMessages(500));
    await producer.close();
    const group = uniqueName('archive');
    const report = await runArchive({ log, db, logger, signal: new AbortController().signal, topics: [topic], group, stopAtEnd: true });
    assert.deepEqual(report, { read: 500, inserted: 500 });
    const rows = await schema.query<Row>('SELECT * FROM archived_messages WHERE topic = $1', [topic]);
    await assertArchived(rows, await readAll(log, topic));
    // Again from the beginning: everything read again, nothing inserted.
    const again = await runArchive({ log, db, logger, signal: new AbortController().signal, topics: [topic], group, fromBeginning: true, stopAtEnd: true });
    assert.deepEqual(again, { read: 500, inserted: 0 });
  });

  it('kill -9 mid-stream, then a re-run from the beginning: exactly one row per message', async () => {
    const topic = uniqueName('archive-kill');
    created.push(topic);
    await log.createTopics([{ name: topic, partitions: 3 }]);
    const args = ['archive', '--input', topic, '--brokers', KAFKA_BROKERS.join(','), '--database-url', schema.url];
    const producer = log.producer();
    const total = 30_000;
    const running = startTickflow(args);
    const archived = async () => Number((await schema.query<{ n: string }>('SELECT count(*) AS n FROM archived_messages WHERE topic = $1', [topic]).catch(() => [{ n: '0' }]))[0].n);
    let before = 0;
    for (let i = 0; i < total; i += 1000) {
      await producer.send(topic, variedMessages(1000).map((m, j) => ({ ...m, key: `k${(i + j) % 101}` })));
      if (i === 10_000) {
        // Killed as soon as it has written something; the rest streams in while it is down.
        await waitFor('the first rows', async () => (await archived()) > 0);
        running.child.kill('SIGKILL');
        const killed = await running.exited;
        assert.equal(killed.signal, 'SIGKILL');
        before = await archived();
      }
    }
    await producer.close();
    assert.ok(before > 0 && before <= 11_000, `it had archived ${before} rows before the kill`);

    const rerun = await startTickflow([...args, '--from-beginning', '--until-end', '--json']).exited;
    assert.equal(rerun.code, 0, rerun.stderr);
    const report = JSON.parse(rerun.stdout);
    assert.equal(report.read, total);
    assert.equal(report.inserted, total - before);

    const offsets = await log.offsets(topic);
    assert.equal(await messageCount(log, topic), total);
    assert.deepEqual(
      await partitionSummary(schema, topic),
      offsets.filter((p) => p.latest > 0n).map((p) => ({ partition: p.partition, n: String(p.latest), first: '0', last: String(p.latest - 1n) })),
    );
    const rows = await schema.query<Row>('SELECT * FROM archived_messages WHERE topic = $1', [topic]);
    await assertArchived(rows, await readAll(log, topic));

    // A plain restart resumes from the stored offsets: nothing to read, nothing added.
    const resumed = await startTickflow([...args, '--until-end', '--json']).exited;
    assert.equal(resumed.code, 0, resumed.stderr);
    assert.deepEqual(JSON.parse(resumed.stdout), { read: 0, inserted: 0 });
    assert.equal(await archived(), total);

    // The accounting kept with the offsets reconciles: every message counted once.
    const monitor = await startTickflow(['monitor', '--check', '--json', '--topics', topic, '--brokers', KAFKA_BROKERS.join(','), '--database-url', schema.url]).exited;
    assert.equal(monitor.code, 0, monitor.stdout + monitor.stderr);
    const snapshot = JSON.parse(monitor.stdout) as { accounting: Array<{ accepted: number; unaccounted: number }> };
    assert.equal(snapshot.accounting.reduce((n, a) => n + a.accepted, 0), total);
    assert.ok(snapshot.accounting.every((a) => a.unaccounted === 0));
  });
});

describe('archive on the embedded defaults (in-process log, PGlite)', () => {
  it('stores every message once', async () => {
    const log: Log = new MemoryLog();
    const db = await openDatabase({ dataDir: 'memory://' });
    try {
      await log.createTopics([{ name: 'events', partitions: 2 }]);
      const producer = log.producer();
      await producer.send('events', variedMessages(300));
      const options = { log, db, logger, topics: ['events'], group: 'archive-embedded', stopAtEnd: true };
      assert.deepEqual(await runArchive({ ...options, signal: new AbortController().signal }), { read: 300, inserted: 300 });
      await producer.send('events', variedMessages(50));
      assert.deepEqual(await runArchive({ ...options, signal: new AbortController().signal }), { read: 50, inserted: 50 });
      const { rows } = await db.query<Row>('SELECT * FROM archived_messages');
      await assertArchived(rows, await readAll(log, 'events'));
    } finally {
      await db.close();
      await log.close();
    }
  });
});
