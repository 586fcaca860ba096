import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { RunningStats, ValueCounts } from '../../src/core/stats.ts';
import { outlierTest } from '../../src/core/outliers.ts';
import { seededRandom } from '../../src/core/random.ts';

/** The textbook two-pass computation, as an independent reference. */
function twoPass(values: number[]) {
  const mean = values.reduce((s, x) => s + x, 0) / values.length;
  const m2 = values.reduce((s, x) => s + (x - mean) ** 2, 0);
  return { mean, sample: Math.sqrt(m2 / (values.length - 1)), population: Math.sqrt(m2 / values.length) };
}

const close = (actual: number, expected: number, rel = 1e-9) =>
  assert.ok(Math.abs(actual - expected) <= rel * Math.abs(expected), `${actual} vs ${expected}`);

describe('RunningStats (Welford, Chan merge)', () => {
  it('matches the two-pass result on prices near 1e9 that move by cents', () => {
    const r = seededRandom('adversarial');
    const values = Array.from({ length: 100_000 }, () => 1e9 + Math.round(r.normal() * 3) / 100);
    const stats = new RunningStats();
    for (const v of values) stats.push(v);
    // Reference: two passes over the exact differences from 1e9 (subtracting nearby floats is exact).
    const ref = twoPass(values.map((v) => v - 1e9));
    close(stats.mean, 1e9 + ref.mean, 1e-15);
    close(stats.stddev('sample'), ref.sample, 1e-9);
    close(stats.stddev('population'), ref.population, 1e-9);
    // Merging partitions keeps that precision.
    const halves = [new RunningStats(), new RunningStats()];
    values.forEach((v, i) => halves[i < 40_000 ? 0 : 1].push(v));
    close(halves[0].merge(halves[1]).stddev('sample'), ref.sample, 1e-9);
    // The naive sum-of-squares formula is what this guards against: it is wrong here.
    const n = values.length;
    const sum = values.reduce((s, x) => s + x, 0);
    const sumSq = values.reduce((s, x) => s + x * x, 0);
    const naive = Math.sqrt(Math.max(0, (sumSq - (sum * sum) / n) / (n - 1)));
    assert.ok(Math.abs(naive - ref.sample) > 0.1 * ref.sample, `naive ${naive} vs ${ref.sample}`);
  });

  it('merges partitions to the same result as one pass', () => {
    const r = seededRandom('merge');
    const values = Array.from({ length: 30_001 }, () => 500 + r.normal() * 20);
    const whole = new RunningStats();
    for (const v of values) whole.push(v);
    const parts = [new RunningStats(), new RunningStats(), new RunningStats(), new RunningStats()];
    values.forEach((v, i) => parts[i % 7 === 0 ? 3 : i % 3].push(v));
    const merged = parts.reduce((acc, p) => acc.merge(p), new RunningStats());
    assert.equal(merged.count, whole.count);
    close(merged.mean, whole.mean, 1e-12);
    close(merged.stddev(), whole.stddev(), 1e-12);
    assert.equal(merged.min, Math.min(...values));
    assert.equal(merged.max, Math.max(...values));
    assert.equal(new RunningStats().merge(new RunningStats()).count, 0);
  });

  it('reports NaN stddev below two values (sample) and 0 for one value (population)', () => {
    const one = new RunningStats();
    one.push(5);
    assert.ok(Number.isNaN(one.stddev('sample')));
    assert.equal(one.stddev('population'), 0);
  });
});

describe('ValueCounts (exact median and MAD)', () => {
  const sortedMedian = (xs: number[]) => {
    const s = [...xs].sort((a, b) => a - b);
    return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
  };
  for (const length of [1, 2, 7, 1000, 1001]) {
    it(`matches a sorted-array median and MAD on ${length} cent prices`, () => {
      const r = seededRandom(length);
      const values = Array.from({ length }, () => Math.round((100 + r.normal() * 2) * 100) / 100);
      const counts = new ValueCounts();
      for (const v of values) counts.push(v);
      const median = sortedMedian(values);
      assert.equal(counts.median(), median);
      assert.equal(counts.mad(), sortedMedian(values.map((v) => Math.abs(v - median))));
    });
  }
});

describe('outlier rules', () => {
  const values = [10, 10.5, 9.5, 10.2, 9.8, 10.1, 9.9, 50];
  const stats = new RunningStats();
  const counts = new ValueCounts();
  for (const v of values) {
    stats.push(v);
    counts.push(v);
  }
  it('zscore: one big anomaly inflates the stddev and hides itself at z=3, shows at z=2', () => {
    assert.deepEqual(values.filter(outlierTest({ kind: 'zscore', threshold: 3, stddev: 'sample' }, stats)), []);
    assert.deepEqual(values.filter(outlierTest({ kind: 'zscore', threshold: 2, stddev: 'sample' }, stats)), [50]);
  });
  it('mad: the robust rule catches it at the usual 3.5', () => {
    assert.deepEqual(values.filter(outlierTest({ kind: 'mad', threshold: 3.5 }, stats, counts)), [50]);
  });
  it('mad: falls back to the mean absolute deviation when over half the values are equal', () => {
    const c = new ValueCounts();
    for (const v of [5, 5, 5, 5, 5, 6, 40]) c.push(v);
    assert.equal(c.mad(), 0);
    assert.deepEqual([5, 6, 40].filter(outlierTest({ kind: 'mad', threshold: 3.5 }, stats, c)), [40]);
  });
});
