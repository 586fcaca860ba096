/**
 * `stats` keeps only candidate prices for the outlier scan (src/pipelines/prices-stats.ts):
 * the answer must be the one of keeping every price (`--memory-budget 0`, a second pass),
 * and the outliers those of a plain recomputation, whether one pass settles it or the data
 * moved so much that it falls back to the second pass.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { MemoryLog } from '../../src/log/memory.ts';
import { computeStats } from '../../src/pipelines/prices-stats.ts';
import type { StatsOptions, StatsReport } from '../../src/pipelines/prices-stats.ts';
import { formatTs } from '../../src/core/prices.ts';
import { seededRandom } from '../../src/core/random.ts';
import type { OutlierRule } from '../../src/core/outliers.ts';

interface Tick {
  ts: string;
  symbol: string;
  price: number;
}

async function topicOf(ticks: Tick[], partitions: number): Promise<MemoryLog> {
  const log = new MemoryLog();
  await log.createTopics([{ name: 'prices', partitions }]);
  const producer = await log.producer();
  await producer.send('prices', ticks.map((t, i) => ({ partition: i % partitions, value: JSON.stringify(t) })));
  await producer.close();
  return log;
}

/** Plain recomputation: two-pass mean and sample stddev per symbol, |p − mean| > z·sd. */
function zscoreOutliers(ticks: Tick[], z: number): Tick[] {
  const out: Tick[] = [];
  for (const symbol of new Set(ticks.map((t) => t.symbol))) {
    const mine = ticks.filter((t) => t.symbol === symbol);
    const mean = mine.reduce((a, t) => a + t.price, 0) / mine.length;
    const sd = Math.sqrt(mine.reduce((a, t) => a + (t.price - mean) ** 2, 0) / (mine.length - 1));
    out.push(...mine.filter((t) => Math.abs(t.price - mean) > z * sd));
  }
  return out.sort((a, b) => (a.ts < b.ts ? -1 : a.ts > b.ts ? 1 : a.symbol < b.symbol ? -1 : a.symbol > b.symbol ? 1 : a.price - b.price));
}

function ticksOf(count: number, level: (i: number) => number, seed: string): Tick[] {
  const r = seededRandom(seed);
  const start = Date.UTC(2026, 0, 5, 9);
  return Array.from({ length: count }, (_, i) => {
    const symbol = ['AAA', 'BBB', 'CCC'][i % 3];
    const spike = r.next() < 0.004 ? (r.next() < 0.5 ? -7 : 7) : 0;
    const price = Math.max(0.01, Math.round((level(i) + (r.normal() + spike) * 2) * 100) / 100);
    return { ts: formatTs(start + i * 50), symbol, price };
  });
}

async function both(log: MemoryLog, rule: OutlierRule) {
  const options: StatsOptions = { topic: 'prices', rule, memoryBudgetBytes: 64 << 20 };
  // Outliers as plain objects, so that deepEqual compares every one of them.
  const plain = (report: StatsReport) => ({ ...report, outliers: [...report.outliers] });
  return { kept: plain(await computeStats(log, options)), twoPasses: plain(await computeStats(log, { ...options, memoryBudgetBytes: 0 })) };
}

describe('stats: candidate prices for the outlier scan', () => {
  it('prices around a level: one pass, the outliers of a plain recomputation', async () => {
    const ticks = ticksOf(60_000, () => 100, 'level');
    const log = await topicOf(ticks, 3);
    for (const rule of [{ kind: 'zscore', threshold: 3, stddev: 'sample' }, { kind: 'zscore', threshold: 2, stddev: 'sample' }, { kind: 'mad', threshold: 3.5 }] as OutlierRule[]) {
      const { kept, twoPasses } = await both(log, rule);
      assert.equal(kept.passes, 1, `${rule.kind} ${rule.threshold}: one pass`);
      assert.equal(twoPasses.passes, 2);
      assert.deepEqual({ ...kept, passes: 2 }, twoPasses);
      if (rule.kind === 'zscore') assert.deepEqual(kept.outliers, zscoreOutliers(ticks, rule.threshold));
      assert.ok(kept.outliers.length > 100, `${kept.outliers.length} outliers`);
    }
  });

  it('a level that moves over the topic: a price left out could be an outlier, so a second pass decides', async () => {
    // The first half around 100, the second around 160: the final band is wide and centred
    // between them, the running band narrow, so prices left out lie outside the final band.
    const ticks = ticksOf(60_000, (i) => (i < 30_000 ? 100 : 160), 'moved');
    const log = await topicOf(ticks, 2);
    const rule: OutlierRule = { kind: 'zscore', threshold: 1, stddev: 'sample' };
    const { kept, twoPasses } = await both(log, rule);
    assert.equal(kept.passes, 2, 'fell back to the second pass');
    assert.deepEqual(kept, twoPasses);
    assert.deepEqual(kept.outliers, zscoreOutliers(ticks, 1));
    assert.ok(kept.outliers.length > 0);
  });
});
