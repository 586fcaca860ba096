import { PriceWriter, TickGenerator } from '../core/prices.ts';
import type { SymbolModel } from '../core/prices.ts';
import { seededRandom } from '../core/random.ts';
import type { Log, RecordToProduce } from '../log/types.ts';
import { openRunOutput } from './transactional-output.ts';
import type { ProducerTransactions, TransactionTally } from './transactional-output.ts';

const SLAB_BYTES = 1 << 20;

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
  const ticks = new TickGenerator({ ...options, random: seededRandom(options.seed) });
  const writer = new PriceWriter();
  let messages = 0;
  let bytes = 0;
  let anomalies = 0;
  let inFlight: Promise<void> | null = null;
  try {
    while (messages < options.count && !options.signal?.aborted) {
      const batch: RecordToProduce[] = [];
      let batchBytes = 0;
      // The batch's messages side by side in slabs; each record's value is a view of its bytes.
      let slab = Buffer.allocUnsafe(SLAB_BYTES);
      let pos = 0;
      for (let i = 0; i < options.batchSize; i++) {
        if (!ticks.next()) break;
        const { timeMs, symbol, price, anomaly } = ticks.tick;
        const room = writer.maxBytes(symbol);
        if (pos + room > slab.length) {
          slab = Buffer.allocUnsafe(Math.max(SLAB_BYTES, room));
          pos = 0;
        }
        const end = writer.write(timeMs, symbol, price, slab, pos);
        batchBytes += end - pos;
        if (anomaly) anomalies++;
        batch.push({ key: writer.key(symbol), value: slab.subarray(pos, end) });
        pos = end;
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
