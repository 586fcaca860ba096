/**
 * Prices ETL end to end on the real Kafka: `tickflow produce prices` then `tickflow stats`,
 * checked against the topic read back with another client and statistics recomputed here
 * with plain two-pass arithmetic.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { KafkaLog } from '../../src/log/kafka.ts';
import { MemoryLog } from '../../src/log/memory.ts';
import { producePrices } from '../../src/pipelines/produce-prices.ts';
import { computeStats } from '../../src/pipelines/prices-stats.ts';
import { DEFAULT_SYMBOLS } from '../../src/core/prices.ts';
import { KAFKA_BROKERS } from '../helpers/env.ts';
import { tickflow } from '../helpers/cli.ts';
import { readTopicIndependently } from '../helpers/independent-reader.ts';
import type { RawMessage } from '../helpers/independent-reader.ts';

interface Stats {
  count: number;
  symbols: Array<{ symbol: string; count: number; min: number; max: number; mean: number; stddev: number }>;
  outliers: Array<{ ts: string; symbol: string; price: number }>;
  invalid: number;
  implausible: number;
}

/** Independent recomputation: plain two-pass mean and sample stddev, |p − mean| > 3 sd. */
function recompute(messages: RawMessage[]): Omit<Stats, 'count' | 'invalid' | 'implausible'> {
  const bySymbol = new Map<string, Array<{ ts: string; price: number }>>();
  for (const m of messages) {
    const tick = JSON.parse(m.value!);
    bySymbol.set(tick.symbol, [...(bySymbol.get(tick.symbol) ?? []), { ts: tick.ts, price: tick.price }]);
  }
  const symbols = [];
  const outliers = [];
  for (const symbol of [...bySymbol.keys()].sort()) {
    const ticks = bySymbol.get(symbol)!;
    const prices = ticks.map((t) => t.price);
    const mean = prices.reduce((a, b) => a + b, 0) / prices.length;
    const stddev = Math.sqrt(prices.reduce((a, p) => a + (p - mean) ** 2, 0) / (prices.length - 1));
    symbols.push({ symbol, count: prices.length, min: Math.min(...prices), max: Math.max(...prices), mean, stddev });
    for (const t of ticks) if (Math.abs(t.price - mean) > 3 * stddev) outliers.push({ ts: t.ts, symbol, price: t.price });
  }
  outliers.sort((a, b) => a.ts.localeCompare(b.ts) || a.symbol.localeCompare(b.symbol));
  return { symbols, outliers };
}

function assertClose(actual: Stats['symbols'], expected: Stats['symbols']) {
  assert.deepEqual(actual.map((s) => [s.symbol, s.count, s.min, s.max]), expected.map((s) => [s.symbol, s.count, s.min, s.max]));
  actual.forEach((s, i) => {
    for (const field of ['mean', 'stddev'] as const) {
      const e = expected[i][field];
      assert.ok(Math.abs(s[field] - e) <= 1e-9 * Math.abs(e), `${s.symbol} ${field}: ${s[field]} vs ${e}`);
    }
  });
}

