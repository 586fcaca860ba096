import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { PartitionWindows, mergeTickerWindows, summaryOf } from '../../src/core/stock-windows.ts';
import type { PartitionWindowsOptions, StockTickSink, TickerWindow } from '../../src/core/stock-windows.ts';
import type { StockTick } from '../../src/core/stock-ticks.ts';

const tick = (eventTime: number, ...prices: Array<[string, number]>): StockTick => ({ eventTime, tickers: prices.map(([name, price]) => ({ name, price })) });
const OPTIONS: PartitionWindowsOptions<number> = { windowMs: 10, allowedLatenessMs: 3, idleFlushMs: 100, wallNow: 0, maxTimeSkewMs: 1000 };
const windowsOf = (options: Partial<PartitionWindowsOptions<number>> = {}) => new PartitionWindows<number>({ ...OPTIONS, ...options });
const row = (ticker: string, start: number, end: number, count: number, sum: number, min: number, max: number): TickerWindow => ({ ticker, start, end, summary: { count, sum, min, max } });

/** Feeds ticks (ref = index) and collects what the operator refuses and closes. */
class Driver {
  readonly late: number[] = [];
  readonly implausible: Array<[number, number | null]> = [];
  readonly closed: TickerWindow[] = [];
  readonly sink: StockTickSink<number> = {
    late: (ref) => void this.late.push(ref),
    implausible: (ref, _tick, skew) => void this.implausible.push([ref, skew]),
  };

  readonly w: PartitionWindows<number>;

  constructor(w: PartitionWindows<number>) {
    this.w = w;
  }

  feed(ticks: readonly StockTick[], from = 0, wall = 0): this {
    ticks.forEach((t, i) => {
      this.w.add(t, from + i, wall, this.sink);
      this.closed.push(...this.w.close());
    });
    return this;
  }
}

