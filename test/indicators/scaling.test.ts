import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import pino from 'pino';
import { TickflowError } from '../../src/core/errors.ts';
import { claimPartitions } from '../../src/db/offset-store.ts';
import type { Database, Queryable } from '../../src/db/types.ts';
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

  it('fenced by a newer claim, or cut off by a database outage, a member rejoins from the committed state', async () => {
    const log = new MemoryLog();
    const topics = { inputTopic: 'prices', outputTopic: 'volatility', deadLetterTopic: 'prices-dlq', group: 'indicators-fenced' };
    await log.createTopics([{ name: 'prices', partitions: 3 }]);
    const { ticks, walks } = seededStream(20, 150, 6);
    let outages = 0;
    let failNext = false;
    const flaky: Database = {
      kind: db.kind,
      description: db.description,
      query: (sql, params) => db.query(sql, params),
      close: async () => {},
      transaction: (fn) =>
        db.transaction((tx) => {
          const wrapped: Queryable = {
            query: (sql, params) => {
              if (failNext && sql.includes('INSERT INTO indicator_state')) {
                failNext = false;
                outages++;
                throw new TickflowError('DB_UNAVAILABLE', 'simulated outage');
              }
              return tx.query(sql, params);
            },
          };
          return fn(wrapped);
        }),
    };
    const controller = new AbortController();
    let fenced = 0;
    const counting = pino({ level: 'warn' }, { write: (line: string) => void (line.includes('fenced by a newer owner') && fenced++) });
    const done = runIndicators({ ...topics, log, db: flaky, logger: counting, signal: controller.signal, window: 100 });
    await produceTicks(log, 'prices', ticks.slice(0, 1000));
    await waitFor('the first part', async () => (await distinctOutputs(log, 'volatility')) === 1000);
    const committed = async () => Number((await schema.query<{ n: string }>('SELECT coalesce(sum(next_offset), 0) AS n FROM stored_offsets WHERE consumer = $1', [topics.group]))[0].n);
    await waitFor('the first part committed', async () => (await committed()) === 1000);
    await claimPartitions(db, topics.group, 'prices', [0, 1, 2]); // a "newer member": the next commit is fenced
    await produceTicks(log, 'prices', ticks.slice(1000, 2000));
    await waitFor('the fence, the rejoin and the second part', async () => fenced === 1 && (await committed()) === 2000);
    failNext = true;
    await produceTicks(log, 'prices', ticks.slice(2000));
    await waitFor('the outage and the rest', async () => outages === 1 && (await committed()) === ticks.length);
    controller.abort();
    await done;
    assert.equal(outages, 1);
    assert.equal(fenced, 1, 'fenced once, then rejoined');
    const check = await checkOutput(log, 'volatility', ticks, walks);
    assert.ok(check.records > ticks.length, 'the fenced and the failed slices were published again');
  });
});
