/**
 * One dead-letter format for every pipeline (docs/dead-letters.md). Pure: bytes in,
 * records to produce out; no I/O.
 *
 * A dead letter is the rejected record's key and value byte for byte, keyed like the
 * source, with headers
 *   x-reason            stable code of why it was rejected (`not-json`, `late`, `too-large`…)
 *   x-error             one line saying what was wrong
 *   x-source-topic, x-source-partition, x-source-offset   where the original is
 *   x-pipeline          who rejected it
 * plus the rejection's own `x-` facts (`x-late-by-seconds`…) and the original record's
 * headers under their own names (ours win a clash).
 *
 * A dead letter that would not fit the dead-letter topic goes as a reference instead: a
 * small JSON value `{"topic","partition","offset","size","reason","firstBytes"}` with
 * `x-reason: too-large` and `x-original-reason` the reason it was rejected for.
 */
import type { LogRecord, RecordToProduce } from '../log/types.ts';

/** Kafka's default `max.message.bytes` (topic) and `message.max.bytes` (broker): 1 MiB + 12. */
export const KAFKA_DEFAULT_MAX_MESSAGE_BYTES = 1_048_588;
/** A v2 record batch's header (base offset to record count), counted by the broker's limit. */
export const RECORD_BATCH_OVERHEAD = 61;
/**
 * The largest dead letter (as `recordBytes` counts it) that a topic with Kafka's default
 * limit accepts: a record of this size fits alone in one batch. Larger ones go as a reference.
 */
export const DEFAULT_DEAD_LETTER_LIMIT = KAFKA_DEFAULT_MAX_MESSAGE_BYTES - RECORD_BATCH_OVERHEAD;
/** Default of `--max-record-bytes`: values above it are rejected as `too-large` unparsed. */
export const DEFAULT_MAX_RECORD_BYTES = 1 << 20;
/** How much of the value a reference quotes (as base64). */
export const REFERENCE_FIRST_BYTES = 1024;

export const TOO_LARGE = 'too-large';

/** A record a pipeline refuses, and why. */
export interface Rejection {
  record: LogRecord;
  /** A stable code (kebab-case), e.g. `not-json`, `bad-ts`, `late`, `too-large`. */
  reason: string;
  /** One line for a human. */
  error: string;
  /** Extra facts, each named `x-…` (e.g. `x-late-by-seconds`). */
  headers?: Record<string, string>;
}

/** What a reference-form dead letter's value holds. */
export interface DeadLetterReference {
  topic: string;
  partition: number;
  /** The source offset as a decimal string (an int64). */
  offset: string;
  /** The source record's size as `recordBytes` counts it (key, value, headers, overhead). */
  size: number;
  /** The reason it was rejected for (also in `x-original-reason`). */
  reason: string;
  /** The first 1 KiB of the value, base64; null for a null value. */
  firstBytes: string | null;
}

const SOURCE_HEADERS = ['x-reason', 'x-error', 'x-source-topic', 'x-source-partition', 'x-source-offset', 'x-pipeline'] as const;

/**
 * The dead letter for a rejected record: the full form when it fits `limitBytes` (as
 * `recordBytes` counts it), else the reference form.
 */
export function deadLetter(pipeline: string, rejection: Rejection, limitBytes: number = DEFAULT_DEAD_LETTER_LIMIT): RecordToProduce {
  const { record } = rejection;
  const ours = ownHeaders(pipeline, rejection);
  const full: RecordToProduce = { key: record.key, value: record.value, headers: { ...originalHeaders(record, ours), ...ours } };
  return recordBytes(full) <= limitBytes ? full : referenceFor(record, ours, limitBytes);
}

/**
 * The reference form of a full-form dead letter (for a topic that turned out to take less
 * than `deadLetter` assumed). Everything it needs is in the dead letter's headers.
 */
export function asReference(letter: RecordToProduce, limitBytes: number = DEFAULT_DEAD_LETTER_LIMIT): RecordToProduce {
  const headers = letter.headers ?? {};
  const text = (name: string) => {
    const v = headers[name];
    return v === undefined ? '' : typeof v === 'string' ? v : v.toString('utf8');
  };
  const ours: Record<string, string> = {};
  const others: Record<string, Buffer | string> = {};
  for (const [name, v] of Object.entries(headers)) {
    if (name.startsWith('x-')) ours[name] = typeof v === 'string' ? v : v.toString('utf8');
    else others[name] = v;
  }
  const source: LogRecord = {
    topic: text('x-source-topic'),
    partition: Number(text('x-source-partition')),
    offset: BigInt(text('x-source-offset') || '0'),
    timestamp: 0n,
    key: toBuffer(letter.key),
    value: toBuffer(letter.value),
    headers: Object.entries(others).map(([name, v]) => [name, toBuffer(v)!] as const),
  };
  return referenceFor(source, ours, limitBytes);
}

/** True when the dead letter is already in the reference form. */
export function isReference(letter: RecordToProduce): boolean {
  return letter.headers?.['x-original-reason'] !== undefined;
}

/**
 * The guard pipelines apply before decoding: true when the record's value is larger than
 * `maxRecordBytes` (`--max-record-bytes`). Such a record is rejected as `too-large`
 * without being parsed. Only the value counts: it is what pipelines parse, and its length
 * is known without touching the bytes.
 */
