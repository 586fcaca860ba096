import type { RunningStats, ValueCounts } from './stats.ts';

/**
 * Outlier rules over one symbol's statistics.
 * - `zscore`: |price − mean| > threshold × stddev (the default, threshold 3).
 * - `mad`: the modified z-score of Iglewicz and Hoaglin, 0.6745 × |price − median| / MAD >
 *   threshold (3.5 recommended). Robust: a few huge anomalies do not widen the band that
 *   should catch them. When more than half the prices are equal (MAD = 0), the scale falls
 *   back to 1.2533 × the mean absolute deviation, as they suggest.
 */
export type OutlierRule =
  | { kind: 'zscore'; threshold: number; stddev: 'sample' | 'population' }
  | { kind: 'mad'; threshold: number };

export function describeRule(rule: OutlierRule): string {
  return rule.kind === 'zscore'
    ? `|price - mean| > ${rule.threshold} x ${rule.stddev} stddev`
    : `0.6745 x |price - median| / MAD > ${rule.threshold}`;
}

/** Returns the predicate for one symbol; it never flags anything when the scale is 0 or undefined. */
export function outlierTest(rule: OutlierRule, stats: RunningStats, counts?: ValueCounts): (price: number) => boolean {
  if (rule.kind === 'zscore') {
    const limit = rule.threshold * stats.stddev(rule.stddev);
    if (!(limit > 0)) return () => false;
    const mean = stats.mean;
    return (price) => Math.abs(price - mean) > limit;
  }
  if (!counts) throw new Error('the mad rule needs value counts');
  const median = counts.median();
  const mad = counts.mad();
  const scale = mad > 0 ? mad / 0.6745 : 1.2533 * counts.meanAbsoluteDeviation();
  if (!(scale > 0)) return () => false;
  const limit = rule.threshold * scale;
  return (price) => Math.abs(price - median) > limit;
}
