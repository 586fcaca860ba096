import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { TumblingWindows, Watermark, WindowAggregator } from '../../src/core/window.ts';

describe('TumblingWindows', () => {
  const windows = new TumblingWindows(30_000);
  const cases: Array<[number, number]> = [
    [0, 0],
    [29_999, 0],
    [30_000, 30_000],
    [1_615_393_292_123, 1_615_393_290_000],
    [-1, -30_000],
  ];
  for (const [timestamp, start] of cases) {
    it(`puts ${timestamp} in the window starting ${start}`, () => {
      assert.deepEqual(windows.windowFor(timestamp), { start, end: start + 30_000 });
    });
  }
  it('rejects a non-positive size', () => {
    assert.throws(() => new TumblingWindows(0), RangeError);
  });
});

describe('WindowAggregator (events in, closed windows out)', () => {
  const sum = () =>
    new WindowAggregator<string, number, number>({
      windows: new TumblingWindows(10),
      watermark: new Watermark(5),
      init: () => 0,
      add: (acc, v) => acc + v,
    });

  it('closes a window only when the watermark (max time - lateness) passes its end', () => {
    const agg = sum();
    agg.add(1, 'a', 1);
    agg.add(9, 'a', 2);
    agg.add(12, 'b', 5);
    assert.deepEqual(agg.close(), []); // watermark 7 < end 10
    agg.add(15, 'a', 1); // watermark 10: [0,10) closes
    assert.deepEqual(agg.close(), [{ window: { start: 0, end: 10 }, key: 'a', value: 3 }]);
    assert.equal(agg.openWindows, 1);
  });

  it('accepts out-of-order records within the lateness and counts later ones as late', () => {
    const agg = sum();
    agg.add(14, 'a', 1); // watermark 9
    assert.equal(agg.add(3, 'a', 10), true); // window [0,10) still open
    agg.add(16, 'a', 1); // watermark 11: [0,10) closed
    assert.deepEqual(agg.close(), [{ window: { start: 0, end: 10 }, key: 'a', value: 10 }]);
    assert.equal(agg.add(2, 'a', 100), false);
    assert.equal(agg.late, 1);
    assert.deepEqual(agg.flush(), [{ window: { start: 10, end: 20 }, key: 'a', value: 2 }]);
  });

  it('emits windows oldest first and keys in arrival order', () => {
    const agg = new WindowAggregator<string, number, number>({ windows: new TumblingWindows(10), watermark: new Watermark(100), init: () => 0, add: (a, v) => a + v });
    for (const [t, k] of [[25, 'x'], [5, 'y'], [6, 'x'], [15, 'z']] as const) agg.add(t, k, 1);
    assert.deepEqual(
      agg.flush().map((w) => [w.window.start, w.key]),
      [[0, 'y'], [0, 'x'], [10, 'z'], [20, 'x']],
    );
  });

  it('moves stream time on the idle timer without a record', () => {
    const watermark = new Watermark(5);
    const agg = new WindowAggregator<string, number, number>({ windows: new TumblingWindows(10), watermark, init: () => 0, add: (a, v) => a + v });
    agg.add(3, 'a', 1);
    watermark.advanceTo(14);
    assert.equal(agg.close().length, 0);
    watermark.advanceTo(15);
    assert.equal(agg.close().length, 1);
    watermark.advanceTo(1); // never backwards
    assert.equal(watermark.streamTime, 15);
  });
});
