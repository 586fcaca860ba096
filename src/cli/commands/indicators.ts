import { runIndicators } from '../../pipelines/indicators.ts';
import { alias, defineCommand } from '../command.ts';
import type { FlagValues } from '../command.ts';
import { badFlag, bool, duration, int, num, str, topicOnly } from '../flags.ts';
import { STDIN_TOPIC, stdioLog } from '../stdio-log.ts';
import { MAX_RECORD_BYTES_FLAG, maxRecordBytes } from '../max-record-bytes.ts';
import { DELIVERY_FLAGS, delivery } from '../delivery.ts';

const NAME = /^[A-Za-z0-9._-]{1,249}$/;

function topicName(values: FlagValues, flag: string, fallback: string): string {
  const name = str(values, flag) ?? fallback;
  if (flag === 'output' && name === STDIN_TOPIC) return name;
  if (!NAME.test(name)) throw badFlag(flag, `"${name}" is not a valid topic name (letters, digits, . _ -)`);
  return name;
}

export const command = defineCommand({
  name: ['indicators'],
  summary: 'Per-symbol EMA(100) and moving volatility(100) of prices, published to volatility',
  description: [
    'Consumes the prices topic in a consumer group and, per symbol in arrival order, publishes',
    '{"symbol","ts","price","ema","volatility","points"} to the output topic, keyed by symbol.',
    'ema: EMA over --points points, alpha = 2/(N+1), the plain mean of the points so far until N.',
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
    input: { type: 'string', value: 'TOPIC', default: 'prices', description: 'Input topic' },
    topic: alias('input'),
    output: { type: 'string', value: 'TOPIC', default: 'volatility', description: 'Output topic, or - for stdout (JSON Lines)' },
    'output-topic': alias('output'),
    'dead-letter-topic': { type: 'string', value: 'TOPIC', description: 'Dead-letter topic for malformed prices (default: <input>-dlq)' },
    'dlq-topic': alias('dead-letter-topic'),
    'max-record-bytes': MAX_RECORD_BYTES_FLAG,
    group: { type: 'string', value: 'NAME', default: 'tickflow-indicators', description: 'Consumer group (also names the kept state)' },
    points: { type: 'string', value: 'N', default: '100', description: 'Points (prices) in the EMA and volatility window (at least 3)' },
    window: alias('points'),
    'ts-field': { type: 'string', value: 'NAME', default: 'ts', description: 'Field holding the event time (passed through)' },
    'symbol-field': { type: 'string', value: 'NAME', default: 'symbol', description: 'Field holding the symbol' },
    'price-field': { type: 'string', value: 'NAME', default: 'price', description: 'Field holding the price (> 0)' },
    'max-price-ratio': { type: 'string', value: 'K', default: '10', description: 'A price more than K times above or below its symbol\'s level is dead-lettered as implausible-price' },
    'max-time-skew': { type: 'string', value: 'DURATION', default: '10m', description: 'A ts farther than this from its partition\'s stream time is held, then counted or dead-lettered implausible-time (docs/event-time.md)' },
    'strict-ts': { type: 'boolean', description: 'Accept only ts strings "yyyy-mm-dd hh:mm:ss[.fff|.ffffff]" (UTC), as before; by default also T, Z, offsets, 0-9 fractional digits and epoch ms' },
    partitions: { type: 'string', value: 'N', default: '3', description: 'Partitions of the input topic if it has to be created' },
    'until-end': { type: 'boolean', description: 'Exit once everything in the input at start is processed (single member)' },
    'stop-at-end': alias('until-end'),
    ...DELIVERY_FLAGS,
  },
  examples: [
    'tickflow indicators --brokers 127.0.0.1:9092 --database-url postgres://postgres@127.0.0.1:5432/tickflow',
    'tickflow indicators --input ticks --symbol-field s --price-field p --ts-field t --output ticks-volatility',
    'tickflow indicators --until-end --json',
    'tickflow indicators --brokers 127.0.0.1:9092 --commit-interval 5s',
    'tickflow indicators --brokers 127.0.0.1:9092 --at-least-once',
  ],
  configure(values) {
    const topic = topicName(values, 'input', topicOnly(values, 'input', 'prices', 'the indicators keep their position per partition in PostgreSQL; replay the file into a topic first (tickflow replay FILE --output prices)'));
    const group = str(values, 'group') ?? 'tickflow-indicators';
    if (group.trim() === '') throw badFlag('group', 'must not be empty');
    const fields = { ts: str(values, 'ts-field') ?? 'ts', symbol: str(values, 'symbol-field') ?? 'symbol', price: str(values, 'price-field') ?? 'price' };
    for (const [flag, name] of [['ts-field', fields.ts], ['symbol-field', fields.symbol], ['price-field', fields.price]]) {
      if (name === '') throw badFlag(flag, 'must not be empty');
    }
    if (new Set(Object.values(fields)).size < 3) throw badFlag('price-field', 'the ts, symbol and price fields must be three different names');
    const outputTopic = topicName(values, 'output', 'volatility');
    const deadLetterTopic = topicName(values, 'dead-letter-topic', `${topic}-dlq`);
    if (outputTopic === topic) throw badFlag('output', 'must differ from --input');
    if (deadLetterTopic === topic || deadLetterTopic === outputTopic) throw badFlag('dead-letter-topic', 'must differ from --input and --output');
    return {
      inputTopic: topic,
      outputTopic,
      deadLetterTopic,
      group,
      window: int(values, 'points', 100, { min: 3, max: 100_000 }),
      fields,
      partitions: int(values, 'partitions', 3, { min: 1, max: 10_000 }),
      stopAtEnd: bool(values, 'until-end'),
      strictTs: bool(values, 'strict-ts'),
      maxPriceRatio: num(values, 'max-price-ratio', 10, { exclusiveMin: 1 }),
      maxTimeSkewMs: duration(values, 'max-time-skew', 600_000, { minMs: 1 }),
      maxRecordBytes: maxRecordBytes(values),
      ...delivery(values),
    };
  },
  async run({ config, shared, out, signal, logger, openLog, openDatabase }) {
    const log = await stdioLog(await openLog(), { output: config.outputTopic, out });
    const db = await openDatabase();
    logger.info({ log: log.description, database: db.description, topic: config.inputTopic, output: config.outputTopic, group: config.group }, 'indicators starting');
    const report = await runIndicators({ ...config, log, db, logger, signal });
    // With --output -, stdout carries only the published records.
    const summary = config.outputTopic === STDIN_TOPIC ? process.stderr : out;
    if (shared.json) summary.write(`${JSON.stringify(report)}\n`);
    else summary.write(`read ${report.read}, published ${report.published} to ${config.outputTopic}, dead-lettered ${report.deadLettered} to ${config.deadLetterTopic}\n`);
  },
});