describe('PartitionWindows (ticks in, closed windows out, behind the event-time guard)', () => {
  it('closes a window when the agreed stream time − lateness reaches its end, with count, sum, min, max', () => {
    const d = new Driver(windowsOf());
    d.feed([tick(1, ['A', 10], ['B', 5]), tick(9, ['A', 20]), tick(12, ['A', 7]), tick(13, ['B', 1]), tick(14, ['A', 1])]);
    assert.equal(d.w.streamTime, 12, 'a time becomes stream time once the next two records agree with it');
    assert.deepEqual(d.closed, []); // watermark 9 < 10
    d.feed([tick(15, ['A', 1])], 5); // 13 agreed: watermark 10, [0, 10) closes
    assert.deepEqual(d.closed, [row('A', 0, 10, 2, 30, 10, 20), row('B', 0, 10, 1, 5, 5, 5)]);
    assert.equal(d.w.watermark, 10);
    const snapshot = d.w.snapshot();
    assert.equal(snapshot.streamTime, 13);
    assert.deepEqual(snapshot.open, [row('A', 10, 20, 3, 9, 1, 7), row('B', 10, 20, 1, 1, 1, 1)]);
    assert.deepEqual(snapshot.guard?.recent, [14, 15]);
    assert.deepEqual(snapshot.guard?.held, []);
  });

  const lateness: Array<{ name: string; ticks: number[]; late: number[] }> = [
    { name: 'within the lateness', ticks: [0, 1, 2, 12, 13, 14, 8], late: [] },
    { name: 'out of order inside an open window', ticks: [5, 1, 4, 3], late: [] },
    { name: 'beyond the lateness', ticks: [0, 1, 2, 14, 15, 16, 9], late: [9] },
    { name: 'exactly at the bound (window end = watermark)', ticks: [0, 1, 2, 13, 14, 15, 9], late: [9] },
    { name: 'late then on time', ticks: [0, 1, 2, 25, 26, 27, 3, 28], late: [3] },
    { name: 'one tick far ahead (within the skew) makes nothing late', ticks: [0, 1, 2, 500, 3, 4, 5, 6], late: [] },
    { name: 'two ticks far ahead in a row make nothing late', ticks: [0, 1, 2, 500, 501, 3, 4, 5, 6], late: [] },
  ];
  for (const { name, ticks, late } of lateness) {
    it(`judges lateness: ${name}`, () => {
      const d = new Driver(windowsOf()).feed(ticks.map((t) => tick(t, ['A', 1])));
      assert.deepEqual(d.late.map((i) => ticks[i]), late);
      assert.equal(d.w.late, late.length);
      assert.deepEqual(d.implausible, []);
    });
  }

  it('a tick 980 "years" ahead is held, never moves the stream time, and is refused once the stream moved on by the skew', () => {
    const ticks = Array.from({ length: 300 }, (_, i) => tick(i * 10, ['A', 1]));
    ticks.splice(50, 0, tick(1e12, ['A', 999]));
    const d = new Driver(windowsOf()).feed(ticks);
    assert.deepEqual(d.late, []);
    assert.equal(d.implausible.length, 1);
    const [ref, skew] = d.implausible[0];
    assert.equal(ref, 50);
    assert.ok(skew! > 1e12 - 2000 && skew! < 1e12, String(skew));
    assert.ok(d.closed.every((w) => w.end <= 3000) && d.w.snapshot().open.every((w) => w.end <= 3000), 'no window near the bogus time');
    assert.equal(d.closed.reduce((n, w) => n + w.summary.count, 0) + d.w.snapshot().open.reduce((n, w) => n + w.summary.count, 0), 300, 'every good tick counted');
  });

  it('follows a stream that jumps far ahead: the old windows close, every tick after the jump counts', () => {
    const ticks = [...Array.from({ length: 50 }, (_, i) => tick(i * 10, ['A', 1])), ...Array.from({ length: 50 }, (_, i) => tick(1e9 + i * 10, ['A', 2]))];
    const d = new Driver(windowsOf()).feed(ticks);
    assert.deepEqual([d.late, d.implausible], [[], []]);
    assert.equal(d.closed.filter((w) => w.end <= 500).reduce((n, w) => n + w.summary.count, 0), 50, 'the windows before the jump all closed');
    const open = d.w.snapshot().open;
    assert.equal(d.closed.filter((w) => w.start >= 1e9).reduce((n, w) => n + w.summary.count, 0) + open.reduce((n, w) => n + w.summary.count, 0), 50);
  });

  it('follows a stream that jumps back (history replayed): the open windows are flushed, the replayed ticks count', () => {
    const ticks = [...Array.from({ length: 50 }, (_, i) => tick(1e9 + i * 10, ['A', 1])), ...Array.from({ length: 50 }, (_, i) => tick(i * 10, ['A', 2]))];
    const d = new Driver(windowsOf()).feed(ticks);
    assert.deepEqual([d.late, d.implausible], [[], []]);
    assert.equal(d.closed.filter((w) => w.start >= 1e9).reduce((n, w) => n + w.summary.count, 0), 50, 'the open windows of the old time were flushed');
    assert.equal(d.w.streamTime, 470);
  });

  it('refuses a late tick as a whole and says how far behind stream time it is', () => {
    const d = new Driver(windowsOf()).feed([0, 1, 2, 20, 21, 22].map((t) => tick(t, ['A', 1])));
    const late: Array<[number, number]> = [];
    d.w.add(tick(5, ['A', 1], ['B', 2]), 99, 0, { late: (ref, _t, ms) => void late.push([ref, ms]), implausible: () => assert.fail() });
    assert.deepEqual(late, [[99, 15]]);
    assert.deepEqual(d.w.snapshot().open.map((o) => o.ticker), ['A']);
  });

  it('idle timer: moves stream time by the wall time since the last record, only when caught up and quiet long enough', () => {
    const d = new Driver(windowsOf({ idleFlushMs: 100 }));
    d.feed([0, 1, 5].map((t) => tick(t, ['A', 4])), 0, 1_000);
    assert.equal(d.w.streamTime, 0);
    assert.equal(d.w.advanceIdle(1_050, true), false, 'quiet for less than the idle flush');
    assert.equal(d.w.advanceIdle(1_200, false), false, 'records still waiting to be read');
    assert.deepEqual(d.w.close(), []);
    assert.equal(d.w.advanceIdle(1_100, true), true);
    assert.equal(d.w.streamTime, 100);
    assert.deepEqual(d.w.close(), [row('A', 0, 10, 3, 12, 4, 4)]);
    assert.equal(d.w.advanceIdle(1_100, true), false, 'no further move at the same wall time');
  });

  it('idle timer: a quiet partition whose first ticks never agreed takes their median as stream time', () => {
    const d = new Driver(windowsOf({ idleFlushMs: 100 }));
    d.feed([tick(5, ['A', 4]), tick(1e12, ['A', 9])], 0, 1_000);
    assert.equal(d.w.streamTime, null);
    assert.equal(d.w.held, 2);
    assert.equal(d.w.advanceIdle(1_100, true), true);
    assert.equal(d.w.streamTime, 5);
    assert.equal(d.w.held, 1, 'the far one stays held (refused by a later record)');
    assert.deepEqual(d.w.snapshot().open, [row('A', 0, 10, 1, 4, 4, 4)]);
  });

  it('idle timer: nothing to do before the first record', () => {
    const w = windowsOf();
    assert.equal(w.advanceIdle(10_000, true), false);
    assert.equal(w.streamTime, null);
  });

  it('a snapshot restored at any point continues exactly like the uninterrupted operator (guard included)', () => {
    const ticks = Array.from({ length: 80 }, (_, i) => tick(i * 2 + (i % 5 === 0 ? -4 : 0), ['A', i], ['B', 100 - i]));
    ticks.splice(20, 0, tick(1e12, ['A', 1])); // held, then refused
    ticks.splice(40, 0, tick(1500, ['B', 7])); // ahead by more than the skew: held, then refused
    const skew = { maxTimeSkewMs: 50 };
    const whole = new Driver(windowsOf(skew)).feed(ticks);
    for (let cut = 0; cut <= ticks.length; cut++) {
      const first = new Driver(windowsOf(skew)).feed(ticks.slice(0, cut));
      // Through JSON, as a stand-in for the round trip through Postgres.
      const resumed = new Driver(windowsOf({ ...skew, restore: JSON.parse(JSON.stringify(first.w.snapshot())) })).feed(ticks.slice(cut), cut);
      assert.deepEqual([...first.closed, ...resumed.closed], whole.closed, `closed windows, cut at ${cut}`);
      assert.deepEqual([...first.late, ...resumed.late], whole.late, `late, cut at ${cut}`);
      assert.deepEqual([...first.implausible, ...resumed.implausible], whole.implausible, `implausible, cut at ${cut}`);
      assert.deepEqual(resumed.w.snapshot(), whole.w.snapshot(), `state after cut at ${cut}`);
    }
    assert.deepEqual(whole.implausible.map(([ref]) => ref), [20, 40]);
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
