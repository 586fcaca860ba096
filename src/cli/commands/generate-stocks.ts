import { DEFAULT_TICKERS, MAX_PRICE, TICKER_NAME } from '../../core/stock-ticks.ts';
import type { TickerMean } from '../../core/stock-ticks.ts';
import { generateStocks } from '../../pipelines/generate-stocks.ts';
import { alias, defineCommand } from '../command.ts';
import type { FlagValues } from '../command.ts';
import { badFlag, duration, instant, int, num, str } from '../flags.ts';
import { sentLog } from '../progress.ts';
import { STDIN_TOPIC, stdioLog } from '../stdio-log.ts';
import { TRANSACTION_FLAGS, describeTransactions, producerTransactions } from '../transaction-flags.ts';

/** `--tickers AMZN=1902,MSFT=107` → means; a bare known name keeps its default mean. */
export function parseTickerMeans(values: FlagValues, flag: string): TickerMean[] {
  const raw = str(values, flag);
  if (raw === undefined) return [...DEFAULT_TICKERS];
  const tickers = raw.split(',').map((item) => item.trim()).filter(Boolean).map((item) => {
    const [name, mean] = item.split('=');
    if (!TICKER_NAME.test(name)) throw badFlag(flag, `"${name}" is not a ticker name (letters, digits, . _ -; at most 32)`);
    if (mean === undefined) {
      const known = DEFAULT_TICKERS.find((t) => t.name === name);
      if (!known) throw badFlag(flag, `give a mean price for ${name}, e.g. ${name}=100`);
      return known;
    }
    const value = Number(mean);
    if (mean.trim() === '' || !Number.isFinite(value) || value <= 0 || value > MAX_PRICE) {
      throw badFlag(flag, `mean price of ${name} must be a number in (0, ${MAX_PRICE}], got "${mean}"`);
    }
    return { name, mean: value };
  });
  if (tickers.length === 0) throw badFlag(flag, 'expects NAME=MEAN,...');
  if (new Set(tickers.map((t) => t.name)).size !== tickers.length) throw badFlag(flag, 'lists a ticker twice');
  return tickers;
}

