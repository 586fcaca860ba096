/**
 * Reads a whole topic with KafkaJS — a different client from the one tickflow uses — so
 * that tests check tickflow's output against bytes read independently.
 */
import kafkajs from 'kafkajs';
import { randomUUID } from 'node:crypto';

export interface RawMessage {
  partition: number;
  offset: string;
  key: string | null;
  value: string | null;
  headers: Record<string, string>;
}

export async function readTopicIndependently(brokers: string[], topic: string): Promise<RawMessage[]> {
  const messages: RawMessage[] = [];
  await forEachMessageIndependently(brokers, topic, (m) => void messages.push(m));
  return messages;
}

/**
 * Every message up to the end offsets at the start, handed over one by one (a topic of
 * millions need not be held), partition by partition in offset order; returns the count.
 */
export async function forEachMessageIndependently(brokers: string[], topic: string, onMessage: (message: RawMessage) => void, timeoutMs = 180_000): Promise<number> {
  const kafka = new kafkajs.Kafka({ clientId: 'independent-reader', brokers, logLevel: kafkajs.logLevel.NOTHING });
  const admin = kafka.admin();
  await admin.connect();
  const ends = await admin.fetchTopicOffsets(topic);
  await admin.disconnect();
  const remaining = new Map(ends.filter((p) => p.high !== p.low).map((p) => [p.partition, BigInt(p.high)]));
  let count = 0;
  if (remaining.size === 0) return count;
  const consumer = kafka.consumer({ groupId: `independent-${randomUUID()}`, maxBytes: 32 << 20, maxBytesPerPartition: 8 << 20 });
  await consumer.connect();
  await consumer.subscribe({ topic, fromBeginning: true });
  let timer: NodeJS.Timeout | undefined;
  const reading = new Promise<void>((resolve, reject) => {
    // Bounded: a partition that never reaches its end (an open transaction holds read_committed
    // readers at its start) fails the test instead of keeping the test file alive forever.
    timer = setTimeout(() => reject(new Error(`independent reader: ${topic} not read to its end in ${timeoutMs / 1000} s; partitions short of it: ${[...remaining.keys()].join(', ')}`)), timeoutMs);
    // A transactional topic ends in a commit marker: the last offset below the end is a
    // control record that KafkaJS never hands to eachBatch. A partition is therefore done
    // when a fetched batch — data or markers only — reaches its end offset, which the
    // end-of-batch event reports for both.
    consumer.on(consumer.events.END_BATCH_PROCESS, ({ payload }) => {
      const end = remaining.get(payload.partition);
      if (end !== undefined && BigInt(payload.lastOffset) + 1n >= end) remaining.delete(payload.partition);
      if (remaining.size === 0) resolve();
    });
    consumer
      .run({
        eachBatch: async ({ batch, resolveOffset }) => {
          const end = remaining.get(batch.partition);
          if (end === undefined) return;
          for (const message of batch.messages) {
            if (BigInt(message.offset) >= end) break;
            const headers = Object.fromEntries(Object.entries(message.headers ?? {}).map(([k, v]) => [k, String(v)]));
            onMessage({ partition: batch.partition, offset: message.offset, key: message.key?.toString() ?? null, value: message.value?.toString() ?? null, headers });
            count++;
            resolveOffset(message.offset);
          }
        },
      })
      .catch(reject);
  });
  try {
    await reading;
  } finally {
    clearTimeout(timer);
    await consumer.disconnect();
  }
  return count;
}
