/**
 * `npm run bench -- prices [--messages 1000000] [--brokers 127.0.0.1:9092] [--partitions 3] [--repeat 3]`
 *
 * Producing and `stats` over the same 1,000,000 price messages on the real Kafka, each
 * against the baselines measured in the same run: Kafka's own perf tools (the ceiling), a
 * plain KafkaJS version and a plain Python confluent-kafka version (the peers). Wall time
 * includes process start-up for every row; peak RSS is the process's. The readers run
 * `--repeat` times each, round-robin after a warm-up pass, and their median counts.
 */
import { spawnSync } from 'node:child_process';
import { randomUUID } from 'node:crypto';
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
  const names = ['tickflow', 'kafkajs', 'python', 'perf'].map(topic);
  await log.createTopics(names.map((name) => ({ name, partitions })));
  console.log(`# prices benchmark: ${messages.toLocaleString('en-US')} messages, ${partitions} partitions, brokers ${brokers}\n`);

  try {
    // Producing.
    const produced = measure(NODE, [bin, 'produce', 'prices', '-n', String(messages), '--output', topic('tickflow'), '--seed', '1', '--brokers', brokers, '--json']);
    const summary = JSON.parse(produced.stdout) as { bytes: number };
    const avg = Math.round(summary.bytes / messages);
    const produceRows: Row[] = [
      { name: 'kafka-producer-perf-test', messages, bytes: messages * avg, ...pick(measure('java', ['-Xmx512m', '-cp', KAFKA_LIB, 'org.apache.kafka.tools.ProducerPerformance', '--topic', topic('perf'), '--num-records', String(messages), '--record-size', String(avg), '--throughput', '-1', '--producer-props', `bootstrap.servers=${brokers}`, 'acks=all', 'enable.idempotence=true'])) },
      { name: 'plain KafkaJS', messages, bytes: summary.bytes, ...pick(measure(NODE, [join(ROOT, 'bench/baselines/kafkajs-produce.ts'), brokers, topic('kafkajs'), String(messages)])) },
      { name: 'plain Python confluent-kafka', messages, bytes: summary.bytes, ...pick(measure(PYTHON, [join(ROOT, 'bench/baselines/python_produce.py'), brokers, topic('python'), String(messages)])) },
      { name: 'tickflow produce prices', messages, bytes: summary.bytes, ...pick(produced) },
    ];
    for (const name of names) {
      const count = (await log.offsets(name)).reduce((n, p) => n + Number(p.latest), 0);
      if (count !== messages) throw new Error(`${name} holds ${count} messages, expected ${messages}`);
    }

    // Consuming: every reader on the topic tickflow produced. One untimed pass warms the
    // broker's fetch path; then every reader runs `--repeat` times, round-robin.
    spawnSync('sync'); // the produced topics' dirty pages: not the readers' to pay for
    const source = topic('tickflow');
    const consumerPerf = () => measure('java', ['-Xmx512m', '-cp', KAFKA_LIB, 'org.apache.kafka.tools.ConsumerPerformance', '--bootstrap-server', brokers, '--topic', source, '--messages', String(messages), '--timeout', '60000']);
    consumerPerf();
    const [perfRun, kafkajsRun, pythonRun, statsRun] = roundRobin(
      [
        consumerPerf,
        () => measure(NODE, [join(ROOT, 'bench/baselines/kafkajs-stats.ts'), brokers, source]),
        () => measure(PYTHON, [join(ROOT, 'bench/baselines/python_stats.py'), brokers, source]),
        () => measure(NODE, [bin, 'stats', '--input', source, '--brokers', brokers, '--json']),
      ],
      repeat,
      (m, i) => {
        if (i === 1 || i === 2) expectCount(m, messages);
        if (i === 3 && (JSON.parse(m.stdout) as { count: number }).count !== messages) throw new Error(`stats counted ${m.stdout}`);
      },
    );
    const consumeRows: Row[] = [
      { name: 'kafka-consumer-perf-test', messages, bytes: summary.bytes, ...pick(perfRun!) },
      { name: 'plain KafkaJS stats (eachMessage + JSON.parse)', messages, bytes: summary.bytes, ...pick(kafkajsRun!) },
      { name: 'plain Python confluent-kafka stats', messages, bytes: summary.bytes, ...pick(pythonRun!) },
      { name: 'tickflow stats', messages, bytes: summary.bytes, ...pick(statsRun!) },
    ];

    // JSON decoding alone, in process, on the same values.
    const values: string[] = [];
    for await (const batch of log.readRange({ topic: source })) for (const r of batch) values.push(r.value!.toString());
    let started = performance.now();
    for (const v of values) JSON.parse(v);
    const parseSeconds = (performance.now() - started) / 1000;
    started = performance.now();
    for (const v of values) decodePriceMessage(v);
    const decodeSeconds = (performance.now() - started) / 1000;

    const out = [
      report('Produce 1M price messages (acks=all, idempotent)', produceRows, 'plain KafkaJS'),
      report('Read and compute statistics over the same topic', consumeRows, 'plain KafkaJS stats (eachMessage + JSON.parse)'),
      `JSON decoding alone: JSON.parse ${Math.round(values.length / parseSeconds).toLocaleString('en-US')} msgs/s; ` +
        `decodePriceMessage (JSON.parse + validation) ${Math.round(values.length / decodeSeconds).toLocaleString('en-US')} msgs/s\n`,
    ];
    console.log(out[2]);
    const perfRate = consumeRows[0].messages / consumeRows[0].seconds;
    const ours = consumeRows[3].messages / consumeRows[3].seconds;
    console.log(`stats vs kafka-consumer-perf-test: ${(ours / perfRate).toFixed(2)}x (target >= 0.5x)`);
  } finally {
    await log.deleteTopics(names).catch(() => undefined);
    await log.close();
  }
}

function pick(m: Measured) {
  return { seconds: m.seconds, peakRssMiB: m.peakRssMiB, ...(m.runs ? { runs: m.runs } : {}) };
}

function expectCount<T extends { stdout: string }>(m: T, messages: number): T {
  const count = (JSON.parse(m.stdout.trim().split('\n').pop()!) as { count: number }).count;
  if (count !== messages) throw new Error(`baseline counted ${count}, expected ${messages}`);
  return m;
}