export const command = defineCommand({
  name: ['generate', 'stocks'],
  summary: 'Stream stock ticks to the stocks topic at an even rate until stopped',
  description: [
    'Each message holds 1 to 3 distinct tickers with integer prices drawn uniformly within',
    '±10 % of their mean, and the event time as ISO 8601 UTC with milliseconds:',
    '  {"tickers": [{"name": "AMZN", "price": 1902}, {"name": "MSFT", "price": 107}], "ts": "2024-05-01T12:00:00.100Z"}',
    'Key = the first ticker of the message. Messages are paced on an absolute schedule',
    '(message i at start + i/rate), so the rate does not drift; event times are that schedule.',
    'Runs until Ctrl-C unless --count or --duration is given.',
    'With --transactional the messages go out in Kafka transactions of --transaction-size N',
    '(Ctrl-C commits the last one), or in one for the whole run, which then needs --count or',
    '--duration and is aborted by Ctrl-C: read_committed readers see a transaction whole or not at all.',
  ].join('\n'),
  flags: {
    output: { type: 'string', value: 'TOPIC', default: 'stocks', description: 'Topic (created if missing), or - for stdout (JSON Lines)' },
    topic: alias('output'),
    partitions: { type: 'string', value: 'N', default: '3', description: 'Partitions when the topic is created' },
    rate: { type: 'string', value: 'N', default: '10', description: 'Messages per second' },
    tickers: { type: 'string', value: 'LIST', description: 'NAME=MEAN,... (default AMZN=1902,MSFT=107,AAPL=215)' },
    spread: { type: 'string', value: 'F', default: '0.1', description: 'Prices within ±F of the mean (0.1 = ±10 %)' },
    count: { type: 'string', short: 'n', value: 'N', description: 'Stop after N messages' },
    duration: { type: 'string', value: 'DURATION', description: 'Stop after this long, e.g. 90s, 10m' },
    seed: { type: 'string', value: 'SEED', description: 'Seed for a reproducible stream (default: random, logged)' },
    start: { type: 'string', value: 'TIME', description: 'Event time of the first message: ISO 8601, or epoch with unit (1714564800s, 1714564800000ms) (default: now)' },
    'start-time': alias('start'),
    ...TRANSACTION_FLAGS,
  },
  examples: [
    'tickflow generate stocks --brokers 127.0.0.1:9092',
    'tickflow generate stocks --rate 100 --duration 5m --tickers AMZN=1902,MSFT=107,GOOG=140',
    'tickflow generate stocks --seed 42 --count 3000 --start 2024-01-01T00:00:00Z --json',
    'tickflow generate stocks --transactional --transaction-size 100 --brokers 127.0.0.1:9092',
  ],
  configure(values) {
    const startTime = instant(values, 'start', { bareUnit: 'ms' }) ?? null;
    const topic = str(values, 'output') || 'stocks';
    const rate = num(values, 'rate', 10, { exclusiveMin: 0, max: 1_000_000 });
    const count = values.count === undefined ? null : int(values, 'count', 0, { min: 0 });
    const durationMs = values.duration === undefined ? null : duration(values, 'duration', 0, { minMs: 1 });
    const transactions = producerTransactions(values, 'generate-stocks', topic);
    if (transactions && transactions.size === null) {
      // One transaction for the whole run: it must end, and end before the coordinator aborts it.
      const runMs = Math.min(count === null ? Infinity : (count / rate) * 1000, durationMs ?? Infinity);
      if (runMs === Infinity) throw badFlag('transactional', 'without --transaction-size the whole run is one transaction, which an endless stream never commits: give --count, --duration or --transaction-size');
      if (runMs >= transactions.timeoutMs) {
        throw badFlag('transactional', `the whole run (${runMs / 1000}s at --rate ${rate}) is one transaction, longer than --transaction-timeout ${transactions.timeoutMs / 1000}s: give --transaction-size, or a longer --transaction-timeout`);
      }
    }
    return {
      topic,
      partitions: int(values, 'partitions', 3, { min: 1, max: 10_000 }),
      rate,
      tickers: parseTickerMeans(values, 'tickers'),
      spread: num(values, 'spread', 0.1, { min: 0, max: 1 }),
      count,
      durationMs,
      seed: str(values, 'seed') ?? null,
      startTime,
      transactions,
    };
  },
  async run({ config, shared, logger, signal, out, openLog }) {
    const log = await stdioLog(await openLog(), { output: config.topic, out });
    const seed = config.seed ?? `${Date.now()}-${process.pid}`;
    logger.info({ topic: config.topic, rate: config.rate, tickers: config.tickers, seed, log: log.description }, 'generating stock ticks');
    const summary = await generateStocks(log, {
      ...config,
      seed,
      signal,
      onSent: sentLog(logger, 'stock ticks sent'),
    });
    const result = {
      topic: config.topic,
      messages: summary.messages,
      seconds: Number(summary.seconds.toFixed(3)),
      rate: summary.seconds > 0 ? Number((summary.messages / summary.seconds).toFixed(1)) : null,
      seed,
      firstEventTime: summary.firstEventTime === null ? null : new Date(summary.firstEventTime).toISOString(),
      lastEventTime: summary.lastEventTime === null ? null : new Date(summary.lastEventTime).toISOString(),
      transactions: summary.transactions,
    };
    // With --output -, stdout carries only the messages.
    const report = config.topic === STDIN_TOPIC ? process.stderr : out;
    if (shared.json) report.write(`${JSON.stringify(result)}\n`);
    else report.write(`sent ${result.messages} messages to ${result.topic} in ${result.seconds}s (seed ${seed})${summary.transactions ? `; ${describeTransactions(summary.transactions)}` : ''}\n`);
  },
});
