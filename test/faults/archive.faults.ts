/**
 * archive (the service) under each fault: the leader of a partition it reads killed,
 * PostgreSQL restarted, PostgreSQL's postmaster killed. Every message of the topic ends up
 * as exactly one row, key and value byte for byte as an independent client reads them, and
 * the accounting kept with the offsets counts each message once.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { forEachMessageIndependently } from '../helpers/independent-reader.ts';
import { BROKERS_FLAG, FAULT_BROKERS, createTopics, deleteTopics } from './cluster.ts';
import { FaultRun, KAFKA_LEADER_KILL, PG_KILL, PG_RESTART, killLeader, killPostgres, restartPostgres } from './fault-run.ts';
import { accounting, committedOffsets, freshDatabase, queryRows, suitePostgres, unique } from './suite.ts';
import { tickflow } from './tickflow-process.ts';

const COUNT = 200_000;

describe('fault: archive', () => {
  const topic = unique('archive-in');
  const deadLetters = unique('archive-dead');
  const messages = new Map<string, { key: string | null; value: string | null }>();
  before(async () => {
    await createTopics([topic, deadLetters]);
    const produced = await tickflow(['produce', 'prices', '--output', topic, '-n', String(COUNT), '--seed', 'faults-archive', ...BROKERS_FLAG]);
    assert.equal(produced.code, 0, produced.stderr);
    await forEachMessageIndependently(FAULT_BROKERS, topic, (m) => void messages.set(`${m.partition}@${m.offset}`, { key: m.key, value: m.value }));
    assert.equal(messages.size, COUNT);
  });
  after(() => deleteTopics([topic, deadLetters]));

  const faults = [
    { fault: KAFKA_LEADER_KILL, inject: () => killLeader(topic, 0) },
    { fault: PG_RESTART, inject: () => restartPostgres(suitePostgres()) },
    { fault: PG_KILL, inject: () => killPostgres(suitePostgres()) },
  ];
  for (const { fault, inject } of faults) {
    it(`${fault} 1 s in: one row per message, byte for byte, each counted once`, async () => {
      const run = new FaultRun('archive', fault);
      try {
        const url = await freshDatabase('archive');
        const group = unique('archive');
        await run.start('archive', ['archive', '--input', topic, '--group', group, '--dead-letter-topic', deadLetters, '--database-url', url, ...BROKERS_FLAG]);
        const progress = committedOffsets(url, group);
        run.watch(progress);
        await run.strike(inject, { total: COUNT });
        await run.waitUntil(async () => (await progress()) === COUNT, `all ${COUNT} offsets committed`);
        await run.stopAll();
        await run.verify(async () => {
          const rows = await queryRows<{ partition: number; offset: string; key: Buffer | null; value: Buffer | null }>(url, 'SELECT partition, "offset", key, value FROM archived_messages WHERE topic = $1', [topic]);
          assert.equal(rows.length, COUNT, `exactly ${COUNT} rows`);
          let differ = 0;
          for (const row of rows) {
            const m = messages.get(`${row.partition}@${row.offset}`);
            if (!m || m.key !== (row.key?.toString() ?? null) || m.value !== (row.value?.toString() ?? null)) differ++;
          }
          assert.equal(differ, 0, 'every row is its message, byte for byte');
          assert.deepEqual(await accounting(url, group), { accepted: COUNT, invalid: 0, late: 0, dropped: 0 }, 'each message accounted for once');
        });
      } finally {
        await run.finish();
      }
    });
  }
});
