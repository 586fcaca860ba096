/**
 * stats (two passes over a fixed snapshot) while the leader of a partition it reads is
 * killed: the count, the per-symbol statistics and the outliers equal a plain recomputation
 * from the topic read by an independent client.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { forEachMessageIndependently } from '../helpers/independent-reader.ts';
import { BROKERS_FLAG, FAULT_BROKERS, createTopics, deleteTopics } from './cluster.ts';
import { FaultRun, KAFKA_LEADER_KILL, killLeader } from './fault-run.ts';
import { unique } from './suite.ts';
import { tickflow } from './tickflow-process.ts';

const COUNT = 600_000;

interface SymbolStats {
  symbol: string;
  count: number;
  min: number;
  max: number;
  mean: number;
  stddev: number;
}
interface Outlier {
  ts: string;
  symbol: string;
  price: number;
}

/** Plain two-pass statistics: mean, sample standard deviation, |p − mean| > 3 sd. */
async function recompute(topic: string): Promise<{ count: number; symbols: SymbolStats[]; outliers: Outlier[] }> {
  const ticks = new Map<string, Array<{ ts: string; price: number }>>();
  const count = await forEachMessageIndependently(FAULT_BROKERS, topic, (m) => {
    const { ts, symbol, price } = JSON.parse(m.value!) as Outlier;
    let list = ticks.get(symbol);
    if (!list) ticks.set(symbol, (list = []));
    list.push({ ts, price });
  });
  const symbols: SymbolStats[] = [];
  const outliers: Outlier[] = [];
  for (const symbol of [...ticks.keys()].sort()) {
    const list = ticks.get(symbol)!;
    let sum = 0;
    let min = Infinity;
    let max = -Infinity;
    for (const { price } of list) {
      sum += price;
      min = Math.min(min, price);
      max = Math.max(max, price);
    }
    const mean = sum / list.length;
    let squares = 0;
    for (const { price } of list) squares += (price - mean) ** 2;
    const stddev = Math.sqrt(squares / (list.length - 1));
    symbols.push({ symbol, count: list.length, min, max, mean, stddev });
    for (const t of list) if (Math.abs(t.price - mean) > 3 * stddev) outliers.push({ ts: t.ts, symbol, price: t.price });
  }
  outliers.sort((a, b) => (a.ts < b.ts ? -1 : a.ts > b.ts ? 1 : a.symbol < b.symbol ? -1 : a.symbol > b.symbol ? 1 : a.price - b.price));
  return { count, symbols, outliers };
}

describe('fault: stats', () => {
  const topic = unique('stats');
  before(async () => {
    await createTopics([topic]);
    const produced = await tickflow(['produce', 'prices', '--output', topic, '-n', String(COUNT), '--seed', 'faults-stats', ...BROKERS_FLAG]);
    assert.equal(produced.code, 0, produced.stderr);
  });
  after(() => deleteTopics([topic]));

  it(`${KAFKA_LEADER_KILL} 1 s in: count, statistics and outliers equal the recomputation`, async () => {
    const run = new FaultRun('stats', KAFKA_LEADER_KILL);
    try {
      // --memory-budget 0: two passes over the snapshot, twice the reading to ride through.
      const stats = await run.start('stats', ['stats', '--input', topic, '--memory-budget', '0', '--json', ...BROKERS_FLAG]);
      run.watch(() => stats.metric(['tickflow_records_in_total'], { pipeline: 'stats' }));
      await run.strike(() => killLeader(topic, 0), { total: 2 * COUNT });
      await run.waitForExit();
      await run.verify(async () => {
        const report = JSON.parse(stats.stdout) as { count: number; symbols: SymbolStats[]; outliers: Outlier[]; invalid: number };
        const expected = await recompute(topic);
        assert.equal(expected.count, COUNT);
        assert.equal(report.count, COUNT, 'every message of the snapshot counted once');
        assert.equal(report.invalid, 0);
        assert.deepEqual(report.symbols.map((s) => [s.symbol, s.count, s.min, s.max]), expected.symbols.map((s) => [s.symbol, s.count, s.min, s.max]));
        report.symbols.forEach((s, i) => {
          for (const field of ['mean', 'stddev'] as const) {
            const e = expected.symbols[i][field];
            assert.ok(Math.abs(s[field] - e) <= 1e-9 * Math.abs(e), `${s.symbol} ${field}: ${s[field]} vs ${e}`);
          }
        });
        assert.deepEqual(report.outliers, expected.outliers);
        assert.ok(report.outliers.length > 0, 'the injected anomalies are found');
      });
    } finally {
      await run.finish();
    }
  });
});