export function tooLarge(record: LogRecord, maxRecordBytes: number): boolean {
  return valueLength(record) > maxRecordBytes;
}

/** The rejection for a record the guard refused. */
export function tooLargeRejection(record: LogRecord, maxRecordBytes: number): Rejection {
  return { record, reason: TOO_LARGE, error: `value of ${valueLength(record)} bytes is over --max-record-bytes ${maxRecordBytes}; not parsed` };
}

/**
 * Bytes of the record as Kafka encodes it in a v2 batch (length, attributes, timestamp and
 * offset deltas of a record alone in its batch, key, value, headers) — what the broker's
 * `max.message.bytes` counts, less the batch header (RECORD_BATCH_OVERHEAD).
 */
export function recordBytes(record: LogRecord | RecordToProduce): number {
  const keyBytes = byteLength(record.key);
  const valueBytes = byteLength(record.value);
  // attributes (1), timestamp delta 0 (1), offset delta 0 (1)
  let body = 3 + varintSize(keyBytes) + Math.max(0, keyBytes) + varintSize(valueBytes) + Math.max(0, valueBytes);
  const headers: ReadonlyArray<readonly [string, Buffer | string]> = Array.isArray(record.headers)
    ? record.headers
    : Object.entries(record.headers ?? {});
  body += varintSize(headers.length);
  for (const [name, value] of headers) {
    const nameLength = Buffer.byteLength(name);
    const length = byteLength(value);
    body += varintSize(nameLength) + nameLength + varintSize(length) + Math.max(0, length);
  }
  return varintSize(body) + body;
}

function ownHeaders(pipeline: string, { record, reason, error, headers }: Rejection): Record<string, string> {
  const ours: Record<string, string> = {};
  for (const [name, value] of Object.entries(headers ?? {})) {
    if (!name.startsWith('x-')) throw new TypeError(`dead-letter header ${name} must start with x-`);
    ours[name] = value;
  }
  ours['x-reason'] = reason;
  ours['x-error'] = error;
  ours['x-source-topic'] = record.topic;
  ours['x-source-partition'] = String(record.partition);
  ours['x-source-offset'] = String(record.offset);
  ours['x-pipeline'] = pipeline;
  return ours;
}

/** The source record's headers that do not clash with ours (of repeated names, the last). */
function originalHeaders(record: LogRecord, ours: Record<string, string>): Record<string, Buffer> {
  const kept: Record<string, Buffer> = {};
  for (const [name, value] of record.headers) {
    if (!(name in ours) && name !== 'x-original-reason') kept[name] = value;
  }
  return kept;
}

/**
 * The reference form. It keeps the key and the original headers while they fit the
 * limit; if not, it drops the original headers, then the key, so that it always fits a
 * topic that takes a few KiB.
 */
function referenceFor(record: LogRecord, ours: Record<string, string>, limitBytes: number): RecordToProduce {
  const originalReason = ours['x-original-reason'] ?? ours['x-reason'] ?? '';
  const reference: DeadLetterReference = {
    topic: record.topic,
    partition: record.partition,
    offset: String(record.offset),
    size: recordBytes(record),
    reason: originalReason,
    firstBytes: record.value === null ? null : record.value.subarray(0, REFERENCE_FIRST_BYTES).toString('base64'),
  };
  const headers: Record<string, string> = { ...ours, 'x-reason': TOO_LARGE, 'x-original-reason': originalReason };
  for (const name of SOURCE_HEADERS) if (name !== 'x-reason') headers[name] = ours[name] ?? '';
  const value = JSON.stringify(reference);
  const withAll: RecordToProduce = { key: record.key, value, headers: { ...originalHeaders(record, headers), ...headers } };
  if (recordBytes(withAll) <= limitBytes) return withAll;
  const withKey: RecordToProduce = { key: record.key, value, headers };
  if (recordBytes(withKey) <= limitBytes) return withKey;
  return { key: null, value, headers };
}

function toBuffer(value: Buffer | string | null | undefined): Buffer | null {
  if (value === null || value === undefined) return null;
  return typeof value === 'string' ? Buffer.from(value, 'utf8') : value;
}

function byteLength(value: Buffer | string | null | undefined): number {
  if (value === null || value === undefined) return -1;
  return typeof value === 'string' ? Buffer.byteLength(value) : value.length;
}

/** Zig-zag varint size, as Kafka's record fields use. */
function varintSize(value: number): number {
  let v = ((value << 1) ^ (value >> 31)) >>> 0;
  let n = 1;
  while (v >= 0x80) {
    v >>>= 7;
    n++;
  }
  return n;
}

const EMPTY = Buffer.alloc(0);
const scratch = { data: EMPTY, start: 0, end: 0 };

/** The value's length without a Buffer view when the adapter can (see valueRange in log/types.ts). */
function valueLength(record: LogRecord): number {
  const fast = (record as { valueRange?: (out: typeof scratch) => boolean }).valueRange;
  if (!fast) return record.value?.length ?? 0;
  const length = fast.call(record, scratch) ? scratch.end - scratch.start : 0;
  scratch.data = EMPTY; // do not keep the fetched bytes alive
  return length;
}
