import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { Log, RecordToProduce } from '../../src/log/types.ts';
import { generateStocks } from '../../src/pipelines/generate-stocks.ts';
import type { GenerateStocksOptions } from '../../src/pipelines/generate-stocks.ts';
import { tickflow } from '../helpers/cli.ts';

/** A log that only records what is sent, and when on the fake clock; a send can be made slow. */
function fakeLog(clock: { t: number }, sendMs: (call: number) => number) {
  const sent: Array<{ at: number; record: RecordToProduce }> = [];
  let calls = 0;
  const log = {
    createTopics: async () => {},
    producer: () => ({
      send: async (_topic: string, records: readonly RecordToProduce[]) => {
        for (const record of records) sent.push({ at: clock.t, record });
        clock.t += sendMs(calls++);
      },
      close: async () => {},
    }),
  } as unknown as Log;
  return { log, sent };
}

function run(clock: { t: number }, log: Log, extra: Partial<GenerateStocksOptions>) {
  return generateStocks(log, {
    topic: 'stocks', partitions: 3, rate: 10, tickers: [{ name: 'AMZN', mean: 1902 }, { name: 'MSFT', mean: 107 }, { name: 'AAPL', mean: 215 }],
    spread: 0.1, seed: 's', startTime: null, count: null, durationMs: null,
    clock: { now: () => clock.t, sleep: async (ms) => void (clock.t += ms) },
    ...extra,
  });
}

describe('generate stocks pacing (fake clock)', () => {
  it('sends message i at start + i/rate with event time start + i/rate, keyed by the first ticker', async () => {
    const clock = { t: 1_000_000 };
    const { log, sent } = fakeLog(clock, () => 3);
    const summary = await run(clock, log, { count: 50 });
    assert.equal(summary.messages, 50);
    assert.deepEqual(sent.map((s) => s.at), Array.from({ length: 50 }, (_, i) => 1_000_000 + i * 100));
    const values = sent.map((s) => JSON.parse(String(s.record.value)) as { ts: string; tickers: Array<{ name: string }> });
    assert.deepEqual(values.map((v) => Date.parse(v.ts)), Array.from({ length: 50 }, (_, i) => 1_000_000 + i * 100));
    assert.ok(sent.every((s, i) => s.record.key === values[i].tickers[0].name));
  });

  it('does not drift after a slow send: the overdue messages go at once, then the schedule goes on', async () => {
    const clock = { t: 0 };
    const { log, sent } = fakeLog(clock, (call) => (call === 3 ? 450 : 5));
    await run(clock, log, { count: 20 });
    const at = sent.map((s) => s.at);
    assert.deepEqual(at.slice(0, 4), [0, 100, 200, 300]);
    assert.deepEqual(at.slice(4, 8), [750, 750, 750, 750], 'messages 4..7 were due by 750 ms');
    assert.deepEqual(at.slice(8), Array.from({ length: 12 }, (_, i) => (i + 8) * 100));
    const times = sent.map((s) => Date.parse(JSON.parse(String(s.record.value)).ts));
    assert.deepEqual(times, Array.from({ length: 20 }, (_, i) => i * 100), 'event times stay evenly spaced');
  });

  it('stops after --duration, and takes its event times from --start', async () => {
    const clock = { t: 5_000 };
    const { log, sent } = fakeLog(clock, () => 1);
    const summary = await run(clock, log, { rate: 4, durationMs: 2_000, startTime: Date.parse('2024-01-01T00:00:00Z') });
    assert.equal(summary.messages, 8);
    assert.equal(summary.firstEventTime, Date.parse('2024-01-01T00:00:00Z'));
    assert.equal(summary.lastEventTime, Date.parse('2024-01-01T00:00:01.750Z'));
    assert.equal(sent.length, 8);
  });

  it('stops when aborted', async () => {
    const clock = { t: 0 };
    const controller = new AbortController();
    const { log, sent } = fakeLog(clock, (call) => {
      if (call === 9) controller.abort();
      return 1;
    });
    const summary = await run(clock, log, { signal: controller.signal });
    assert.equal(summary.messages, 10);
    assert.equal(sent.length, 10);
  });
});

describe('generate/aggregate stocks command lines', () => {
  const rejected: Array<[string[], RegExp]> = [
    [['generate', 'stocks', '--rate', '0'], /^tickflow generate stocks: --rate: must be greater than 0/],
    [['generate', 'stocks', '--tickers', 'AMZN=abc'], /^tickflow generate stocks: --tickers: mean price of AMZN must be a number/],
    [['generate', 'stocks', '--tickers', 'GOOG'], /^tickflow generate stocks: --tickers: give a mean price for GOOG/],
    [['generate', 'stocks', '--tickers', 'AMZN,AMZN=5'], /^tickflow generate stocks: --tickers: lists a ticker twice/],
    [['generate', 'stocks', '--start', 'soon'], /^tickflow generate stocks: --start: expects an ISO 8601 time/],
    [['generate', 'stocks', '--spread', '2'], /^tickflow generate stocks: --spread: must be at most 1/],
    [['aggregate', 'stocks', '--window', '30x'], /^tickflow aggregate stocks: --window: expects a duration/],
    [['aggregate', 'stocks', '--allowed-lateness', '30s'], /^tickflow aggregate stocks: --allowed-lateness: must be smaller than --window/],
    [['aggregate', 'stocks', '--idle-timeout', '1ms'], /^tickflow aggregate stocks: --idle-timeout: must be at least 100ms/],
    [['aggregate', 'stocks', '--dead-letter-topic', 'stocks'], /^tickflow aggregate stocks: --dead-letter-topic: must differ from --input/],
    [['api', '--port', '70000'], /^tickflow api: --port: must be at most 65535/],
  ];
  for (const [args, message] of rejected) {
    it(`rejects ${args.slice(2).join(' ')} in one line, exit 2`, async () => {
      const result = await tickflow(args);
      assert.equal(result.code, 2);
      assert.match(result.stderr, message);
      assert.equal(result.stderr.trim().split('\n').length, 1);
    });
  }

  it('generates a bounded stream on the embedded log', async () => {
    const result = await tickflow(['generate', 'stocks', '--count', '5', '--rate', '1000', '--seed', '1', '--json'], { env: { KAFKA_BROKERS: '' } });
    assert.equal(result.code, 0, result.stderr);
    assert.deepEqual(JSON.parse(result.stdout).messages, 5);
  });
});
