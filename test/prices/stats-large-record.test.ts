/**
 * `stats` on the real Kafka sizes its fetches from the records it has seen (~4,096 records a
 * partition: a few hundred KB of prices, src/log/kafka-fetch.ts). A record far larger than
 * that, among good prices on every partition, must still come back (Kafka returns an
 * oversized batch only as the first partition with data of a fetch; each fetch starts one
 * partition further), be counted `too-large`, and leave every other price counted.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { KafkaLog } from '../../src/log/kafka.ts';
import { encodePrice, formatTs } from '../../src/core/prices.ts';
import { KAFKA_BROKERS } from '../helpers/env.ts';
import { tickflow } from '../helpers/cli.ts';

const PARTITIONS = 3;
const PER_PARTITION = 30_000;
const BIG = 3 << 20; // 3 MiB: ~10x the fetch limit sized for these prices

describe('stats: a record far over the fetch size among small ones', () => {
  let log: KafkaLog;
  const topic = `stats-large-${Date.now().toString(36)}`;

  before(() => {
    log = new KafkaLog({ brokers: KAFKA_BROKERS, maxRequestBytes: 8 << 20 });
  });
  after(async () => {
    await log.deleteTopics([topic]).catch(() => undefined);
    await log.close();
  });

  it('reads it (too-large, unparsed) and counts every other price', async () => {
    await log.createTopics([{ name: topic, partitions: PARTITIONS, configs: { 'max.message.bytes': String(8 << 20) } }]);
    const producer = log.producer();
    const start = Date.UTC(2026, 0, 5, 9);
    const tick = (partition: number, i: number) => ({ partition, value: encodePrice({ ts: formatTs(start + i * 100), symbol: 'AAA', price: 100 + (i % 7) }) });
    // Partition 1's big record sits after 10,000 prices, while partitions 0 and 2 keep delivering.
    for (let p = 0; p < PARTITIONS; p++) await producer.send(topic, Array.from({ length: 10_000 }, (_, i) => tick(p, i)));
    await producer.send(topic, [{ partition: 1, value: Buffer.alloc(BIG, 0x20) }]);
    for (let p = 0; p < PARTITIONS; p++) await producer.send(topic, Array.from({ length: PER_PARTITION - 10_000 }, (_, i) => tick(p, 10_000 + i)));
    await producer.close();

    const run = await tickflow(['stats', '--input', topic, '--json', '--max-record-bytes', '1MiB', '--brokers', KAFKA_BROKERS.join(',')]);
    assert.equal(run.code, 0, run.stderr);
    const report = JSON.parse(run.stdout) as { count: number; invalid: number; invalidReasons: Record<string, number>; symbols: Array<{ symbol: string; count: number }> };
    assert.equal(report.count, PARTITIONS * PER_PARTITION + 1);
    assert.deepEqual(report.invalidReasons, { 'too-large': 1 });
    assert.deepEqual(report.symbols.map((s) => [s.symbol, s.count]), [['AAA', PARTITIONS * PER_PARTITION]]);
  });
});
