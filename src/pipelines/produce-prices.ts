import { encodePrice, generatePrices } from '../core/prices.ts';
import type { SymbolModel } from '../core/prices.ts';
import { seededRandom } from '../core/random.ts';
import type { Log, RecordToProduce } from '../log/types.ts';

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
  signal?: AbortSignal;
  onProgress?: (sent: number, bytes: number) => void;
}

export interface ProduceSummary {
  messages: number;
  bytes: number;
  anomalies: number;
  seconds: number;
}

/**
 * Generates the seeded ticks and produces them keyed by symbol, in batches, through one
 * idempotent producer (acks=all): a run adds exactly `count` messages. While one batch is
 * in flight the next is encoded.
 */
export async function producePrices(log: Log, options: ProducePricesOptions): Promise<ProduceSummary> {
  const started = performance.now();
  await log.createTopics([{ name: options.topic, partitions: options.partitions }]);
  const producer = log.producer();
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
  } finally {
    await producer.close();
  }
  return { messages, bytes, anomalies, seconds: (performance.now() - started) / 1000 };
}
