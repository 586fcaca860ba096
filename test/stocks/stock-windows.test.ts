import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { PartitionWindows, mergeTickerWindows, summaryOf } from '../../src/core/stock-windows.ts';
import type { TickerWindow } from '../../src/core/stock-windows.ts';
import type { StockTick } from '../../src/core/stock-ticks.ts';

const tick = (eventTime: number, ...prices: Array<[string, number]>): StockTick => ({ eventTime, tickers: prices.map(([name, price]) => ({ name, price })) });
const windowsOf = (options: Partial<{ windowMs: number; allowedLatenessMs: number; idleFlushMs: number; wallNow: number }> = {}) =>
  new PartitionWindows({ windowMs: 10, allowedLatenessMs: 3, idleFlushMs: 100, wallNow: 0, ...options });
const row = (ticker: string, start: number, end: number, count: number, sum: number, min: number, max: number): TickerWindow => ({ ticker, start, end, summary: { count, sum, min, max } });

describe('PartitionWindows (ticks in, closed windows out)', () => {
  it('closes a window when max event time − lateness reaches its end, with count, sum, min, max', () => {
    const w = windowsOf();
    w.add(tick(1, ['A', 10], ['B', 5]), 0);
    w.add(tick(9, ['A', 20]), 0);
    w.add(tick(12, ['A', 7]), 0);
    assert.deepEqual(w.close(), []); // watermark 9 < 10
    w.add(tick(13, ['B', 1]), 0); // watermark 10: [0, 10) closes
    assert.deepEqual(w.close(), [row('A', 0, 10, 2, 30, 10, 20), row('B', 0, 10, 1, 5, 5, 5)]);
    assert.equal(w.watermark, 10);
    assert.deepEqual(w.snapshot(), { streamTime: 13, open: [row('A', 10, 20, 1, 7, 7, 7), row('B', 10, 20, 1, 1, 1, 1)] });
  });

  const lateness: Array<{ name: string; ticks: number[]; late: number[] }> = [
    { name: 'within the lateness', ticks: [12, 8], late: [] },
    { name: 'out of order inside an open window', ticks: [5, 1, 4], late: [] },
    { name: 'beyond the lateness', ticks: [14, 9], late: [9] },
    { name: 'exactly at the bound (window end = watermark)', ticks: [13, 9], late: [9] },
    { name: 'late then on time', ticks: [25, 3, 24], late: [3] },
  ];
  for (const { name, ticks, late } of lateness) {
    it(`judges lateness: ${name}`, () => {
      const w = windowsOf();
      const refused = ticks.filter((t) => !w.add(tick(t, ['A', 1]), 0).accepted);
      assert.deepEqual(refused, late);
      assert.equal(w.late, late.length);
    });
  }

  it('refuses a late tick as a whole and says how far behind stream time it is', () => {
    const w = windowsOf();
    w.add(tick(20, ['A', 1]), 0);
    assert.deepEqual(w.add(tick(5, ['A', 1], ['B', 2]), 0), { accepted: false, latenessMs: 15 });
    assert.deepEqual(w.snapshot().open.map((o) => o.ticker), ['A']);
  });

  it('idle timer: moves stream time by the wall time since the last record, only when caught up and quiet long enough', () => {
    const w = windowsOf({ idleFlushMs: 100 });
    w.add(tick(5, ['A', 4]), 1_000);
    assert.equal(w.advanceIdle(1_050, true), false, 'quiet for less than the idle flush');
    assert.equal(w.advanceIdle(1_200, false), false, 'records still waiting to be read');
    assert.deepEqual(w.close(), []);
    assert.equal(w.advanceIdle(1_100, true), true);
    assert.equal(w.streamTime, 105);
    assert.deepEqual(w.close(), [row('A', 0, 10, 1, 4, 4, 4)]);
    assert.equal(w.advanceIdle(1_100, true), false, 'no further move at the same wall time');
  });

  it('idle timer: nothing to do before the first record', () => {
    const w = windowsOf();
    assert.equal(w.advanceIdle(10_000, true), false);
    assert.equal(w.streamTime, null);
  });

  it('a snapshot restored at any point continues exactly like the uninterrupted operator', () => {
    const ticks = Array.from({ length: 40 }, (_, i) => tick(i * 2 + (i % 5 === 0 ? -4 : 0), ['A', i], ['B', 100 - i]));
    const drive = (w: PartitionWindows, list: StockTick[], out: TickerWindow[]) => {
      for (const t of list) {
        w.add(t, 0);
        out.push(...w.close());
      }
    };
    const expected: TickerWindow[] = [];
    const whole = windowsOf();
    drive(whole, ticks, expected);
    for (let cut = 0; cut <= ticks.length; cut++) {
      const out: TickerWindow[] = [];
      const first = windowsOf();
      drive(first, ticks.slice(0, cut), out);
      // Through JSON, as a stand-in for the round trip through Postgres.
      const resumed = new PartitionWindows({ windowMs: 10, allowedLatenessMs: 3, idleFlushMs: 100, wallNow: 0, restore: JSON.parse(JSON.stringify(first.snapshot())) });
      drive(resumed, ticks.slice(cut), out);
      assert.deepEqual(out, expected, `cut at ${cut}`);
      assert.deepEqual(resumed.snapshot(), whole.snapshot(), `state after cut at ${cut}`);
    }
  });
});

describe('mergeTickerWindows', () => {
  it('adds up the parts of one (ticker, window) from several partitions, ordered by ticker then start', () => {
    const merged = mergeTickerWindows([
      { ticker: 'B', start: 0, end: 10, summary: summaryOf(5) },
      { ticker: 'A', start: 10, end: 20, summary: summaryOf(1) },
      { ticker: 'A', start: 0, end: 10, summary: summaryOf(3) },
      { ticker: 'A', start: 0, end: 10, summary: { count: 2, sum: 20, min: 9, max: 11 } },
    ]);
    assert.deepEqual(merged, [row('A', 0, 10, 3, 23, 3, 11), row('A', 10, 20, 1, 1, 1, 1), row('B', 0, 10, 1, 5, 5, 5)]);
  });
});
