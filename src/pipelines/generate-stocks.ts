import { setTimeout as sleep } from 'node:timers/promises';
import { encodeStockTick, stockTicks } from '../core/stock-ticks.ts';
import type { TickerMean } from '../core/stock-ticks.ts';
import { seededRandom } from '../core/random.ts';
import type { Log, RecordToProduce } from '../log/types.ts';
import { metrics } from '../observability/metrics.ts';
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
  clock?: { now(): number; sleep(ms: number, signal?: AbortSignal): Promise<void> };
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

const systemClock = {
  now: () => Date.now(),
  sleep: (ms: number, signal?: AbortSignal) => sleep(ms, undefined, { signal }).catch(() => undefined),
};

/** Catch-up after a stall is sent in batches of at most this many messages. */
const MAX_BATCH = 5000;

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
    while (sent < limit && !options.signal?.aborted) {
      const due = Math.min(limit, Math.floor((now() - started) / periodMs) + 1, sent + MAX_BATCH);
      if (due > sent) {
        const batch: RecordToProduce[] = [];
        for (let i = sent; i < due; i++) {
          const tick = nextTick(eventTimeOf(i));
          batch.push({ key: tick.tickers[0].name, value: encodeStockTick(tick) });
        }
        await producer.send(options.topic, batch);
        sent = due;
        metrics.recordsOut.inc({ pipeline: 'generate-stocks', sink: options.topic }, batch.length);
        options.onSent?.(sent);
        continue;
      }
      const wait = started + sent * periodMs - now();
      if (wait > 0) await clock.sleep(wait, options.signal);
    }
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
