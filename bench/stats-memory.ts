/**
 * `npm run bench -- stats-memory [--sizes 1000000,5000000,10000000] [--repeat 3] [--brokers 127.0.0.1:9092]`
 *
 * `stats`'s peak RSS against the topic's size: one topic of each size (the same seeded prices,
 * 3 partitions), then `stats --json` over each, round-robin `--repeat` times, under
 * /usr/bin/time. Prints every run's peak RSS, the median per size and its ratio to the
 * smallest size's median, with the load average.
 */
import { randomUUID } from 'node:crypto';
import { loadavg } from 'node:os';
import { join } from 'node:path';
import { KafkaLog } from '../src/log/kafka.ts';
import { NODE, ROOT, flag, measure } from './_lib.ts';
import type { Measured } from './_lib.ts';

export default async function statsMemoryBenchmark(args: string[]): Promise<void> {
  const sizes = flag(args, 'sizes', '1000000,5000000,10000000').split(',').map(Number);
  const repeat = Number(flag(args, 'repeat', '3'));
  const brokers = flag(args, 'brokers', process.env.KAFKA_BROKERS ?? '127.0.0.1:9092');
  const bin = join(ROOT, 'bin/tickflow.js');
  const id = randomUUID().slice(0, 6);
  const topic = (n: number) => `bench-stats-memory-${id}-${n}`;
  const load = () => loadavg().map((l) => l.toFixed(2)).join(' ');
  const log = new KafkaLog({ brokers: brokers.split(',') });
  console.log(`# stats peak RSS by topic size: ${sizes.map((n) => n.toLocaleString('en-US')).join(', ')} prices, 3 partitions, brokers ${brokers}; load average ${load()}\n`);
  try {
    for (const n of sizes) measure(NODE, [bin, 'produce', 'prices', '-n', String(n), '--output', topic(n), '--seed', '1', '--brokers', brokers, '--json']);
    const runs = new Map<number, Measured[]>(sizes.map((n) => [n, []]));
    for (let round = 0; round < repeat; round++) {
      for (const n of sizes) runs.get(n)!.push(measure(NODE, [bin, 'stats', '--input', topic(n), '--brokers', brokers, '--json']));
    }
    const median = (values: number[]) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)]!;
    const base = median(runs.get(sizes[0]!)!.map((m) => m.peakRssMiB));
    console.log('| prices | peak RSS MiB, each run | median | vs smallest | wall s, each run |');
    console.log('| ---: | --- | ---: | ---: | --- |');
    for (const n of sizes) {
      const measured = runs.get(n)!;
      const rss = measured.map((m) => m.peakRssMiB);
      console.log(`| ${n.toLocaleString('en-US')} | ${rss.map((r) => r.toFixed(0)).join(', ')} | ${median(rss).toFixed(0)} | ${((median(rss) / base - 1) * 100).toFixed(1)}% | ${measured.map((m) => m.seconds.toFixed(2)).join(', ')} |`);
    }
    console.log(`\nload average at the end: ${load()}`);
  } finally {
    await log.deleteTopics(sizes.map(topic)).catch(() => undefined);
    await log.close();
  }
}
