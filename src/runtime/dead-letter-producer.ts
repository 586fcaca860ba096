/**
 * Sends to dead-letter topics that survive a topic taking less than `deadLetter` assumed
 * (its `max.message.bytes` below Kafka's default): a send refused with MESSAGE_TOO_LARGE is
 * retried record by record, and a record refused alone goes in its reference form.
 */
import type { Producer, RecordToProduce } from '../log/types.ts';
import { asReference, isReference } from './dead-letters.ts';

/** Kafka's error code for a record batch over the topic's `max.message.bytes`. */
const MESSAGE_TOO_LARGE_CODE = 10;

/**
 * True when a send failed because Kafka found it too large: the log adapter's
 * `details.kafkaCode === 'MESSAGE_TOO_LARGE'` (or, from adapters that give the numeric
 * code, `details.code === 10`). Never decided on message text.
 */
export function isMessageTooLarge(error: unknown): boolean {
  const details = (error as { details?: Record<string, unknown> } | null)?.details;
  if (!details || typeof details !== 'object') return false;
  return details.kafkaCode === 'MESSAGE_TOO_LARGE' || details.code === MESSAGE_TOO_LARGE_CODE;
}

export interface DeadLetterFallbackOptions {
  /** Called for each dead letter that went as a reference after MESSAGE_TOO_LARGE. */
  onReference?: (topic: string, letter: RecordToProduce) => void;
}

/**
 * A producer that sends like `producer`, except that a send to one of `deadLetterTopics`
 * refused as too large is retried one record at a time, and a record refused alone is sent
 * as a reference. Records of such a send that the broker had already taken may be written
 * twice: dead letters are at least once.
 */
export function withDeadLetterFallback(producer: Producer, deadLetterTopics: Iterable<string>, options: DeadLetterFallbackOptions = {}): Producer {
  const topics = new Set(deadLetterTopics);
  const sendReference = async (topic: string, letter: RecordToProduce, refusal: unknown): Promise<void> => {
    if (isReference(letter)) throw refusal; // a topic that takes not even a few KiB
    const reference = asReference(letter);
    await producer.send(topic, [reference]);
    options.onReference?.(topic, reference);
  };
  const sendAlone = async (topic: string, letter: RecordToProduce): Promise<void> => {
    try {
      await producer.send(topic, [letter]);
    } catch (error) {
      if (!isMessageTooLarge(error)) throw error;
      await sendReference(topic, letter, error);
    }
  };
  return {
    send: async (topic, records) => {
      if (!topics.has(topic)) return producer.send(topic, records);
      try {
        await producer.send(topic, records);
      } catch (error) {
        if (!isMessageTooLarge(error)) throw error;
        if (records.length === 1) await sendReference(topic, records[0]!, error);
        else for (const letter of records) await sendAlone(topic, letter);
      }
    },
    close: () => producer.close(),
  };
}