describe('prices ETL on the real Kafka', () => {
  const topic = `prices-it-${randomUUID().slice(0, 8)}`;
  const brokers = ['--brokers', KAFKA_BROKERS.join(',')];
  let first: Stats;

  it('produces exactly 5000 well-formed messages keyed by symbol', async () => {
    const result = await tickflow(['produce', 'prices', '--output', topic, '--seed', '42', ...brokers]);
    assert.equal(result.code, 0, result.stderr);
    assert.match(result.stdout, /^produced 5000 messages/);
    const messages = await readTopicIndependently(KAFKA_BROKERS, topic);
    assert.equal(messages.length, 5000);
    const symbols = new Set<string>();
    for (const m of messages) {
      assert.match(m.value!, /^\{"ts":"\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}\.\d{3}","symbol":"[A-Z]+","price":\d+\.\d{2}\}$/);
      const tick = JSON.parse(m.value!);
      assert.equal(m.key, tick.symbol);
      symbols.add(tick.symbol);
    }
    assert.deepEqual([...symbols].sort(), DEFAULT_SYMBOLS.map((s) => s.symbol).sort());
  });

  it('computes statistics and outliers equal to an independent recomputation, the same on every re-run', async () => {
    const run = await tickflow(['stats', '--input', topic, '--json', ...brokers]);
    assert.equal(run.code, 0, run.stderr);
    first = JSON.parse(run.stdout);
    assert.deepEqual(Object.keys(first), ['count', 'symbols', 'outliers', 'invalid', 'invalidReasons', 'implausible', 'implausibleReasons', 'implausibleSamples']);
    const expected = recompute(await readTopicIndependently(KAFKA_BROKERS, topic));
    assert.equal(first.count, 5000);
    assert.equal(first.invalid, 0);
    assert.equal(first.implausible, 0, 'the injected anomalies are outliers, not implausible prices');
    assertClose(first.symbols, expected.symbols);
    assert.deepEqual(first.outliers, expected.outliers);
    assert.ok(first.outliers.length > 0, 'the injected anomalies show up as outliers');

    const again = await tickflow(['stats', '--input', topic, '--json', ...brokers]);
    assert.equal(again.stdout, run.stdout);
    const twoPasses = await tickflow(['stats', '--input', topic, '--json', '--memory-budget', '0', ...brokers]);
    assert.equal(twoPasses.stdout, run.stdout, 'the two-pass path gives the same answer');
  });

  it('counts malformed messages as invalid without changing the statistics', async () => {
    const log = new KafkaLog({ brokers: KAFKA_BROKERS });
    const producer = log.producer();
    await producer.send(topic, [
      { key: 'AAPL', value: '{"ts": "2021-03-10 16:21:32.000", "symbol": "AAPL", "price": 238.3' },
      { key: 'AAPL', value: '{"ts": "2021-03-10 16:21:32.000", "price": 238.32}' },
      { key: 'AAPL', value: '{"ts": "2021-03-10 16:21:32.000", "symbol": "AAPL", "price": "9999.99"}' },
      // A valid price padded to 2 KiB: over --max-record-bytes 1KiB below, never parsed there
      // (at a time of the seeded stream, 16:00:00 to 16:08:20: a later one would be implausible).
      { key: 'AAPL', value: `{"ts": "2021-03-10 16:08:00.000", "symbol": "AAPL", "price": 299.99, "pad": "${'x'.repeat(2000)}"}` },
    ]);
    await producer.close();
    await log.close();
    const run = await tickflow(['stats', '--input', topic, '--json', '--max-record-bytes', '1KiB', ...brokers]);
    const stats: Stats = JSON.parse(run.stdout);
    assert.equal(stats.count, 5004);
    assert.equal(stats.invalid, 4);
    assert.deepEqual(stats.symbols, first.symbols);
    assert.deepEqual(stats.outliers, first.outliers);
    const human = await tickflow(['stats', '--input', topic, '--max-record-bytes', '1KiB', ...brokers]);
    assert.match(human.stdout, /invalid messages: 4/);
    assert.match(human.stdout, /1 +not-json/);
    assert.match(human.stdout, /1 +bad-symbol/);
    assert.match(human.stdout, /1 +bad-price/);
    assert.match(human.stdout, /1 +too-large/);
    // With the default limit (1 MiB) the padded price is read like any other.
    const unlimited: Stats = JSON.parse((await tickflow(['stats', '--input', topic, '--json', ...brokers])).stdout);
    assert.equal(unlimited.invalid, 3);
    assert.equal(unlimited.symbols.find((s) => s.symbol === 'AAPL')!.count, first.symbols.find((s) => s.symbol === 'AAPL')!.count + 1);
  });

  it('adds exactly 5000 more with a second produce', async () => {
    const result = await tickflow(['produce', 'prices', '--output', topic, '--seed', '43', ...brokers]);
    assert.equal(result.code, 0, result.stderr);
    const stats: Stats = JSON.parse((await tickflow(['stats', '--input', topic, '--json', ...brokers])).stdout);
    assert.equal(stats.count, 10_004);
    assert.equal(stats.symbols.reduce((n, s) => n + s.count, 0), 10_001, 'the padded price counts under the default --max-record-bytes');
  });
});

describe('prices ETL: the embedded log gives the same answer as Kafka', () => {
  const topic = `prices-eq-${randomUUID().slice(0, 8)}`;
  let kafka: KafkaLog;
  before(() => {
    kafka = new KafkaLog({ brokers: KAFKA_BROKERS });
  });
  after(async () => {
    await kafka.close();
  });

  it('produces the same seeded stream and computes identical statistics on both adapters', async () => {
    const options = {
      topic,
      partitions: 4,
      count: 20_000,
      symbols: DEFAULT_SYMBOLS,
      anomalyRate: 0.005,
      anomalySigmas: 6,
      seed: 'same',
      startMs: Date.UTC(2024, 0, 1),
      stepMs: 10,
      batchSize: 3000,
    };
    const memory = new MemoryLog();
    await producePrices(memory, options);
    await producePrices(kafka, options);
    const rule = { kind: 'mad', threshold: 3.5 } as const;
    const onMemory = await computeStats(memory, { topic, rule, memoryBudgetBytes: 1 << 20 });
    const onKafka = await computeStats(kafka, { topic, rule, memoryBudgetBytes: 1 << 20 });
    assert.deepEqual({ ...onKafka, outliers: [...onKafka.outliers] }, { ...onMemory, outliers: [...onMemory.outliers] });
    assert.equal(onKafka.count, 20_000);
    assert.ok(onKafka.outliers.length > 0);
  });
});
