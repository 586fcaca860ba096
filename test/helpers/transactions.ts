import { KafkaLog } from '../../src/log/kafka.ts';
import type { Log } from '../../src/log/types.ts';
import { KAFKA_BROKERS } from './env.ts';

/**
 * Waits (up to `maxMs`) until no transaction is open on the topic: the last stable offset
 * of every partition equals its high watermark. A commit returns once it is decided; the
 * markers that make its records readable at read_committed follow within milliseconds.
 */
export async function transactionsSettled(log: Log, topic: string, maxMs = 10_000): Promise<boolean> {
  if (log.kind !== 'kafka') return true;
  const uncommitted = new KafkaLog({ brokers: KAFKA_BROKERS, isolationLevel: 'read_uncommitted' });
  try {
    for (const started = Date.now(); Date.now() - started < maxMs; await new Promise((resolve) => setTimeout(resolve, 100))) {
      const [stable, high] = await Promise.all([log.offsets(topic), uncommitted.offsets(topic)]);
      if (stable.every((p, i) => p.latest === high[i]?.latest)) return true;
    }
    return false;
  } finally {
    await uncommitted.close();
  }
}

