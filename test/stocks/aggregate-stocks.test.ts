/**
 * aggregate stocks end to end on the real Kafka and PostgreSQL: a known seeded stream
 * (from the real `generate stocks` command) is aggregated, and every Postgres row is
 * compared with a recomputation from the raw topic. Also: dead letters for malformed
 * and late records, two group members splitting the partitions, and the embedded
 * defaults (in-process log, PGlite).
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { partitionForKey } from '../../src/core/murmur2.ts';
import { seededRandom } from '../../src/core/random.ts';
import { encodeStockTick, stockTicks } from '../../src/core/stock-ticks.ts';
import { openDatabase } from '../../src/db/open.ts';
import type { Database } from '../../src/db/types.ts';
import { KafkaLog } from '../../src/log/kafka.ts';
import { MemoryLog } from '../../src/log/memory.ts';
import type { Log } from '../../src/log/types.ts';
import { aggregateStocks } from '../../src/pipelines/aggregate-stocks.ts';
import type { AggregateStocksOptions } from '../../src/pipelines/aggregate-stocks.ts';
import { generateStocks } from '../../src/pipelines/generate-stocks.ts';
import { tickflow } from '../helpers/cli.ts';
import { KAFKA_BROKERS } from '../helpers/env.ts';
import { aggregatorCaughtUp, assertSameWindows, isolatedDatabase, readAll, recompute, recordId, storedWindows, uniqueName, waitFor } from './fixtures.ts';
import type { IsolatedDatabase } from './fixtures.ts';

const START = '2024-01-01T00:00:00.000Z';
const quiet = { debug() {}, info() {}, warn() {} };

function options(topic: string, group: string, signal: AbortSignal, extra: Partial<AggregateStocksOptions> = {}): AggregateStocksOptions {
  return {
    topic, group, deadLetterTopic: `${topic}-dlq`, partitions: 3,
    windowMs: 250, allowedLatenessMs: 100, idleFlushMs: 500, commitIntervalMs: 200, sessionTimeoutMs: 6_000,
    signal, logger: quiet, ...extra,
  };
}

describe('aggregate stocks on Kafka and PostgreSQL', () => {
  let isolated: IsolatedDatabase;
  let db: Database;
  let log: Log;
  before(async () => {
    isolated = await isolatedDatabase('stocks_it');
    db = await isolated.open();
    log = new KafkaLog({ brokers: KAFKA_BROKERS });
  });
  after(async () => {
    await log?.close();
    await db?.close();
    await isolated?.drop();
  });

  it('turns a seeded stream into exactly the windows recomputed from the raw topic; malformed and late records are dead-lettered', async () => {
    const topic = uniqueName('stocks-it');
    const group = uniqueName('agg');
    const generated = await tickflow(['generate', 'stocks', '--output', topic, '--partitions', '3', '--seed', '42', '--count', '3000', '--rate', '1000', '--start', START, '--json', '--brokers', KAFKA_BROKERS.join(',')]);
    assert.equal(generated.code, 0, generated.stderr);
    assert.equal(JSON.parse(generated.stdout).messages, 3000);

    // The topic holds the known seeded stream: the pure generator's messages, keyed by their first ticker.
    const records = await readAll(log, topic);
    const next = stockTicks({ random: seededRandom('42'), tickers: [{ name: 'AMZN', mean: 1902 }, { name: 'MSFT', mean: 107 }, { name: 'AAPL', mean: 215 }], spread: 0.1 });
    const expected = Array.from({ length: 3000 }, (_, i) => next(Date.parse(START) + i));
    const byTime = [...records].sort((a, b) => Date.parse(JSON.parse(a.value!.toString()).ts) - Date.parse(JSON.parse(b.value!.toString()).ts));
    assert.deepEqual(byTime.map((r) => r.value!.toString()), expected.map(encodeStockTick));
    assert.ok(records.every((r) => r.key!.toString() === JSON.parse(r.value!.toString()).tickers[0].name));

    // Bad records after the stream: two malformed, one far behind its partition's stream time.
    const busy = (await log.offsets(topic)).find((p) => p.latest > 0n)!;
    const producer = log.producer();
    const injected = new Map<string, string>();
    for (const [value, reason] of [['not json', 'not-json'], ['{"tickers":[{"name":"AMZN","price":1.5}],"ts":"2024-01-01T00:00:02Z"}', 'bad-price'], [JSON.stringify({ tickers: [{ name: 'AMZN', price: 1900 }], ts: START }), 'late']] as const) {
      const offset = (await log.offsets(topic))[busy.partition].latest;
      await producer.send(topic, [{ partition: busy.partition, value }]);
      injected.set(recordId(busy.partition, offset), reason);
    }
    await producer.close();

    const controller = new AbortController();
    const running = aggregateStocks(log, db, options(topic, group, controller.signal));
    await waitFor(() => aggregatorCaughtUp(db, log, group, topic), 'the aggregator to store the end offsets and close every window');
    controller.abort();
    const summary = await running;
    assert.equal(summary.records, 3003);
    assert.equal(summary.malformed, 2);
    assert.equal(summary.late, 1);

    const letters = await readAll(log, `${topic}-dlq`);
    const header = (r: (typeof letters)[number], name: string) => r.headers.find(([k]) => k === name)?.[1].toString();
    assert.deepEqual(
      new Map(letters.map((r) => [recordId(Number(header(r, 'x-source-partition')), header(r, 'x-source-offset')!), header(r, 'x-reason')])),
      injected,
    );
    const late = letters.find((r) => header(r, 'x-reason') === 'late')!;
    assert.ok(Number(header(late, 'x-lateness-ms')) > 2_000);

    const all = await readAll(log, topic);
    const windows = recompute(all, 250, new Set(injected.keys()));
    assert.ok(new Set(windows.map((w) => w.start)).size >= 12, 'the stream spans at least 12 windows');
    assertSameWindows(await storedWindows(db), windows);
  });

  it('members joining and leaving while data flows split the partitions and together write the same rows as one', async () => {
    // Clean slate for this test's rows: its own schema.
    const own = await isolatedDatabase('stocks_pair');
    const pairDb = await own.open();
    const topic = uniqueName('stocks-pair');
    const group = uniqueName('pair');
    // Tickers whose keys cover all four partitions, so both members get data.
    const tickers: string[] = [];
    for (let i = 0; tickers.length < 4; i++) {
      const name = `P${i}`;
      if (!tickers.some((t) => partitionForKey(Buffer.from(t), 4) === partitionForKey(Buffer.from(name), 4))) tickers.push(name);
    }
    await log.createTopics([{ name: topic, partitions: 4 }]);
    const member = () => {
      const memberLog = new KafkaLog({ brokers: KAFKA_BROKERS });
      const controller = new AbortController();
      const state = { assigned: [] as number[], committed: new Set<number>(), fenced: 0 };
      const done = aggregateStocks(memberLog, pairDb, options(topic, group, controller.signal, {
        partitions: 4,
        onAssigned: ({ partitions }) => (state.assigned = partitions),
        onCommitted: ({ partitions }) => partitions.forEach((p) => state.committed.add(p)),
      })).then((summary) => {
        state.fenced = summary.fenced;
        return memberLog.close();
      });
      return { state, stop: async () => { controller.abort(); await done; } };
    };
    const a = member();
    let b: ReturnType<typeof member> | null = null;
    try {
      await waitFor(() => a.state.assigned.length === 4, 'the first member to hold all four partitions');
      const generating = tickflow(['generate', 'stocks', '--output', topic, '--seed', '7', '--count', '2500', '--rate', '250', '--start', START,
        '--tickers', tickers.map((t, i) => `${t}=${100 * (i + 1)}`).join(','), '--brokers', KAFKA_BROKERS.join(',')]);
      await waitFor(() => a.state.committed.size > 0, 'the first member to commit');
      b = member();
      await waitFor(() => b!.state.assigned.length > 0 && a.state.assigned.length > 0 && [...a.state.assigned, ...b!.state.assigned].sort().join() === '0,1,2,3', 'a split between the two members');
      await waitFor(() => b!.state.committed.size > 0, 'the second member to commit');
      await a.stop(); // leaves mid-stream: the second member takes over its partitions
      await waitFor(() => b!.state.assigned.length === 4, 'the second member to hold all four partitions');
      const generated = await generating;
      assert.equal(generated.code, 0, generated.stderr);
      await waitFor(() => aggregatorCaughtUp(pairDb, log, group, topic), 'the second member to finish');
    } finally {
      await a.stop();
      await b?.stop();
    }
    assertSameWindows(await storedWindows(pairDb), recompute(await readAll(log, topic), 250));
    await pairDb.close();
    await own.drop();
  });
});

describe('aggregate stocks on the embedded defaults (in-process log, PGlite)', () => {
  it('gives the same windows as the recomputation', async () => {
    const log = new MemoryLog();
    const db = await openDatabase({ dataDir: 'memory://' });
    try {
      await generateStocks(log, {
        topic: 'stocks', partitions: 3, rate: 100_000, tickers: [{ name: 'AMZN', mean: 1902 }, { name: 'MSFT', mean: 107 }, { name: 'AAPL', mean: 215 }],
        spread: 0.1, seed: 'embedded', startTime: Date.parse(START), count: 2000, durationMs: null,
      });
      const controller = new AbortController();
      // 2000 ticks 10 µs apart (rounded to ms): 5 ms windows give four of them.
      const running = aggregateStocks(log, db, options('stocks', 'embedded', controller.signal, { windowMs: 5, allowedLatenessMs: 2, idleFlushMs: 200 }));
      await waitFor(() => aggregatorCaughtUp(db, log, 'embedded', 'stocks'), 'the embedded aggregator to finish');
      controller.abort();
      await running;
      assertSameWindows(await storedWindows(db), recompute(await readAll(log, 'stocks'), 5));
    } finally {
      await db.close();
      await log.close();
    }
  });
});
