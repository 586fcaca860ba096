/**
 * Reconciliation while a sink is running: the sink commits its offsets and counts together,
 * and the producer keeps writing. Here a sink step (7 more records written, read, counted
 * and committed with their offset) lands before every read the snapshot makes of the
 * database: the worst interleaving. A consistent sink must show no problem — no "extra"
 * records from counts read after the offsets, no position "past the log end" from a log
 * end read before the positions.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { saveOffsets } from '../../src/db/offset-store.ts';
import { addCounts } from '../../src/db/pipeline-counts.ts';
import type { Database, Queryable } from '../../src/db/types.ts';
import { MemoryLog } from '../../src/log/memory.ts';
import { collectSnapshot } from '../../src/observability/reconciliation.ts';
import { isolatedDatabase } from '../stocks/fixtures.ts';
import type { IsolatedDatabase } from '../stocks/fixtures.ts';

const TOPIC = 'ticks';
const SINK = 'busy-sink';
const STEP = 7;

describe('reconciliation of a sink that commits while it is read', () => {
  let isolated: IsolatedDatabase;
  let db: Database;
  let log: MemoryLog;
  let written = 0;
  let steps = 0;

  /** The producer writes STEP records; the sink reads them and commits offset and counts in one transaction. */
  const sinkStep = async () => {
    await log.producer().send(TOPIC, Array.from({ length: STEP }, (_, i) => ({ value: `r${written + i}` })));
    written += STEP;
    await db.transaction(async (tx) => {
      await saveOffsets(tx, SINK, TOPIC, new Map([[0, BigInt(written)]]), 0);
      await addCounts(tx, SINK, TOPIC, new Map([[0, { firstOffset: 0n, accepted: STEP, invalid: 0, late: 0, dropped: 0 }]]));
    });
    steps++;
  };

  before(async () => {
    isolated = await isolatedDatabase('reconcile_race');
    db = await isolated.open();
    log = new MemoryLog();
    await log.createTopics([{ name: TOPIC, partitions: 1 }]);
    for (let i = 0; i < 10; i++) await sinkStep();
  });
  after(async () => {
    await log?.close();
    await db?.close();
    await isolated?.drop();
  });

  it('finds no problem when a commit lands before each of its database reads', async () => {
    const racing: Queryable = {
      query: async (sql, params) => {
        await sinkStep();
        return db.query(sql, params);
      },
    };
    const before = steps;
    const snapshot = await collectSnapshot(log, racing, { topics: [TOPIC] });
    assert.ok(steps - before >= 2, `the sink committed between the reads (${steps - before} times)`);
    assert.deepEqual(snapshot.problems, []);
    const accounting = snapshot.accounting.find((a) => a.consumer === SINK)!;
    assert.equal(accounting.unaccounted, 0);
    assert.equal(accounting.advanced, accounting.accepted);
    assert.ok(accounting.advanced >= 10 * STEP && accounting.advanced % STEP === 0, `advanced ${accounting.advanced}`);
    const consumer = snapshot.consumers.find((c) => c.name === SINK)!;
    assert.ok(consumer.lag >= 0, `lag ${consumer.lag}`);
    assert.equal(Number(consumer.partitions[0].latest) - Number(consumer.partitions[0].position), consumer.lag);
  });

  it('still reports a real disagreement: counts short of the offset', async () => {
    await log.producer().send(TOPIC, [{ value: 'uncounted' }]);
    written += 1;
    await db.transaction((tx) => saveOffsets(tx, SINK, TOPIC, new Map([[0, BigInt(written)]]), 0)); // advanced without counting
    const snapshot = await collectSnapshot(log, db, { topics: [TOPIC] });
    assert.deepEqual(snapshot.problems.map((p) => p.message.replace(/^advanced over \d+ records but accounted for \d+ /, '')), ['(accepted ' + (written - 1) + ', invalid 0, late 0, dropped 0): 1 missing']);
  });
});
