/**
 * `npm run bench -- prices [--messages 1000000] [--brokers 127.0.0.1:9092] [--partitions 3] [--repeat 3]`
 *
 * Producing and `stats` over the same price messages (1,000,000 by default) on the real Kafka,
 * each against the baselines measured in the same run: Kafka's own perf tools (the ceiling), a
 * plain KafkaJS version and a plain Python confluent-kafka version (the peers). Wall time
 * includes process start-up for every row; peak RSS is the process's. The readers run
 * `--repeat` times each, round-robin after a warm-up pass, and their median counts.
 */
import { spawnSync } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { loadavg } from 'node:os';
import { join } from 'node:path';
import { KafkaLog } from '../src/log/kafka.ts';
import { decodePriceMessage } from '../src/core/price-message.ts';
import { KAFKA_LIB, NODE, PYTHON, ROOT, flag, measure, report, roundRobin } from './_lib.ts';
import type { Measured, Row } from './_lib.ts';

export default async function pricesBenchmark(args: string[]): Promise<void> {
  const messages = Number(flag(args, 'messages', '1000000'));
  const brokers = flag(args, 'brokers', process.env.KAFKA_BROKERS ?? '127.0.0.1:9092');
  const partitions = Number(flag(args, 'partitions', '3'));
  const repeat = Number(flag(args, 'repeat', '3'));
  const id = randomUUID().slice(0, 6);
  const topic = (name: string) => `bench-prices-${id}-${name}`;
  const bin = join(ROOT, 'bin/tickflow.js');
  const log = new KafkaLog({ brokers: brokers.split(',') });
  const contenders = ['tickflow', 'kafkajs', 'python', 'perf'];
  // Start-up: every producer and every reader runs over START_MESSAGES (a few symbols need
  // two prices for a sample standard deviation), and `stats` over an empty topic.
  const names = [...contenders.map(topic), ...contenders.map((c) => topic(`${c}-one`)), topic('one'), topic('empty')];
  await log.createTopics(names.map((name) => ({ name, partitions })));
  const load = () => loadavg().map((l) => l.toFixed(2)).join(' ');
  console.log(`# prices benchmark: ${messages.toLocaleString('en-US')} messages, ${partitions} partitions, brokers ${brokers}; load average ${load()}\n`);
  const count = messages.toLocaleString('en-US');

  try {
    // Producing: start-up (one message, median of `repeat`), then the whole run.
    const produceCommand = (name: string, n: number, target: string): [string, string[]] => {
      switch (name) {
        case 'tickflow':
          return [NODE, [bin, 'produce', 'prices', '-n', String(n), '--output', target, '--seed', '1', '--brokers', brokers, '--json']];
        case 'kafkajs':
          return [NODE, [join(ROOT, 'bench/baselines/kafkajs-produce.ts'), brokers, target, String(n)]];
        case 'python':
          return [PYTHON, [join(ROOT, 'bench/baselines/python_produce.py'), brokers, target, String(n)]];
        default:
          return ['java', ['-Xmx512m', '-cp', KAFKA_LIB, 'org.apache.kafka.tools.ProducerPerformance', '--topic', target, '--num-records', String(n), '--record-size', '63', '--throughput', '-1', '--producer-props', `bootstrap.servers=${brokers}`, 'acks=all', 'enable.idempotence=true']];
      }
    };
    const produceStartup = roundRobin(contenders.map((c) => () => measure(...produceCommand(c, START_MESSAGES, topic(`${c}-one`)))), repeat);
    const produced = measure(...produceCommand('tickflow', messages, topic('tickflow')));
    const summary = JSON.parse(produced.stdout) as { bytes: number };
    const avg = Math.round(summary.bytes / messages);
    const perfArgs = produceCommand('perf', messages, topic('perf'));
    perfArgs[1][perfArgs[1].indexOf('--record-size') + 1] = String(avg);
    const produceRows: Row[] = [
      { name: 'kafka-producer-perf-test', messages, bytes: messages * avg, startup: produceStartup[3]!.seconds, ...pick(measure(...perfArgs)) },
      { name: 'plain KafkaJS', messages, bytes: summary.bytes, startup: produceStartup[1]!.seconds, ...pick(measure(...produceCommand('kafkajs', messages, topic('kafkajs')))) },
      { name: 'plain Python confluent-kafka', messages, bytes: summary.bytes, startup: produceStartup[2]!.seconds, ...pick(measure(...produceCommand('python', messages, topic('python')))) },
      { name: 'tickflow produce prices', messages, bytes: summary.bytes, startup: produceStartup[0]!.seconds, ...pick(produced) },
    ];
    for (const name of contenders.map(topic)) {
      const held = (await log.offsets(name)).reduce((n, p) => n + Number(p.latest), 0);
      if (held !== messages) throw new Error(`${name} holds ${held} messages, expected ${messages}`);
    }
    console.log(`(load average after producing: ${load()})\n`);

    // Consuming: every reader on the topic tickflow produced. One untimed pass warms the
    // broker's fetch path; then every reader runs `--repeat` times, round-robin.
    spawnSync('sync'); // the produced topics' dirty pages: not the readers' to pay for
    const readers = (source: string, n: number) => [
      () => measure('java', ['-Xmx512m', '-cp', KAFKA_LIB, 'org.apache.kafka.tools.ConsumerPerformance', '--bootstrap-server', brokers, '--topic', source, '--messages', String(n), '--timeout', '60000']),
      () => measure(NODE, [join(ROOT, 'bench/baselines/kafkajs-stats.ts'), brokers, source]),
      () => measure(PYTHON, [join(ROOT, 'bench/baselines/python_stats.py'), brokers, source]),
      () => measure(NODE, [bin, 'stats', '--input', source, '--brokers', brokers, '--json']),
    ];
    const check = (n: number) => (m: Measured, i: number) => {
      if (i === 1 || i === 2) expectCount(m, n);
      if (i === 3 && (JSON.parse(m.stdout) as { count: number }).count !== n) throw new Error(`stats counted ${m.stdout}`);
    };
    measureOne(bin, brokers, topic('one'));
    const readStartup = roundRobin(readers(topic('one'), START_MESSAGES), repeat, check(START_MESSAGES));
    const empty = roundRobin([() => measure(NODE, [bin, 'stats', '--input', topic('empty'), '--brokers', brokers, '--json'])], Math.max(repeat, 5))[0]!;
    const source = topic('tickflow');
    readers(source, messages)[0]!();
    const [perfRun, kafkajsRun, pythonRun, statsRun] = roundRobin(readers(source, messages), repeat, check(messages));
    const consumeRows: Row[] = [
      { name: 'kafka-consumer-perf-test', messages, bytes: summary.bytes, startup: readStartup[0]!.seconds, ...pick(perfRun!) },
      { name: 'plain KafkaJS stats (eachMessage + JSON.parse)', messages, bytes: summary.bytes, startup: readStartup[1]!.seconds, ...pick(kafkajsRun!) },
      { name: 'plain Python confluent-kafka stats', messages, bytes: summary.bytes, startup: readStartup[2]!.seconds, ...pick(pythonRun!) },
      { name: 'tickflow stats', messages, bytes: summary.bytes, startup: readStartup[3]!.seconds, ...pick(statsRun!) },
    ];

    // JSON decoding alone, in process, on (up to a million of) the same values.
    const values: string[] = [];
    for await (const batch of log.readRange({ topic: source })) {
      for (const r of batch) values.push(r.value!.toString());
      if (values.length >= 1_000_000) break;
    }
    let started = performance.now();
    for (const v of values) JSON.parse(v);
    const parseSeconds = (performance.now() - started) / 1000;
    started = performance.now();
    for (const v of values) decodePriceMessage(v);
    const decodeSeconds = (performance.now() - started) / 1000;

    const out = [
      report(`Produce ${count} price messages (acks=all, idempotent)`, produceRows, 'plain KafkaJS'),
      report(`Read ${count} price messages and compute statistics`, consumeRows, 'plain KafkaJS stats (eachMessage + JSON.parse)'),
      `JSON decoding alone: JSON.parse ${Math.round(values.length / parseSeconds).toLocaleString('en-US')} msgs/s; ` +
        `decodePriceMessage (JSON.parse + validation) ${Math.round(values.length / decodeSeconds).toLocaleString('en-US')} msgs/s\n`,
    ];
    console.log(out[2]);
    const ratio = (rows: Row[], a: number, b: number) => (rows[a]!.seconds > 0 ? rows[b]!.seconds / rows[a]!.seconds : Number.NaN).toFixed(2);
    console.log(`tickflow stats over an empty ${partitions}-partition topic: ${empty.seconds.toFixed(2)} s from process start to exit (${empty.runs!.map((x) => x.toFixed(2)).join(', ')})`);
    console.log(`stats vs kafka-consumer-perf-test: ${ratio(consumeRows, 3, 0)}x; vs plain KafkaJS: ${ratio(consumeRows, 3, 1)}x`);
    console.log(`produce prices vs kafka-producer-perf-test: ${ratio(produceRows, 3, 0)}x; vs plain KafkaJS: ${ratio(produceRows, 3, 1)}x`);
    console.log(`load average at the end: ${load()}`);
  } finally {
    await log.deleteTopics(names).catch(() => undefined);
    await log.close();
  }
}

/** Messages of the start-up runs. */
const START_MESSAGES = 100;

/** Fills `target`, the readers' start-up topic. */
function measureOne(bin: string, brokers: string, target: string): void {
  measure(NODE, [bin, 'produce', 'prices', '-n', String(START_MESSAGES), '--output', target, '--seed', '1', '--brokers', brokers, '--json']);
}

function pick(m: Measured) {
  return { seconds: m.seconds, peakRssMiB: m.peakRssMiB, ...(m.runs ? { runs: m.runs } : {}) };
}

function expectCount<T extends { stdout: string }>(m: T, messages: number): T {
  const count = (JSON.parse(m.stdout.trim().split('\n').pop()!) as { count: number }).count;
  if (count !== messages) throw new Error(`baseline counted ${count}, expected ${messages}`);
  return m;
}
