import { encodeStockTick, stockTicks } from '../core/stock-ticks.ts';
import type { TickerMean } from '../core/stock-ticks.ts';
import { seededRandom } from '../core/random.ts';
import type { Log } from '../log/types.ts';
import { metrics } from '../observability/metrics.ts';
import { sendPaced, systemClock } from './paced-send.ts';
import type { PacingClock } from './paced-send.ts';
import { openRunOutput } from './transactional-output.ts';
import type { ProducerTransactions, TransactionTally } from './transactional-output.ts';

export interface GenerateStocksOptions {
  topic: string;
  /** Partitions when the topic is created. */
  partitions: number;
  /** Messages per second, evenly spaced. */
  rate: number;
  tickers: readonly TickerMean[];
  /** ±spread around each mean: 0.1 = ±10 %. */
  spread: number;
  seed: string;
  /** Event time of message 0 (epoch ms); null = the wall clock when the run starts. */
  startTime: number | null;
  /** Stop after this many messages (null = no limit). */
  count: number | null;
  /** Stop after this much schedule time (null = no limit). */
  durationMs: number | null;
  /** --transactional: the run (or each batch of `size` messages) in Kafka transactions. */
  transactions?: ProducerTransactions | null;
  signal?: AbortSignal;
  /** Wall clock, epoch ms, and a way to wait on it; injectable for tests. */
  clock?: PacingClock;
  onSent?: (sent: number) => void;
}

export interface GenerateStocksSummary {
  messages: number;
  seconds: number;
  firstEventTime: number | null;
  lastEventTime: number | null;
  /** What the transactions committed (null without --transactional). */
  transactions: TransactionTally | null;
}

/**
 * A seeded stream of stock ticks, paced on an absolute schedule: message i is due at
 * start + i/rate and carries event time eventStart + i/rate, so the rate never drifts
 * (sleeping a fixed time per message would add the send time every time) and event
 * times are evenly spaced. After a stall (a slow broker) the overdue messages go out
 * at once and the schedule goes on. Key = the first ticker of the message. With
 * transactions, a stop before --count or --duration (Ctrl-C) aborts a whole-run
 * transaction and commits the last batch.
 */
export async function generateStocks(log: Log, options: GenerateStocksOptions): Promise<GenerateStocksSummary> {
  const clock = options.clock ?? systemClock;
  const now = () => clock.now();
  const producer = await openRunOutput(log, options.transactions);
  try {
    await log.createTopics([{ name: options.topic, partitions: options.partitions }]);
  } catch (error) {
    await producer.close();
    throw error;
  }
  const nextTick = stockTicks({ random: seededRandom(options.seed), tickers: options.tickers, spread: options.spread });
  const periodMs = 1000 / options.rate;
  const started = now();
  const eventStart = options.startTime ?? started;
  const limit = Math.min(
    options.count ?? Number.POSITIVE_INFINITY,
    options.durationMs === null ? Number.POSITIVE_INFINITY : Math.ceil(options.durationMs / periodMs),
  );
  const eventTimeOf = (i: number) => Math.round(eventStart + i * periodMs);
  let sent = 0;
  try {
    sent = await sendPaced({
      rate: options.rate,
      limit,
      started,
      clock,
      signal: options.signal,
      next: (i) => {
        const tick = nextTick(eventTimeOf(i));
        return { key: tick.tickers[0].name, value: encodeStockTick(tick) };
      },
      send: async (batch) => {
        await producer.send(options.topic, batch);
        metrics.recordsOut.inc({ pipeline: 'generate-stocks', sink: options.topic }, batch.length);
      },
      onSent: options.onSent,
    });
    await producer.finish(sent < limit);
  } finally {
    await producer.close();
  }
  return {
    messages: sent,
    seconds: (now() - started) / 1000,
    firstEventTime: sent > 0 ? eventTimeOf(0) : null,
    lastEventTime: sent > 0 ? eventTimeOf(sent - 1) : null,
    transactions: producer.tally,
  };
}
