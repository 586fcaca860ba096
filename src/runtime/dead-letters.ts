/**
 * One dead-letter format for every pipeline: the original key and value byte for byte,
 * with headers x-reason, x-error, x-source-topic, x-source-partition, x-source-offset,
 * x-pipeline. A record too large for the dead-letter topic goes as a reference.
 */
import type { LogRecord, RecordToProduce } from '../log/types.ts';

/** What fits Kafka's default max.message.bytes (1,048,588) with room for the batch overhead. */
export const DEFAULT_DEAD_LETTER_LIMIT = 1_000_000;
export const DEFAULT_MAX_RECORD_BYTES = 1 << 20;

export interface Rejection {
  record: LogRecord;
  reason: string;
  error: string;
  headers?: Record<string, string>;
}

export function recordBytes(record: LogRecord): number {
  let bytes = (record.key?.length ?? 0) + (record.value?.length ?? 0);
  for (const [k, v] of record.headers) bytes += k.length + v.length;
  return bytes;
}

export function tooLarge(record: LogRecord, maxRecordBytes: number): boolean {
  return recordBytes(record) > maxRecordBytes;
}

export function deadLetter(pipeline: string, rejection: Rejection, limitBytes: number = DEFAULT_DEAD_LETTER_LIMIT): RecordToProduce {
  const { record, reason, error } = rejection;
  const headers: Record<string, string | Buffer> = {};
  for (const [k, v] of record.headers) headers[k] = v;
  Object.assign(headers, rejection.headers, {
    'x-reason': reason,
    'x-error': error,
    'x-source-topic': record.topic,
    'x-source-partition': String(record.partition),
    'x-source-offset': String(record.offset),
    'x-pipeline': pipeline,
  });
  const size = recordBytes(record);
  if (size + 1024 <= limitBytes) return { key: record.key, value: record.value, headers };
  const reference = {
    topic: record.topic,
    partition: record.partition,
    offset: String(record.offset),
    size,
    reason,
    firstBytes: (record.value ?? Buffer.alloc(0)).subarray(0, 1024).toString('base64'),
  };
  return { key: record.key, value: JSON.stringify(reference), headers: { ...rejection.headers, 'x-reason': 'too-large', 'x-original-reason': reason, 'x-error': error, 'x-source-topic': record.topic, 'x-source-partition': String(record.partition), 'x-source-offset': String(record.offset), 'x-pipeline': pipeline } };
}
