/**
 * The event-time guard of `aggregate stocks` on the real Kafka and PostgreSQL: (a) stocks
 * flowing with one record 980 years ahead on one partition — held across a restart,
 * dead-lettered as implausible-time, and every later record aggregated; (c) a stream that
 * truly jumps a day ahead and continues is followed, nothing dropped. Checked against a
 * recomputation from the raw topic (plain JSON.parse and arithmetic) and through the API.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { seededRandom } from '../../src/core/random.ts';
import { encodeStockTick, stockTicks } from '../../src/core/stock-ticks.ts';
import type { Database } from '../../src/db/types.ts';
import { buildApp } from '../../src/http/app.ts';
import { KafkaLog } from '../../src/log/kafka.ts';
import type { Log } from '../../src/log/types.ts';
import { aggregateStocks } from '../../src/pipelines/aggregate-stocks.ts';
import type { AggregateStocksOptions } from '../../src/pipelines/aggregate-stocks.ts';
import { tickflow } from '../helpers/cli.ts';
import { KAFKA_BROKERS } from '../helpers/env.ts';
import { aggregatorCaughtUp, assertSameWindows, isolatedDatabase, readAll, recompute, recordId, storedWindows, uniqueName, waitFor } from './fixtures.ts';
import type { IsolatedDatabase } from './fixtures.ts';

const START = Date.parse('2024-01-01T00:00:00.000Z');
const DAY = 86_400_000;
const WINDOW = 250;
const quiet = { debug() {}, info() {}, warn() {} };
const TICKERS = [{ name: 'AMZN', mean: 1902 }, { name: 'MSFT', mean: 107 }, { name: 'AAPL', mean: 215 }];

function options(topic: string, group: string, signal: AbortSignal, extra: Partial<AggregateStocksOptions> = {}): AggregateStocksOptions {
  // The defaults scaled down with the windows: 250 ms windows, 100 ms lateness, a skew of 1 s.
  return {
    topic, group, deadLetterTopic: `${topic}-dlq`, partitions: 3,
    windowMs: WINDOW, allowedLatenessMs: 100, maxTimeSkewMs: 1_000, idleFlushMs: 500, commitIntervalMs: 200, sessionTimeoutMs: 6_000,
    signal, logger: quiet, ...extra,
  };
}

/** Ticks `from`..`to` − 1 of one seeded stream, 1 ms of event time apart from `start`, keyed by their first ticker. */
function ticks(seed: string, count: number, start: number) {
  const next = stockTicks({ random: seededRandom(seed), tickers: TICKERS, spread: 0.1 });
  return Array.from({ length: count }, (_, i) => {
    const tick = next(start + i);
    return { key: tick.tickers[0].name, value: encodeStockTick(tick) };
  });
}

async function produce(log: Log, topic: string, records: Array<{ key: string; value: string; partition?: number }>): Promise<void> {
  const producer = log.producer();
  try {
    for (let i = 0; i < records.length; i += 500) await producer.send(topic, records.slice(i, i + 500));
  } finally {
    await producer.close();
  }
}

async function run(log: Log, db: Database, topic: string, group: string, until: () => Promise<boolean>, extra: Partial<AggregateStocksOptions> = {}) {
  const controller = new AbortController();
  const running = aggregateStocks(log, db, options(topic, group, controller.signal, extra));
  try {
    await waitFor(until, 'the aggregator');
  } finally {
    controller.abort();
  }
  return running;
}

