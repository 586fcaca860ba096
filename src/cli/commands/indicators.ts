import { runIndicators } from '../../pipelines/indicators.ts';
import { defineCommand } from '../command.ts';
import type { FlagValues } from '../command.ts';
import { badFlag, bool, duration, int, num, str } from '../flags.ts';
import { MAX_RECORD_BYTES_FLAG, maxRecordBytes } from '../max-record-bytes.ts';
import { DELIVERY_FLAGS, delivery } from '../delivery.ts';

const NAME = /^[A-Za-z0-9._-]{1,249}$/;

function topicName(values: FlagValues, flag: string, fallback: string): string {
  const name = str(values, flag) ?? fallback;
  if (!NAME.test(name)) throw badFlag(flag, `"${name}" is not a valid topic name (letters, digits, . _ -)`);
  return name;
}

export const command = defineCommand({
  name: ['indicators'],
  summary: 'Per-symbol EMA(100) and moving volatility(100) of prices, published to volatility',
  description: [
    'Consumes the prices topic in a consumer group and, per symbol in arrival order, publishes',
    '{"symbol","ts","price","ema","volatility","points"} to the output topic, keyed by symbol.',
    'ema: EMA over --window points, alpha = 2/(N+1), the plain mean of the points so far until N.',
    'volatility: sample standard deviation of the log returns among the last N prices (N − 1',
    'returns), null until 3 prices; points: prices in the window, min(seen, N).',
    'State and position are kept in Postgres per input partition: a restart continues where it stopped.',
    'Exactly once (default with Kafka): per --commit-interval the outputs, dead letters and consumed',
    'offsets go in one Kafka transaction, committed inside the Postgres transaction of the state;',
    'read_committed readers see each output once, whatever crashes. --at-least-once: publish each',
    'batch, then commit state and offsets; a crash in between repeats records (same values), but',
    'outputs are visible at once to every reader (docs/guarantees.md). Malformed prices go to the',
    'dead-letter topic (headers x-reason, x-error, x-source-*), and so do implausible ones',
    '(implausible-price: more than --max-price-ratio from the symbol\'s level, set by a majority of its',
    'first 5 prices; they never enter the EMA or the volatility), and so do records whose ts is more',
    'than --max-time-skew from their partition\'s stream time unless the stream comes near them',
    '(implausible-time, x-time-skew-ms). Run several members with the same --group to scale.',
  ].join('\n'),
  flags: {
    topic: { type: 'string', value: 'NAME', default: 'prices', description: 'Input topic' },
    'output-topic': { type: 'string', value: 'NAME', default: 'volatility', description: 'Output topic' },
    'dead-letter-topic': { type: 'string', value: 'NAME', description: 'Dead-letter topic for malformed prices (default: <topic>-dlq)' },
    'dlq-topic': { type: 'string', value: 'NAME', description: 'Deprecated alias of --dead-letter-topic' },
    'max-record-bytes': MAX_RECORD_BYTES_FLAG,
    group: { type: 'string', value: 'NAME', default: 'tickflow-indicators', description: 'Consumer group (also names the kept state)' },
    window: { type: 'string', value: 'N', default: '100', description: 'Points in the EMA and volatility window (at least 3)' },
    'ts-field': { type: 'string', value: 'NAME', default: 'ts', description: 'Field holding the event time (passed through)' },
    'symbol-field': { type: 'string', value: 'NAME', default: 'symbol', description: 'Field holding the symbol' },
    'price-field': { type: 'string', value: 'NAME', default: 'price', description: 'Field holding the price (> 0)' },
    'max-price-ratio': { type: 'string', value: 'K', default: '10', description: 'A price more than K times above or below its symbol\'s level is dead-lettered as implausible-price' },
    'max-time-skew': { type: 'string', value: 'TIME', default: '10m', description: 'A ts farther than this from its partition\'s stream time is held, then counted or dead-lettered implausible-time (docs/event-time.md)' },
    'strict-ts': { type: 'boolean', description: 'Accept only ts strings "yyyy-mm-dd hh:mm:ss[.fff|.ffffff]" (UTC), as before; by default also T, Z, offsets, 0-9 fractional digits and epoch ms' },
    partitions: { type: 'string', value: 'N', default: '3', description: 'Partitions of the input topic if it has to be created' },
    'stop-at-end': { type: 'boolean', description: 'Exit once everything in the input at start is processed (single member)' },
    ...DELIVERY_FLAGS,
  },
  examples: [
    'tickflow indicators --brokers 127.0.0.1:9092 --database-url postgres://postgres@127.0.0.1:5432/tickflow',
    'tickflow indicators --topic ticks --symbol-field s --price-field p --ts-field t --output-topic ticks-volatility',
    'tickflow indicators --stop-at-end --json',
    'tickflow indicators --brokers 127.0.0.1:9092 --commit-interval 5s',
    'tickflow indicators --brokers 127.0.0.1:9092 --at-least-once',
  ],
  configure(values) {
    const topic = topicName(values, 'topic', 'prices');
    const group = str(values, 'group') ?? 'tickflow-indicators';
    if (group.trim() === '') throw badFlag('group', 'must not be empty');
    const fields = { ts: str(values, 'ts-field') ?? 'ts', symbol: str(values, 'symbol-field') ?? 'symbol', price: str(values, 'price-field') ?? 'price' };
    for (const [flag, name] of [['ts-field', fields.ts], ['symbol-field', fields.symbol], ['price-field', fields.price]]) {
      if (name === '') throw badFlag(flag, 'must not be empty');
    }
    if (new Set(Object.values(fields)).size < 3) throw badFlag('price-field', 'the ts, symbol and price fields must be three different names');
    const outputTopic = topicName(values, 'output-topic', 'volatility');
    const deadLetterFlag = str(values, 'dead-letter-topic') !== undefined ? 'dead-letter-topic' : 'dlq-topic';
    const deadLetterTopic = topicName(values, deadLetterFlag, `${topic}-dlq`);
    if (outputTopic === topic) throw badFlag('output-topic', 'must differ from --topic');
    if (deadLetterTopic === topic || deadLetterTopic === outputTopic) throw badFlag(deadLetterFlag, 'must differ from --topic and --output-topic');
    return {
      inputTopic: topic,
      outputTopic,
      deadLetterTopic,
      group,
      window: int(values, 'window', 100, { min: 3, max: 100_000 }),
      fields,
      partitions: int(values, 'partitions', 3, { min: 1, max: 10_000 }),
      stopAtEnd: bool(values, 'stop-at-end'),
      strictTs: bool(values, 'strict-ts'),
      maxPriceRatio: num(values, 'max-price-ratio', 10, { exclusiveMin: 1 }),
      maxTimeSkewMs: duration(values, 'max-time-skew', 600_000, { minMs: 1 }),
      maxRecordBytes: maxRecordBytes(values),
      ...delivery(values),
    };
  },
  async run({ config, shared, out, signal, logger, openLog, openDatabase }) {
    const log = await openLog();
    const db = await openDatabase();
    logger.info({ log: log.description, database: db.description, topic: config.inputTopic, output: config.outputTopic, group: config.group }, 'indicators starting');
    const report = await runIndicators({ ...config, log, db, logger, signal });
    if (shared.json) out.write(`${JSON.stringify(report)}\n`);
    else out.write(`read ${report.read}, published ${report.published} to ${config.outputTopic}, dead-lettered ${report.deadLettered} to ${config.deadLetterTopic}\n`);
  },
});
