import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import pino from 'pino';
import type { Database } from '../../src/db/types.ts';
import { MemoryLog } from '../../src/log/memory.ts';
import { runIndicators } from '../../src/pipelines/indicators.ts';
import type { IndicatorsReport } from '../../src/pipelines/indicators.ts';
import { checkOutput, distinctOutputs } from './check-output.ts';
import { privateSchema, produceTicks, seededStream, waitFor } from './fixtures.ts';
import type { PrivateSchema } from './fixtures.ts';

const logger = pino({ level: 'warn' });

describe('indicators across group members (embedded log, real PostgreSQL)', () => {
  let schema: PrivateSchema;
  let db: Database;
  before(async () => {
    schema = await privateSchema('indicators_scale');
    db = await schema.open();
  });
  after(async () => {
    await db.close();
    await schema.drop();
  });

  it('a member joining and one leaving move partitions with their state: values as if one member had run', async () => {
    const log = new MemoryLog();
    const topics = { inputTopic: 'prices', outputTopic: 'volatility', deadLetterTopic: 'prices-dlq', group: 'indicators-scale' };
    await log.createTopics([{ name: 'prices', partitions: 3 }]);
    const { ticks, walks } = seededStream(20, 180, 4);
    const distinct = () => distinctOutputs(log, 'volatility');
    const start = () => {
      const controller = new AbortController();
      const done = runIndicators({ ...topics, log, db, logger, signal: controller.signal, window: 100 });
      return { controller, done };
    };

    const a = start();
    await produceTicks(log, 'prices', ticks.slice(0, 1200));
    await waitFor('member A alone', async () => (await distinct()) === 1200);
    const b = start(); // rebalance: A keeps some partitions, B takes the others with their state
    await waitFor('B to own partitions', async () => (await schema.query('SELECT 1 FROM stored_offsets WHERE consumer = $1 AND generation > 1', [topics.group])).length > 0);
    await produceTicks(log, 'prices', ticks.slice(1200, 2400));
    await waitFor('members A and B', async () => (await distinct()) === 2400);
    a.controller.abort(); // A leaves: B takes every partition
    const aReport: IndicatorsReport = await a.done;
    await produceTicks(log, 'prices', ticks.slice(2400));
    await waitFor('member B alone', async () => (await distinct()) === ticks.length);
    b.controller.abort();
    const bReport: IndicatorsReport = await b.done;

    assert.ok(aReport.read > 1200 && aReport.read < 2400, `A read ${aReport.read}: all of the first part, some of the second`);
    assert.ok(bReport.read > ticks.length - 2400, `B read ${bReport.read}: the partitions A had, after A left`);
    const check = await checkOutput(log, 'volatility', ticks, walks);
    assert.equal(check.distinct, ticks.length);
  });
});
