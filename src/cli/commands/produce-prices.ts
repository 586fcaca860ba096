import { DEFAULT_SYMBOLS } from '../../core/prices.ts';
import { MAX_SYMBOL_LENGTH, isSymbol } from '../../core/price-message.ts';
import type { SymbolModel } from '../../core/prices.ts';
import { TickflowError } from '../../core/errors.ts';
import { metrics } from '../../observability/metrics.ts';
import { producePrices } from '../../pipelines/produce-prices.ts';
import { alias, defineCommand } from '../command.ts';
import type { FlagValues } from '../command.ts';
import { badFlag, duration, instant, int, num, str } from '../flags.ts';
import { STDIN_TOPIC, stdioLog } from '../stdio-log.ts';
import { formatBytes, formatCount, progressBar } from '../progress.ts';
import { TRANSACTION_FLAGS, describeTransactions, producerTransactions } from '../transaction-flags.ts';

/** `--symbols AAPL=238:4,MSFT` → models; a bare symbol takes its default model or 100:2. */
export function parseSymbolModels(values: FlagValues, flag: string): SymbolModel[] {
  const raw = str(values, flag);
  if (raw === undefined) return [...DEFAULT_SYMBOLS];
  const models = raw.split(',').map((item) => item.trim()).filter(Boolean).map((item) => {
    const match = /^([A-Za-z0-9._-]+)(?:=(\d+(?:\.\d+)?)(?::(\d+(?:\.\d+)?))?)?$/.exec(item);
    if (!match) throw badFlag(flag, `expects SYMBOL[=MEAN[:STDDEV]],..., got "${item}"`);
    const known = DEFAULT_SYMBOLS.find((s) => s.symbol === match[1]);
    const mean = match[2] !== undefined ? Number(match[2]) : known?.mean ?? 100;
    const stddev = match[3] !== undefined ? Number(match[3]) : known?.stddev ?? mean * 0.02;
    if (!isSymbol(match[1]!)) throw badFlag(flag, `symbol ${match[1]} is longer than ${MAX_SYMBOL_LENGTH} characters`);
    if (!(mean > 0)) throw badFlag(flag, `mean of ${match[1]} must be positive`);
    return { symbol: match[1], mean, stddev };
  });
  if (models.length === 0) throw badFlag(flag, 'expects at least one symbol');
  if (new Set(models.map((m) => m.symbol)).size !== models.length) throw badFlag(flag, 'lists a symbol twice');
  return models;
}

const FIXED_START = Date.UTC(2021, 2, 10, 16, 0, 0);