describe('aggregate stocks: the event-time guard on Kafka and PostgreSQL', () => {
  let isolated: IsolatedDatabase;
  let db: Database;
  let log: Log;
  before(async () => {
    isolated = await isolatedDatabase('stocks_time');
    db = await isolated.open();
    log = new KafkaLog({ brokers: KAFKA_BROKERS });
  });
  after(async () => {
    await log?.close();
    await db?.close();
    await isolated?.drop();
  });

  it('(a) one record 980 years ahead on one partition: held across a restart, dead-lettered implausible-time; every later record aggregated, no window outside the real range, the API serves real windows', async () => {
    const topic = uniqueName('stocks-stray');
    const group = uniqueName('agg');
    await log.createTopics([{ name: topic, partitions: 3 }]);
    const stream = ticks('stray', 4500, START);

    // Phase 1: 1.5 s of stream, then the stray, 980 years ahead, on partition 0.
    await produce(log, topic, stream.slice(0, 1500));
    const strayTime = '3004-01-01T00:00:00.000Z';
    const strayValue = JSON.stringify({ tickers: [{ name: 'AMZN', price: 1 }], ts: strayTime });
    const strayOffset = (await log.offsets(topic))[0].latest;
    await produce(log, topic, [{ key: 'AMZN', value: strayValue, partition: 0 }]);
    const stray = recordId(0, strayOffset);
    const heldRows = async () => (await db.query<{ offset: string }>('SELECT "offset" FROM held_records WHERE consumer = $1', [group])).rows.map((r) => r.offset);
    const stored = async () => {
      const ends = await log.offsets(topic);
      const { rows } = await db.query<{ partition: number; next_offset: string }>('SELECT partition, next_offset FROM stored_offsets WHERE consumer = $1', [group]);
      return ends.every((p) => rows.some((r) => r.partition === p.partition && BigInt(r.next_offset) === p.latest));
    };
    // Stopped mid-stream (no idle flush: the stream goes on after the restart as if it had not paused).
    const first = await run(log, db, topic, group, async () => (await stored()) && (await heldRows()).length === 1, { idleFlushMs: 600_000 });
    assert.equal(first.implausible, 0, 'not yet decided: the stream has not moved on');
    assert.deepEqual(await heldRows(), [String(strayOffset)], 'the stray is kept in PostgreSQL with the offsets');
    const clocks = await db.query<{ stream_time: Date }>('SELECT stream_time FROM stock_partition_clock WHERE consumer = $1', [group]);
    assert.ok(clocks.rows.length > 0 && clocks.rows.every((r) => r.stream_time.getTime() < START + DAY), 'no persisted stream time near 3004');

    // Phase 2 after a restart: the rest of the stream.
    await produce(log, topic, stream.slice(1500));
    const letters = async () => readAll(log, `${topic}-dlq`);
    const second = await run(log, db, topic, group, async () => (await aggregatorCaughtUp(db, log, group, topic)) && (await letters()).length === 1);
    assert.equal(second.implausible, 1);
    assert.equal(second.late, 0, 'no good record was made late');

    const all = await readAll(log, topic);
    assert.equal(all.length, 4501);
    const expected = recompute(all, WINDOW, new Set([stray]));
    assertSameWindows(await storedWindows(db), expected);
    assert.ok((await storedWindows(db)).every((w) => w.start >= START && w.end <= START + 4500 + WINDOW), 'no window outside the real time range');
    assert.equal((await db.query('SELECT 1 FROM stock_window_state WHERE consumer = $1', [group])).rows.length, 0);
    assert.deepEqual(await heldRows(), []);

    const [letter] = await letters();
    const header = (name: string) => letter.headers.find(([k]) => k === name)?.[1].toString();
    assert.equal(header('x-reason'), 'implausible-time');
    assert.equal(recordId(Number(header('x-source-partition')), header('x-source-offset')!), stray);
    assert.equal(letter.value!.toString(), strayValue);
    const skew = Number(header('x-time-skew-ms'));
    assert.ok(Math.abs(skew - (Date.parse(strayTime) - START)) < 10_000, `x-time-skew-ms ${skew}`);
    assert.match(header('x-error')!, /980 years ahead of the partition's stream time 2024-01-01T00:00/);

    // The API: every ticker's latest window is the last real one.
    const app = await buildApp({ db });
    try {
      const response = await app.inject({ method: 'GET', url: '/v1/get-prices' });
      assert.equal(response.statusCode, 200);
      const latest = (response.json() as { data: Array<{ ticker: string; windowStart: string }> }).data;
      const lastReal = new Map<string, number>();
      for (const w of expected) lastReal.set(w.ticker, Math.max(lastReal.get(w.ticker) ?? 0, w.start));
      assert.deepEqual(new Map(latest.map((w) => [w.ticker, Date.parse(w.windowStart)])), lastReal);
    } finally {
      await app.close();
    }

    // monitor: one implausible record in 4,501 is within --max-late-share (1%).
    const monitor = await tickflow(['monitor', '--check', '--topics', topic, '--brokers', KAFKA_BROKERS.join(','), '--database-url', isolated.url]);
    assert.equal(monitor.code, 0, monitor.stdout + monitor.stderr);
    assert.match(monitor.stdout, new RegExp(`${group} +${topic} +4501 +0 +1 time +0\\.02%`));

    // Accounting: every record of the partition accounted for once.
    const counts = await db.query<{ partition: number; accepted: string; invalid: string; late: string }>('SELECT partition, accepted, invalid, late FROM pipeline_counts WHERE consumer = $1 ORDER BY partition', [group]);
    const ends = await log.offsets(topic);
    for (const row of counts.rows) assert.equal(Number(row.accepted) + Number(row.invalid) + Number(row.late), Number(ends[row.partition].latest));
    assert.equal(counts.rows.find((r) => r.partition === 0)!.invalid, '1');
  });

  it('monitor --check fails when a stream loses more than 1% of its records as implausible', async () => {
    const topic = uniqueName('stocks-strays');
    const group = uniqueName('agg');
    await log.createTopics([{ name: topic, partitions: 3 }]);
    const start = START + 60 * DAY;
    const stream = ticks('strays', 2000, start);
    const strays = new Set<number>();
    for (let i = 10; i < 1000; i += 20) strays.add(i); // 50 records a year ahead, never two in a row
    await produce(log, topic, stream.map((r, i) => (strays.has(i) ? { ...r, value: r.value.replace(/"ts":"(\d{4})/, (_m, y: string) => `"ts":"${Number(y) + 1}`) } : r)));
    const summary = await run(log, db, topic, group, async () => (await aggregatorCaughtUp(db, log, group, topic)) && (await readAll(log, `${topic}-dlq`).catch(() => [])).length === 50);
    assert.equal(summary.implausible, 50);
    const monitor = await tickflow(['monitor', '--check', '--topics', topic, '--brokers', KAFKA_BROKERS.join(','), '--database-url', isolated.url]);
    assert.equal(monitor.code, 1, monitor.stdout);
    assert.match(monitor.stdout, new RegExp(`consumer ${group} on ${topic}: 2\\.5% of the 2000 records it read were dead-lettered as late \\(0\\) or implausible \\(implausible-time 50\\)`));
  });

  it('(c) a stream that truly jumps a day ahead and continues is followed: nothing dropped after the jump', async () => {
    const topic = uniqueName('stocks-jump');
    const group = uniqueName('agg');
    await log.createTopics([{ name: topic, partitions: 3 }]);
    const start = START + 30 * DAY; // windows of their own in the shared stock_windows
    await produce(log, topic, [...ticks('before', 2000, start), ...ticks('after', 2000, start + DAY)]);
    const summary = await run(log, db, topic, group, () => aggregatorCaughtUp(db, log, group, topic));
    assert.deepEqual([summary.late, summary.implausible, summary.malformed], [0, 0, 0]);
    assert.equal((await readAll(log, `${topic}-dlq`).catch(() => [])).length, 0, 'nothing dead-lettered');
    const all = await readAll(log, topic);
    const expected = recompute(all, WINDOW);
    assertSameWindows((await storedWindows(db)).filter((w) => w.start >= start && w.start < start + 2 * DAY), expected);
    assert.ok(expected.some((w) => w.start >= start + DAY) && expected.some((w) => w.start < start + DAY));
  });
});
