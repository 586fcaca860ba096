import { encodePrice, generatePrices } from '../core/prices.ts';
import type { SymbolModel } from '../core/prices.ts';
import { seededRandom } from '../core/random.ts';
import type { Log, RecordToProduce } from '../log/types.ts';
import { openRunOutput } from './transactional-output.ts';
import type { ProducerTransactions, TransactionTally } from './transactional-output.ts';

export interface ProducePricesOptions {
  topic: string;
  partitions: number;
  count: number;
  symbols: readonly SymbolModel[];
  anomalyRate: number;
  anomalySigmas: number;
  seed: string;
  startMs: number;
  stepMs: number;
  batchSize: number;
  /** --transactional: the run (or each batch of `size` records) in Kafka transactions. */
  transactions?: ProducerTransactions | null;
  signal?: AbortSignal;
  onProgress?: (sent: number, bytes: number) => void;
}

export interface ProduceSummary {
  messages: number;
  bytes: number;
  anomalies: number;
  seconds: number;
  /** What the transactions committed (null without --transactional). */
  transactions: TransactionTally | null;
}

/**
 * Generates the seeded ticks and produces them keyed by symbol, in batches, through one
 * idempotent producer (acks=all): a run adds exactly `count` messages. While one batch is
 * in flight the next is encoded. With transactions, a run stopped before its end (Ctrl-C)
 * aborts the whole-run transaction; batches commit what they hold.
 */
export async function producePrices(log: Log, options: ProducePricesOptions): Promise<ProduceSummary> {
  const started = performance.now();
  const producer = await openRunOutput(log, options.transactions);
  try {
    await log.createTopics([{ name: options.topic, partitions: options.partitions }]);
  } catch (error) {
    await producer.close();
    throw error;
  }
  const ticks = generatePrices({ ...options, random: seededRandom(options.seed) });
  let messages = 0;
  let bytes = 0;
  let anomalies = 0;
  let inFlight: Promise<void> | null = null;
  try {
    while (messages < options.count && !options.signal?.aborted) {
      const batch: RecordToProduce[] = [];
      let batchBytes = 0;
      for (let i = 0; i < options.batchSize; i++) {
        const next = ticks.next();
        if (next.done) break;
        const value = encodePrice(next.value);
        batchBytes += value.length;
        if (next.value.anomaly) anomalies++;
        batch.push({ key: next.value.symbol, value });
      }
      if (batch.length === 0) break;
      if (inFlight) await inFlight;
      inFlight = producer.send(options.topic, batch);
      messages += batch.length;
      bytes += batchBytes;
      inFlight.then(() => options.onProgress?.(messages, bytes), () => {});
    }
    if (inFlight) await inFlight;
    await producer.finish(messages < options.count);
  } finally {
    await producer.close();
  }
  return { messages, bytes, anomalies, seconds: (performance.now() - started) / 1000, transactions: producer.tally };
}
