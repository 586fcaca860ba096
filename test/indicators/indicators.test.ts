import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import pino from 'pino';
import { TickflowError } from '../../src/core/errors.ts';
import type { Database, Queryable } from '../../src/db/types.ts';
import { KafkaLog } from '../../src/log/kafka.ts';
import { runIndicators } from '../../src/pipelines/indicators.ts';
import type { IndicatorsOptions } from '../../src/pipelines/indicators.ts';
import { KAFKA_BROKERS } from '../helpers/env.ts';
import { checkOutput } from './check-output.ts';
import { messageCount, privateSchema, produceTicks, readAll, seededStream, startTickflow, uniqueName, waitFor } from './fixtures.ts';
import { referenceEma } from './reference.ts';
import type { PrivateSchema } from './fixtures.ts';

const logger = pino({ level: 'warn' });

describe('indicators on the real Kafka and PostgreSQL', () => {
  let log: KafkaLog;
  let schema: PrivateSchema;
  let db: Database;
  const created: string[] = [];

  before(async () => {
    log = new KafkaLog({ brokers: KAFKA_BROKERS });
    schema = await privateSchema('indicators_test');
    db = await schema.open();
  });
  after(async () => {
    await log.deleteTopics(created).catch(() => undefined);
    await log.close();
    await db.close();
    await schema.drop();
  });

  function names(label: string) {
    const input = uniqueName(`prices-${label}`);
    const output = uniqueName(`volatility-${label}`);
    const dlq = `${input}-dlq`;
    created.push(input, output, dlq);
    return { inputTopic: input, outputTopic: output, deadLetterTopic: dlq, group: uniqueName(`indicators-${label}`) };
  }

  const options = (topics: ReturnType<typeof names>, extra: Partial<IndicatorsOptions> = {}): IndicatorsOptions => ({
    ...topics,
    log,
    db,
    logger,
    signal: new AbortController().signal,
    window: 100,
    partitions: 3,
    stopAtEnd: true,
    ...extra,
  });

  it('publishes per-symbol EMA and volatility equal to the reference (20 symbols), dead-letters malformed prices', async () => {
    const topics = names('ref');
    await log.createTopics([{ name: topics.inputTopic, partitions: 3 }]);
    const { ticks, walks } = seededStream(20, 160, 1);
    await produceTicks(log, topics.inputTopic, ticks);
    const producer = log.producer();
    await producer.send(topics.inputTopic, [
      { key: 'SYM00', value: 'not json' },
      { key: 'SYM01', value: '{"ts": "2021-03-10 16:21:32.000", "symbol": "SYM01", "price": -1}' },
      { key: 'SYM02', value: null },
    ]);
    await producer.close();

    const report = await runIndicators(options(topics));
    assert.deepEqual(report, { read: ticks.length + 3, published: ticks.length, deadLettered: 3 });
    const check = await checkOutput(log, topics.outputTopic, ticks, walks);
    assert.equal(check.records, ticks.length, 'no duplicates without a crash');

    const dead = await readAll(log, topics.deadLetterTopic);
    const header = (r: (typeof dead)[number], name: string) => r.headers.find(([n]) => n === name)?.[1].toString();
    const reasons = dead.map((r) => header(r, 'x-reason')).sort();
    assert.deepEqual(reasons, ['bad-price', 'empty', 'not-json']);
    const input = await readAll(log, topics.inputTopic);
    for (const letter of dead) {
      assert.equal(header(letter, 'x-pipeline'), 'indicators');
      assert.equal(header(letter, 'x-source-topic'), topics.inputTopic);
      const source = input.find((r) => r.partition === Number(header(letter, 'x-source-partition')) && r.offset === BigInt(header(letter, 'x-source-offset')!));
      assert.ok(source, 'the dead letter names its source record');
      assert.deepEqual(letter.value, source.value, 'the original bytes');
      assert.ok(header(letter, 'x-error'));
    }
    assert.equal((await schema.query<{ n: string }>('SELECT count(DISTINCT symbol) AS n FROM indicator_state WHERE consumer = $1', [topics.group]))[0].n, '20');
  });

  it('implausible prices are dead-lettered and never reach the EMA; prices waiting when the member stops are kept and decided after the restart', async () => {
    const topics = names('implausible');
    await log.createTopics([{ name: topics.inputTopic, partitions: 1 }]);
    const send = async (prices: Array<number | string>) => {
      const producer = log.producer();
      await producer.send(topics.inputTopic, prices.map((p) => ({ key: 'ACME', value: `{"ts": "2021-03-10 16:21:32.000", "symbol": "ACME", "price": ${p}}` })));
      await producer.close();
    };
    // The first three prices: no level yet (five must agree), so all three wait.
    await send(['1e300', 100, 101]);
    const stop = new AbortController();
    const running = runIndicators(options(topics, { stopAtEnd: false, signal: stop.signal }));
    await waitFor('three held records', async () => (await schema.query('SELECT 1 FROM held_records WHERE consumer = $1', [topics.group])).length === 3);
    stop.abort();
    assert.equal((await running).published, 0, 'nothing published while the level is undecided');
    assert.equal(await messageCount(log, topics.outputTopic), 0);

    // Restarted: two more prices settle the level (100.5 = the median of five), the first 1e300 is refused.
    await send([99, 100.5, 250, '1.0e300', 100.7]);
    await runIndicators(options(topics));
    const outputs = (await readAll(log, topics.outputTopic)).map((r) => JSON.parse(r.value!.toString()) as { price: number; ema: number; seq: number });
    const taken = [100, 101, 99, 100.5, 250, 100.7];
    assert.deepEqual(outputs.map((o) => o.price), taken);
    assert.deepEqual(outputs.map((o) => o.seq), [1, 2, 3, 4, 5, 6]);
    outputs.forEach((o, i) => assert.ok(Math.abs(o.ema - referenceEma(taken, 100, i)) < 1e-9, `ema ${i}`));

    const input = await readAll(log, topics.inputTopic);
    const dead = await readAll(log, topics.deadLetterTopic);
    const header = (r: (typeof dead)[number], name: string) => r.headers.find(([n]) => n === name)?.[1].toString();
    assert.deepEqual(dead.map((r) => [header(r, 'x-reason'), header(r, 'x-source-offset')]), [['implausible-price', '0'], ['implausible-price', '6']]);
    for (const letter of dead) assert.deepEqual(letter.value, input[Number(header(letter, 'x-source-offset'))].value, 'the original bytes');
    assert.equal(header(dead[1], 'x-reference-price'), '100.5');
    assert.equal((await schema.query('SELECT 1 FROM held_records WHERE consumer = $1', [topics.group])).length, 0, 'nothing held any more');
    const [counts] = await schema.query<{ accepted: string; invalid: string }>('SELECT accepted, invalid FROM pipeline_counts WHERE consumer = $1', [topics.group]);
    assert.deepEqual(counts, { accepted: '6', invalid: '2' }, 'every record accounted for once');
  });

  it('a ts 978 years ahead is held (kept across a restart), never reaches the EMA, and is dead-lettered implausible-time at the end', async () => {
    const topics = names('implausible-time');
    await log.createTopics([{ name: topics.inputTopic, partitions: 1 }]);
    const t0 = Date.UTC(2021, 2, 10, 16, 0, 0);
    const send = async (values: string[]) => {
      const producer = log.producer();
      await producer.send(topics.inputTopic, values.map((value) => ({ key: 'ACME', value })));
      await producer.close();
    };
    const good = (i: number) => JSON.stringify({ ts: new Date(t0 + i * 1000).toISOString(), symbol: 'ACME', price: 100 + (i % 7) });
    const stray = JSON.stringify({ ts: '2999-03-10 16:00:10.000', symbol: 'ACME', price: 1 });
    await send([...Array.from({ length: 10 }, (_, i) => good(i)), stray, ...Array.from({ length: 5 }, (_, i) => good(10 + i))]);
    const stop = new AbortController();
    const running = runIndicators(options(topics, { stopAtEnd: false, signal: stop.signal }));
    await waitFor('15 outputs and the stray held', async () =>
      (await messageCount(log, topics.outputTopic).catch(() => 0)) === 15 &&
      (await schema.query('SELECT 1 FROM held_records WHERE consumer = $1', [topics.group])).length === 1);
    stop.abort();
    await running;
    const [kept] = await schema.query<{ state: { held: Array<{ item: string }> } }>('SELECT state FROM event_time_guards WHERE consumer = $1', [topics.group]);
    assert.deepEqual(kept.state.held.map((h) => h.item), ['10'], 'the guard names the held record by offset');

    await send(Array.from({ length: 5 }, (_, i) => good(15 + i)));
    await runIndicators(options(topics));
    const outputs = (await readAll(log, topics.outputTopic)).map((r) => JSON.parse(r.value!.toString()) as { price: number; ts: string });
    assert.equal(outputs.length, 20);
    assert.ok(outputs.every((o) => o.price !== 1 && o.ts.startsWith('2021-')), 'the stray never reached the indicators');
    const dead = await readAll(log, topics.deadLetterTopic);
    assert.equal(dead.length, 1);
    const header = (name: string) => dead[0].headers.find(([n]) => n === name)?.[1].toString();
    assert.equal(header('x-reason'), 'implausible-time');
    assert.equal(header('x-source-offset'), '10');
    assert.equal(dead[0].value!.toString(), stray);
    const skew = Number(header('x-time-skew-ms'));
    assert.ok(Math.abs(skew - (Date.UTC(2999, 2, 10, 16, 0, 10) - t0)) < 60_000, `x-time-skew-ms ${skew}`);
    assert.match(header('x-error')!, /978(\.\d)? years ahead of the partition's stream time/);
    const [counts] = await schema.query<{ accepted: string; invalid: string }>('SELECT accepted, invalid FROM pipeline_counts WHERE consumer = $1', [topics.group]);
    assert.deepEqual(counts, { accepted: '20', invalid: '1' });
  });

  /** The database, except that the first commit fails: in its state write, or (`afterWrites`) once everything in it ran, just before COMMIT. */
  function crashingOnce(afterWrites: boolean): Database {
    let failed = false;
    return {
      kind: db.kind,
      description: db.description,
      query: (sql, params) => db.query(sql, params),
      close: async () => {},
      transaction: (fn) =>
        db.transaction(async (tx) => {
          let writesState = false;
          const failOnce: Queryable = {
            query: (sql, params) => {
              if (sql.includes('INSERT INTO indicator_state')) writesState = true;
              if (!afterWrites && !failed && writesState) {
                failed = true;
                throw new TickflowError('DB_ERROR', 'simulated crash before the commit');
              }
              return tx.query(sql, params);
            },
          };
          const result = await fn(failOnce);
          if (afterWrites && !failed && writesState) {
            failed = true;
            throw new TickflowError('DB_ERROR', 'simulated crash before the commit');
          }
          return result;
        }),
    };
  }

  it('exactly once: a crash before the state commits aborts the outputs; one after the Kafka commit replays silently', async () => {
    for (const afterWrites of [false, true]) {
      const topics = names(afterWrites ? 'crash-eo-late' : 'crash-eo');
      await log.createTopics([{ name: topics.inputTopic, partitions: 3 }]);
      const { ticks, walks } = seededStream(20, 120, 2);
      await produceTicks(log, topics.inputTopic, ticks);
      await assert.rejects(runIndicators(options(topics, { db: crashingOnce(afterWrites), exactlyOnce: true })), /simulated crash/);
      const visible = await messageCount(log, topics.outputTopic);
      // Before the Kafka commit: nothing visible. After it (PostgreSQL rolled back): the first interval is out.
      if (afterWrites) assert.ok(visible > 0, `what the failed commit sent is in Kafka (${visible})`);
      else assert.equal(visible, 0, 'the outputs of the failed commit are never visible');
      const rerun = await runIndicators(options(topics, { exactlyOnce: true }));
      assert.equal(rerun.published, ticks.length - visible, 'the replay sends only what was not committed');
      const check = await checkOutput(log, topics.outputTopic, ticks, walks);
      assert.equal(check.distinct, ticks.length);
      assert.equal(check.records, ticks.length, 'each output once');
    }
  });

  it('at least once: a crash between publishing and committing replays the batch with identical values', async () => {
    const topics = names('crash');
    await log.createTopics([{ name: topics.inputTopic, partitions: 3 }]);
    const { ticks, walks } = seededStream(20, 120, 2);
    await produceTicks(log, topics.inputTopic, ticks);
    // The first state commit fails after its outputs were published: a crash at the worst moment.
    let failed = false;
    const crashing: Database = {
      kind: db.kind,
      description: db.description,
      query: (sql, params) => db.query(sql, params),
      close: async () => {},
      transaction: (fn) =>
        db.transaction((tx) => {
          const failOnce: Queryable = {
            query: (sql, params) => {
              if (!failed && sql.includes('INSERT INTO indicator_state')) {
                failed = true;
                throw new TickflowError('DB_ERROR', 'simulated crash before the commit');
              }
              return tx.query(sql, params);
            },
          };
          return fn(failOnce);
        }),
    };
    await assert.rejects(runIndicators(options(topics, { db: crashing, exactlyOnce: false })), /simulated crash/);
    const published = await messageCount(log, topics.outputTopic);
    assert.ok(published > 0, 'the failed batch was published');
    await runIndicators(options(topics, { exactlyOnce: false }));
    const check = await checkOutput(log, topics.outputTopic, ticks, walks);
    assert.equal(check.distinct, ticks.length);
    assert.equal(check.records, ticks.length + published, 'the replayed batch repeats exactly what was published');
  });

  it('restarted mid-stream (SIGTERM, then kill -9), the CLI continues as if it had never stopped', async () => {
    const topics = names('restart');
    await log.createTopics([{ name: topics.inputTopic, partitions: 3 }]);
    const { ticks, walks } = seededStream(20, 240, 3);
    const args = [
      'indicators', '--input', topics.inputTopic, '--output', topics.outputTopic, '--dead-letter-topic', topics.deadLetterTopic,
      '--group', topics.group, '--brokers', KAFKA_BROKERS.join(','), '--database-url', schema.url,
    ];
    const thirds = [ticks.slice(0, 1600), ticks.slice(1600, 3200), ticks.slice(3200)];

    // 1. A first third, processed, then a graceful stop (SIGTERM: finish the batch, commit, exit 0).
    await produceTicks(log, topics.inputTopic, thirds[0]);
    let running = startTickflow(args);
    await waitFor('the first third', async () => (await messageCount(log, topics.outputTopic).catch(() => 0)) >= thirds[0].length);
    running.child.kill('SIGTERM');
    let exit = await running.exited;
    assert.equal(exit.code, 0, exit.stderr);
    assert.equal(await messageCount(log, topics.outputTopic), thirds[0].length, 'a graceful stop publishes nothing twice');

    // 2. Restarted while the second third streams in; killed -9 part way.
    running = startTickflow(args);
    for (let i = 0; i < thirds[1].length; i += 200) {
      await produceTicks(log, topics.inputTopic, thirds[1].slice(i, i + 200));
      if (i === 800) await waitFor('outputs of the second third', async () => (await messageCount(log, topics.outputTopic)) > thirds[0].length);
    }
    running.child.kill('SIGKILL');
    exit = await running.exited;
    assert.equal(exit.signal, 'SIGKILL');

    // 3. The rest arrives while it is down; a restart catches up and stops at the end.
    await produceTicks(log, topics.inputTopic, thirds[2]);
    exit = await startTickflow([...args, '--until-end', '--json']).exited;
    assert.equal(exit.code, 0, exit.stderr);
    const check = await checkOutput(log, topics.outputTopic, ticks, walks);
    assert.equal(check.distinct, ticks.length, 'every price has its indicators');
    assert.equal(check.records, ticks.length, 'exactly once (the default): no repeat after kill -9');
  });
});
