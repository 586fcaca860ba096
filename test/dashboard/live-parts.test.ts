/**
 * The dashboard's pure parts: throughput from end-offset samples, minute records of the
 * unique-users topic, and indicator values recovered from the kept state.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { SymbolIndicators } from '../../src/core/indicators.ts';
import { indicatorView } from '../../src/http/live-snapshot.ts';
import { ThroughputHistory } from '../../src/http/live-throughput.ts';
import type { TopicTotals } from '../../src/http/live-throughput.ts';
import { parseMinute } from '../../src/http/live-unique-users.ts';

const totals = (entries: Record<string, number>): TopicTotals[] => Object.entries(entries).map(([topic, written]) => ({ topic, written, messages: written }));

describe('ThroughputHistory', () => {
  const cases: Array<{ name: string; samples: Array<[number, Record<string, number>]>; rates: Record<string, Array<number | null>>; t: number[] }> = [
    {
      name: 'the first sample has no rate; then Δwritten / Δt',
      samples: [[1000, { a: 0 }], [2000, { a: 10 }], [4000, { a: 30 }]],
      rates: { a: [null, 10, 10] },
      t: [1, 2, 4],
    },
    {
      name: 'a topic that appears later has no rate before it, nor at its first sample',
      samples: [[0, { a: 5 }], [1000, { a: 5, b: 100 }], [2000, { a: 6, b: 150 }]],
      rates: { a: [null, 0, 1], b: [null, null, 50] },
      t: [0, 1, 2],
    },
    {
      name: 'a topic that shrank (recreated) has no rate at that sample',
      samples: [[0, { a: 50 }], [1000, { a: 3 }], [2000, { a: 7 }]],
      rates: { a: [null, null, 4] },
      t: [0, 1, 2],
    },
    {
      name: 'rates are rounded to 0.1 record/s',
      samples: [[0, { a: 0 }], [3000, { a: 1 }]],
      rates: { a: [null, 0.3] },
      t: [0, 3],
    },
    {
      name: 'a sample closer than the minimum interval refreshes the totals only',
      samples: [[0, { a: 0 }], [100, { a: 99 }], [1000, { a: 10 }]],
      rates: { a: [null, 10] },
      t: [0, 1],
    },
  ];
  for (const c of cases) {
    it(c.name, () => {
      const history = new ThroughputHistory({ minIntervalMs: 250 });
      for (const [at, written] of c.samples) history.observe(at, totals(written));
      const view = history.view();
      assert.deepEqual(view.history.t, c.t);
      assert.deepEqual(Object.fromEntries(view.history.series.map((s) => [s.topic, s.recordsPerSecond])), c.rates);
      const last = c.samples.at(-1)![1];
      assert.deepEqual(view.topics, Object.entries(last).map(([topic, written]) => ({ topic, written, messages: written, recordsPerSecond: c.rates[topic].at(-1) })));
    });
  }

  it('keeps the last `capacity` samples', () => {
    const history = new ThroughputHistory({ capacity: 3, minIntervalMs: 0 });
    for (let i = 0; i < 10; i++) history.observe(i * 1000, totals({ a: i * i }));
    const view = history.view();
    assert.deepEqual(view.history.t, [7, 8, 9]);
    assert.deepEqual(view.history.series[0].recordsPerSecond, [13, 15, 17]);
  });
});

describe('parseMinute', () => {
  const cases: Array<[string, ReturnType<typeof parseMinute>]> = [
    ['{"minute":"2016-07-11T13:39:00Z","start":1468244340,"uniqueUsers":42,"frames":100,"late":2}', { minute: '2016-07-11T13:39:00Z', start: 1468244340, uniqueUsers: 42, frames: 100, late: 2 }],
    ['{"start":1468244340,"uniqueUsers":7}', { minute: '2016-07-11T13:39:00Z', start: 1468244340, uniqueUsers: 7, frames: 0, late: 0 }],
    ['{"granularity":"minute","window":"2016-07-11T13:39:00Z","start":1468244340,"end":1468244400,"uniqueUsers":42,"frames":100,"late":2,"minute":"2016-07-11T13:39:00Z"}', { minute: '2016-07-11T13:39:00Z', start: 1468244340, uniqueUsers: 42, frames: 100, late: 2 }],
    ['{"granularity":"hour","window":"2016-07-11T13:00:00Z","start":1468242000,"end":1468245600,"uniqueUsers":420,"frames":1000,"late":5}', null],
    ['{"start":"1468244340","uniqueUsers":7}', null],
    ['{"start":1468244340}', null],
    ['{"start":1.5,"uniqueUsers":1}', null],
    ['[1,2]', null],
    ['null', null],
    ['{"start": 146', null],
  ];
  for (const [text, expected] of cases) {
    it(text, () => assert.deepEqual(parseMinute(text), expected));
  }
});

describe('indicatorView: the latest values from the kept state alone', () => {
  const kept = (prices: number[], window = 5) => {
    const indicators = new SymbolIndicators(window);
    const outputs = prices.map((p) => indicators.update(p));
    return { outputs, state: { symbol: 'AAPL', consumer: 'g', topic: 'prices', snapshot: JSON.parse(JSON.stringify(indicators.snapshot())), updatedAt: new Date(0) } };
  };

  for (const prices of [[100, 101, 99.5, 102, 98, 97.25, 103, 104.5], [100, 101, 102], [100, 101], [100]]) {
    it(`${prices.length} prices: the values of the last output`, () => {
      const { outputs, state } = kept(prices);
      const last = outputs.at(-1)!;
      const view = indicatorView(state);
      assert.equal(view.price, prices.at(-1));
      assert.equal(view.ema, last.ema);
      assert.equal(view.volatility, last.volatility);
      assert.equal(view.points, last.points);
      assert.equal(view.seen, last.seq);
      assert.equal(view.window, 5);
    });
  }

  it('no prices: no price, EMA or volatility', () => {
    const view = indicatorView(kept([]).state);
    assert.deepEqual([view.price, view.ema, view.volatility, view.points, view.seen], [null, null, null, 0, 0]);
  });
});