export const command = defineCommand({
  name: ['produce', 'prices'],
  summary: 'Send N seeded price ticks to the prices topic (exactly once) and exit',
  description: [
    'Each message is {"ts": "yyyy-mm-dd hh:mm:ss.fff", "symbol": "AAPL", "price": 238.32}, keyed by',
    'symbol: ts is UTC event time, the price is normal per symbol with two decimals, and a small',
    'share of anomalies is injected so that outliers exist. The producer is idempotent with',
    'acks=all, so one run adds exactly N messages.',
    'With --transactional the run is one Kafka transaction (or one per --transaction-size',
    'messages): read_committed readers see all N or none; a run killed midway leaves nothing',
    'visible, and running it again with the same --transactional-id aborts what it left open.',
  ].join('\n'),
  flags: {
    count: { type: 'string', short: 'n', value: 'N', default: '5000', description: 'Messages to send' },
    output: { type: 'string', value: 'TOPIC', default: 'prices', description: 'Topic (created if missing), or - for stdout (JSON Lines)' },
    topic: alias('output'),
    partitions: { type: 'string', value: 'N', default: '3', description: 'Partitions when the topic is created' },
    symbols: { type: 'string', value: 'LIST', description: 'SYMBOL[=MEAN[:STDDEV]],... (default AAPL=238:4,MSFT=415:6,AMZN=185:3.5,GOOG=165:3,TSLA=250:9)' },
    'anomaly-rate': { type: 'string', value: 'P', default: '0.005', description: 'Share of ticks replaced by anomalies (0..1)' },
    'anomaly-sigmas': { type: 'string', value: 'K', default: '6', description: 'Anomalies sit K to K+2 stddevs from the mean' },
    seed: { type: 'string', value: 'SEED', description: 'Seed for reproducible messages (default: random)' },
    start: { type: 'string', value: 'TIME', description: 'Event time of the first tick: ISO 8601, or epoch with unit (1714564800s, 1714564800000ms) (default: now − N×interval; 2021-03-10T16:00:00Z with --seed)' },
    interval: { type: 'string', value: 'DURATION', default: '100ms', description: 'Event-time spacing between ticks' },
    'batch-size': { type: 'string', value: 'N', default: '5000', description: 'Messages per produce batch' },
    ...TRANSACTION_FLAGS,
  },
  examples: [
    'tickflow produce prices --brokers 127.0.0.1:9092',
    'tickflow produce prices -n 1000000 --seed 7 --partitions 6 --brokers 127.0.0.1:9092',
    'tickflow produce prices --symbols BTC=64000:900,ETH=3100:60 --anomaly-rate 0.01',
    'tickflow produce prices -n 1000000 --transactional --transaction-size 100000 --brokers 127.0.0.1:9092',
  ],
  configure(values) {
    const count = int(values, 'count', 5000, { min: 0, max: 1_000_000_000 });
    const interval = duration(values, 'interval', 100, { bareUnit: 'ms' });
    if (!Number.isInteger(interval)) throw badFlag('interval', 'must be a whole number of milliseconds');
    const seed = str(values, 'seed');
    const startMs = instant(values, 'start', { bareUnit: 'ms' }) ?? (seed !== undefined ? FIXED_START : Date.now() - count * interval);
    const topic = str(values, 'output') || 'prices';
    return {
      count,
      topic,
      transactions: producerTransactions(values, 'produce-prices', topic),
      partitions: int(values, 'partitions', 3, { min: 1, max: 10_000 }),
      symbols: parseSymbolModels(values, 'symbols'),
      anomalyRate: num(values, 'anomaly-rate', 0.005, { min: 0, max: 1 }),
      anomalySigmas: num(values, 'anomaly-sigmas', 6, { min: 0 }),
      seed: seed ?? `${Date.now()}-${process.pid}`,
      startMs,
      stepMs: interval,
      batchSize: int(values, 'batch-size', 5000, { min: 1, max: 1_000_000 }),
    };
  },
  async run({ config, shared, out, signal, logger, openLog }) {
    const log = await stdioLog(await openLog(), { output: config.topic, out });
    if (log.kind === 'memory' && config.topic !== STDIN_TOPIC) logger.debug({ log: log.description }, 'no --brokers: producing into the embedded log');
    const progress = progressBar('produced', { total: config.count, unit: 'msgs' });
    let counted = 0;
    const summary = await producePrices(log, {
      ...config,
      signal,
      onProgress: (sent) => {
        metrics.recordsOut.inc({ pipeline: 'produce-prices', sink: config.topic }, sent - counted);
        counted = sent;
        progress.update(sent);
      },
    });
    progress.finish();
    const rate = summary.seconds > 0 ? summary.messages / summary.seconds : 0;
    // With --output -, stdout carries only the messages.
    const report = config.topic === STDIN_TOPIC ? process.stderr : out;
    const tally = summary.transactions;
    if (shared.json) {
      report.write(`${JSON.stringify({ topic: config.topic, ...summary, messagesPerSecond: Math.round(rate) })}\n`);
    } else {
      report.write(
        `produced ${summary.messages} messages (${summary.anomalies} anomalies) to ${config.topic}: ` +
          `${formatBytes(summary.bytes)} in ${summary.seconds.toFixed(2)} s, ${formatCount(rate)} msgs/s, ` +
          `${formatBytes(summary.bytes / Math.max(summary.seconds, 1e-9))}/s${tally ? `; ${describeTransactions(tally)}` : ''}\n`,
      );
    }
    if (summary.messages < config.count) {
      const visible = !tally ? '' : tally.committed === 0 ? '; the transaction was aborted: none is visible to read_committed readers' : `; ${tally.committed} of them in committed transactions`;
      throw new TickflowError('BAD_INPUT', `interrupted after ${summary.messages} of ${config.count} messages${visible}`);
    }
  },
});
