/**
 * aggregate stocks, two members of one group catching up a backlog, under each fault: the
 * leader of a partition they read killed, PostgreSQL restarted, PostgreSQL's postmaster
 * killed. The window rows equal a recomputation from the records written — no sample lost,
 * none counted twice, nothing dead-lettered — and the accounting counts every record once.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { forEachMessageIndependently } from '../helpers/independent-reader.ts';
import { BROKERS_FLAG, FAULT_BROKERS, createTopics, deleteTopics, messageCount } from './cluster.ts';
import { FaultRun, KAFKA_LEADER_KILL, PG_KILL, PG_RESTART, killLeader, killPostgres, restartPostgres } from './fault-run.ts';
import { accounting, committedOffsets, freshDatabase, queryRows, suitePostgres, unique } from './suite.ts';
import { tickflow } from './tickflow-process.ts';

const COUNT = 600_000;
const PARTITIONS = 3;
const WINDOW_MS = 2000;
const START = Date.UTC(2024, 4, 1);
const TICKERS = [
  { name: 'AMZN', mean: 1902 },
  { name: 'MSFT', mean: 107 },
  { name: 'AAPL', mean: 215 },
];

/** Record i: 1–3 distinct tickers, integer prices within ±10% of their means, event time START + 10 ms · i. */
function tick(i: number): string {
  let x = (i * 2654435761) >>> 0;
  const next = () => (x = (Math.imul(x ^ (x >>> 15), 2246822507) + 0x9e3779b9) >>> 0);
  const first = next() % 3;
  const n = 1 + (next() % 3);
  const tickers = Array.from({ length: n }, (_, k) => {
    const { name, mean } = TICKERS[(first + k) % 3];
    return { name, price: Math.round(mean * (0.9 + (next() % 2001) / 10_000)) };
  });
  return JSON.stringify({ tickers, ts: new Date(START + 10 * i).toISOString() });
}

interface Window {
  ticker: string;
  start: number;
  count: number;
  sum: number;
  min: number;
  max: number;
}

function recompute(values: readonly string[]): Window[] {
  const windows = new Map<string, Window>();
  for (const value of values) {
    const { tickers, ts } = JSON.parse(value) as { tickers: Array<{ name: string; price: number }>; ts: string };
    const start = Math.floor(Date.parse(ts) / WINDOW_MS) * WINDOW_MS;
    for (const { name, price } of tickers) {
      const key = `${name} ${start}`;
      const w = windows.get(key) ?? { ticker: name, start, count: 0, sum: 0, min: Infinity, max: -Infinity };
      w.count++;
      w.sum += price;
      w.min = Math.min(w.min, price);
      w.max = Math.max(w.max, price);
      windows.set(key, w);
    }
  }
  return [...windows.values()].sort((a, b) => (a.ticker < b.ticker ? -1 : a.ticker > b.ticker ? 1 : a.start - b.start));
}

describe('fault: aggregate stocks (2 members)', () => {
  const topic = unique('stocks-in');
  const created = [topic];
  let expected: Window[];
  let dir: string;
  before(async () => {
    await createTopics([topic], PARTITIONS);
    // A backlog to catch up, written by replay round robin over the partitions (records
    // without a key): event time grows in each partition, so nothing is late.
    dir = await mkdtemp(join(tmpdir(), 'tickflow-faults-stocks-'));
    const file = join(dir, 'stocks.jsonl');
    const lines = Array.from({ length: COUNT }, (_, i) => tick(i));
    await writeFile(file, `${lines.join('\n')}\n`);
    const replayed = await tickflow(['replay', file, '--output', topic, ...BROKERS_FLAG]);
    assert.equal(replayed.code, 0, replayed.stderr);
    assert.equal(await messageCount(topic), COUNT, 'the topic holds the file, once');
    expected = recompute(lines);
  });
  after(() => rm(dir, { recursive: true, force: true }));
  after(() => deleteTopics(created));

  const faults = [
    { fault: KAFKA_LEADER_KILL, inject: () => killLeader(topic, 0) },
    { fault: PG_RESTART, inject: () => restartPostgres(suitePostgres()) },
    { fault: PG_KILL, inject: () => killPostgres(suitePostgres()) },
  ];
  for (const { fault, inject } of faults) {
    it(`${fault} 1 s in: window rows as recomputed, nothing dead-lettered, every record counted once`, async () => {
      const run = new FaultRun('aggregate stocks (2 members)', fault);
      try {
        const deadLetters = unique('stocks-dead');
        created.push(deadLetters);
        await createTopics([deadLetters]);
        const url = await freshDatabase('stocks');
        const group = unique('stocks');
        const args = ['aggregate', 'stocks', '--input', topic, '--group', group, '--dead-letter-topic', deadLetters, '--window', '2s', '--allowed-lateness', '1s',
          '--idle-timeout', '2s', '--commit-interval', '300ms', '--session-timeout', '6s', '--database-url', url, ...BROKERS_FLAG];
        await run.start('member-1', args);
        await run.start('member-2', args);
        const progress = committedOffsets(url, group);
        run.watch(progress);
        await run.strike(inject, { total: COUNT });
        const allClosed = async () =>
          (await progress()) === COUNT &&
          (await queryRows<{ n: string }>(url, 'SELECT count(*) AS n FROM stock_window_state WHERE consumer = $1', [group]))[0].n === '0';
        await run.waitUntil(allClosed, 'every offset committed and every window closed');
        await run.stopAll();
        await run.verify(async () => {
          const rows = await queryRows<{ ticker: string; window_start: Date; window_end: Date; sample_count: string; price_sum: string; price_min: string; price_max: string; avg_price: string }>(
            url,
            'SELECT * FROM stock_windows ORDER BY ticker COLLATE "C", window_start',
          );
          for (const r of rows) {
            assert.equal(r.window_end.getTime() - r.window_start.getTime(), WINDOW_MS);
            assert.ok(Math.abs(Number(r.avg_price) - Number(r.price_sum) / Number(r.sample_count)) < 1e-9, 'the average is sum / count');
          }
          const stored = rows.map((r) => ({ ticker: r.ticker, start: r.window_start.getTime(), count: Number(r.sample_count), sum: Number(r.price_sum), min: Number(r.price_min), max: Number(r.price_max) }));
          assert.equal(stored.length, expected.length, 'one row per (ticker, window)');
          assert.deepEqual(stored, expected);
          const dead = await forEachMessageIndependently(FAULT_BROKERS, deadLetters, () => undefined);
          assert.equal(dead, 0, 'nothing dead-lettered (nothing late)');
          assert.deepEqual(await accounting(url, group), { accepted: COUNT, invalid: 0, late: 0, dropped: 0 }, 'each record accounted for once');
        });
      } finally {
        await run.finish();
      }
    });
  }
});
