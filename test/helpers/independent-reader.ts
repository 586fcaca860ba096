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
}

export async function readTopicIndependently(brokers: string[], topic: string): Promise<RawMessage[]> {
  const kafka = new kafkajs.Kafka({ clientId: 'independent-reader', brokers, logLevel: kafkajs.logLevel.NOTHING });
  const admin = kafka.admin();
  await admin.connect();
  const ends = await admin.fetchTopicOffsets(topic);
  await admin.disconnect();
  const remaining = new Map(ends.filter((p) => p.high !== p.low).map((p) => [p.partition, BigInt(p.high)]));
  const messages: RawMessage[] = [];
  if (remaining.size === 0) return messages;
  const consumer = kafka.consumer({ groupId: `independent-${randomUUID()}` });
  await consumer.connect();
  await consumer.subscribe({ topic, fromBeginning: true });
  await new Promise<void>((resolve, reject) => {
    consumer
      .run({
        eachMessage: async ({ partition, message }) => {
          const end = remaining.get(partition);
          if (end === undefined || BigInt(message.offset) >= end) return;
          messages.push({ partition, offset: message.offset, key: message.key?.toString() ?? null, value: message.value?.toString() ?? null });
          if (BigInt(message.offset) + 1n >= end) remaining.delete(partition);
          if (remaining.size === 0) resolve();
        },
      })
      .catch(reject);
  });
  await consumer.disconnect();
  return messages;
}
