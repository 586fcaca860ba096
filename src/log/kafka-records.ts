import { compressionsAlgorithms } from '@platformatic/kafka';
import { TickflowError } from '../core/errors.ts';
import type { LogRecord, ValueRange } from './types.ts';

/**
 * Decodes Kafka record batches (magic v2) straight from the fetched bytes into LogRecords:
 * varints read inline, keys and values as zero-copy views of the bytes the socket
 * delivered. This is the hot loop of every consumer, so it avoids per-field objects.
 *
 * Batch layout: baseOffset int64, batchLength int32, partitionLeaderEpoch int32, magic
 * int8, crc uint32, attributes int16, lastOffsetDelta int32, baseTimestamp int64,
 * maxTimestamp int64, producerId int64, producerEpoch int16, baseSequence int32,
 * recordCount int32, then the records (compressed as one block when attributes say so).
 */

const BATCH_OVERHEAD = 61; // bytes from baseOffset to the first record
const LENGTH_AND_OFFSET = 12; // baseOffset + batchLength precede the counted length
const IS_CONTROL = 0x20;
const IS_TRANSACTIONAL = 0x10;
/** An offset delta (int32) never reaches this: the range has no end within the batch. */
const NO_END = 2 ** 31;
const COMPRESSION_MASK = 0x07;

const byBitmask = new Map<number, (data: Buffer) => Buffer>(
  Object.values(compressionsAlgorithms).map((a) => [a.bitmask, (data: Buffer) => a.decompressSync(data)]),
);

export interface DecodeTarget {
  topic: string;
  partition: number;
  /** First offset wanted: earlier records of a batch are skipped. Advanced past what is decoded. */
  next: bigint;
  /** Exclusive end, if any. */
  end?: bigint;
}

/**
 * Decodes every complete batch into `out`, advancing `target.next`. The bytes come either
 * as one buffer or as the chunks the socket delivered them in (a fetch response spans many
 * 64 KiB reads): records are then decoded where they lie, and only a record (or a
 * compressed batch) that straddles two chunks is copied.
 */
export function decodeBatches(data: Buffer | readonly Buffer[], target: DecodeTarget, out: LogRecord[], aborted: AbortedTransactions | null = null): void {
  if (Buffer.isBuffer(data)) decodeContiguous(data, target, out, aborted);
  else if (data.length === 1) decodeContiguous(data[0]!, target, out, aborted);
  else if (data.length > 1) decodeChunked(new Chunks(data), target, out, aborted);
}

/** An aborted transaction a read_committed Fetch response lists: its producer and first offset. */
export interface AbortedTransaction {
  producerId: bigint;
  firstOffset: bigint;
}

/**
 * Read-committed filtering of one partition's fetched batches (the consumer's side of
 * Kafka transactions): a transactional batch is skipped when its producer has an aborted
 * transaction that began at or before the batch and whose end marker (a control batch of
 * the same producer) has not been passed yet. Control batches themselves are never records.
 */
export class AbortedTransactions {
  readonly #pending: AbortedTransaction[];
  #next = 0;
  readonly #open = new Set<bigint>();

  constructor(list: readonly AbortedTransaction[]) {
    this.#pending = [...list].sort((a, b) => (a.firstOffset < b.firstOffset ? -1 : a.firstOffset > b.firstOffset ? 1 : 0));
  }

  /** True when the batch belongs to an aborted transaction; a control batch closes its producer's. */
  skips(h: BatchHeader): boolean {
    if (h.producerId < 0n) return false;
    while (this.#next < this.#pending.length && this.#pending[this.#next].firstOffset <= h.lastOffset) this.#open.add(this.#pending[this.#next++].producerId);
    if ((h.attributes & IS_CONTROL) !== 0) {
      this.#open.delete(h.producerId);
      return false;
    }
    return (h.attributes & IS_TRANSACTIONAL) !== 0 && this.#open.has(h.producerId);
  }
}

function decodeContiguous(data: Buffer, target: DecodeTarget, out: LogRecord[], aborted: AbortedTransactions | null): void {
  let pos = 0;
  while (data.length - pos >= LENGTH_AND_OFFSET) {
    const batchEnd = pos + LENGTH_AND_OFFSET + data.readInt32BE(pos + 8);
    if (batchEnd > data.length) return; // a partial batch at the end of a fetch: next fetch resumes there
    const h = readHeader(data, pos, target);
    if (passOver(h, target, aborted)) {
      pos = batchEnd;
      continue;
    }
    let records = data;
    let rp = pos + BATCH_OVERHEAD;
    let recordsEnd = batchEnd;
    const compression = h.attributes & COMPRESSION_MASK;
    if (compression !== 0) {
      records = decompress(compression, data.subarray(rp, batchEnd), target);
      rp = 0;
      recordsEnd = records.length;
    }
    const skipBelow = Number(target.next - h.baseOffset);
    const stopAt = stopAtFor(h, target);
    for (let i = 0; i < h.recordCount && rp < recordsEnd; i++) {
      // Varints are zigzag-encoded and read inline: a helper returning (value, position)
      // would allocate per field.
      let b = records[rp++];
      let raw = b & 0x7f;
      let shift = 7;
      while (b & 0x80) {
        b = records[rp++];
        raw |= (b & 0x7f) << shift;
        shift += 7;
      }
      const recordLength = (raw >>> 1) ^ -(raw & 1);
      const recordEnd = rp + recordLength;
      if (!decodeRecord(records, rp, h.baseOffset, h.baseTimestamp, skipBelow, stopAt, target, out)) return;
      rp = recordEnd;
    }
    passed(h, target);
    pos = batchEnd;
  }
}

/** The same walk over chunks; see Chunks for how bytes are reached. */
function decodeChunked(chunks: Chunks, target: DecodeTarget, out: LogRecord[], aborted: AbortedTransactions | null): void {
  let pos = 0;
  while (chunks.length - pos >= BATCH_OVERHEAD) {
    const header = chunks.view(pos, BATCH_OVERHEAD);
    const batchEnd = pos + LENGTH_AND_OFFSET + header.readInt32BE(chunks.offset + 8);
    if (batchEnd > chunks.length) return;
    const h = readHeader(header, chunks.offset, target);
    if (passOver(h, target, aborted)) {
      pos = batchEnd;
      continue;
    }
    if ((h.attributes & COMPRESSION_MASK) !== 0) {
      // Decompression needs the batch in one piece.
      const batch = chunks.view(pos, batchEnd - pos);
      decodeContiguous(batch.subarray(chunks.offset, chunks.offset + batchEnd - pos), target, out, null); // already judged above
      if (target.end !== undefined && target.next >= target.end) return;
      pos = batchEnd;
      continue;
    }
    const skipBelow = Number(target.next - h.baseOffset);
    const stopAt = stopAtFor(h, target);
    let rp = pos + BATCH_OVERHEAD;
    for (let i = 0; i < h.recordCount && rp < batchEnd; i++) {
      let bytes = chunks.view(rp, Math.min(5, batchEnd - rp));
      let at = chunks.offset;
      let b = bytes[at++];
      let raw = b & 0x7f;
      let shift = 7;
      while (b & 0x80) {
        b = bytes[at++];
        raw |= (b & 0x7f) << shift;
        shift += 7;
      }
      const recordLength = (raw >>> 1) ^ -(raw & 1);
      rp += at - chunks.offset;
      bytes = chunks.view(rp, recordLength);
      if (!decodeRecord(bytes, chunks.offset, h.baseOffset, h.baseTimestamp, skipBelow, stopAt, target, out)) return;
      rp += recordLength;
    }
    passed(h, target);
    pos = batchEnd;
  }
}

interface BatchHeader {
  baseOffset: bigint;
  attributes: number;
  lastOffset: bigint;
  baseTimestamp: bigint;
  /** -1 for a batch without a producer id (not idempotent). */
  producerId: bigint;
  recordCount: number;
}

/** The header of the batch at `at` (after its length was found to fit). */
function readHeader(data: Buffer, at: number, target: DecodeTarget): BatchHeader {
  const magic = data.readInt8(at + 16);
  if (magic !== 2) throw new TickflowError('LOG_ERROR', `unsupported record batch magic ${magic} in ${target.topic}[${target.partition}]`);
  const baseOffset = data.readBigInt64BE(at);
  return {
    baseOffset,
    attributes: data.readInt16BE(at + 21),
    lastOffset: baseOffset + BigInt(data.readInt32BE(at + 23)),
    baseTimestamp: data.readBigInt64BE(at + 27),
    producerId: data.readBigInt64BE(at + 43),
    recordCount: data.readInt32BE(at + 57),
  };
}

/**
 * True (and the position moved past it) for a batch with nothing to decode: a control
 * batch, one of an aborted transaction (read_committed), or one read before.
 */
function passOver(h: BatchHeader, target: DecodeTarget, aborted: AbortedTransactions | null): boolean {
  const skipped = aborted !== null && aborted.skips(h);
  if ((h.attributes & IS_CONTROL) === 0 && !skipped && h.lastOffset >= target.next) return false;
  if (h.lastOffset >= target.next) target.next = h.lastOffset + 1n;
  return true;
}

/** The offset delta at which the range ends within the batch (NO_END if beyond it). */
function stopAtFor(h: BatchHeader, target: DecodeTarget): number {
  return target.end === undefined || target.end - h.baseOffset > 2147483647n ? NO_END : Number(target.end - h.baseOffset);
}

/** Past a decoded batch, including offsets that compaction removed from its end. */
function passed(h: BatchHeader, target: DecodeTarget): void {
  target.next = h.lastOffset + 1n;
  if (target.end !== undefined && target.next > target.end) target.next = target.end;
}

/**
 * Decodes the record whose body (after its length) starts at `rp`; pushes it unless it
 * lies before the position. Returns false when it lies at or past the end of the range.
 */
function decodeRecord(
  records: Buffer,
  rp: number,
  baseOffset: bigint,
  baseTimestamp: bigint,
  skipBelow: number,
  stopAt: number,
  target: DecodeTarget,
  out: LogRecord[],
): boolean {
  rp++; // attributes
  let b: number;
  let tsRaw = 0;
  let mult = 1;
  do {
    b = records[rp++];
    tsRaw += (b & 0x7f) * mult;
    mult *= 128;
  } while (b & 0x80);
  const timestampDelta = tsRaw % 2 === 0 ? tsRaw / 2 : -(tsRaw + 1) / 2;
  b = records[rp++];
  let raw = b & 0x7f;
  let shift = 7;
  while (b & 0x80) {
    b = records[rp++];
    raw |= (b & 0x7f) << shift;
    shift += 7;
  }
  const offsetDelta = (raw >>> 1) ^ -(raw & 1);
  if (offsetDelta < skipBelow) return true;
  if (offsetDelta >= stopAt) {
    target.next = target.end!;
    return false;
  }
  b = records[rp++];
  raw = b & 0x7f;
  shift = 7;
  while (b & 0x80) {
    b = records[rp++];
    raw |= (b & 0x7f) << shift;
    shift += 7;
  }
  const keyLength = (raw >>> 1) ^ -(raw & 1);
  const keyStart = rp;
  if (keyLength > 0) rp += keyLength;
  b = records[rp++];
  raw = b & 0x7f;
  shift = 7;
  while (b & 0x80) {
    b = records[rp++];
    raw |= (b & 0x7f) << shift;
    shift += 7;
  }
  const valueLength = (raw >>> 1) ^ -(raw & 1);
  const valueStart = rp;
  if (valueLength > 0) rp += valueLength;
  let headers: ReadonlyArray<readonly [string, Buffer]> = NO_HEADERS;
  b = records[rp++];
  raw = b & 0x7f;
  shift = 7;
  while (b & 0x80) {
    b = records[rp++];
    raw |= (b & 0x7f) << shift;
    shift += 7;
  }
  const headerCount = (raw >>> 1) ^ -(raw & 1);
  if (headerCount > 0) {
    const list: Array<readonly [string, Buffer]> = [];
    headers = list;
    for (let h = 0; h < headerCount; h++) {
      const [keyLen, afterKeyLen] = readVarint(records, rp);
      const headerKey = records.toString('utf8', afterKeyLen, afterKeyLen + keyLen);
      rp = afterKeyLen + keyLen;
      const [valueLen, afterValueLen] = readVarint(records, rp);
      const headerValue = valueLen >= 0 ? records.subarray(afterValueLen, afterValueLen + valueLen) : Buffer.alloc(0);
      rp = afterValueLen + Math.max(0, valueLen);
      list.push([headerKey, headerValue]);
    }
  }
  out.push(new FetchedRecord(target.topic, target.partition, records, baseOffset, offsetDelta, baseTimestamp, timestampDelta, keyStart, keyLength, valueStart, valueLength, headers));
  return true;
}

function decompress(compression: number, data: Buffer, target: DecodeTarget): Buffer {
  const algorithm = byBitmask.get(compression);
  if (!algorithm) throw new TickflowError('LOG_ERROR', `unsupported compression ${compression} in ${target.topic}[${target.partition}]`);
  return algorithm(data);
}

/**
 * Consecutive chunks read as one byte sequence, for positions that only grow. `view`
 * returns the buffer holding [pos, pos + length) and sets `offset` to where it starts in
 * it: the chunk itself when the range lies inside one, else a copy of the range.
 */
class Chunks {
  readonly length: number;
  offset = 0;
  readonly #chunks: readonly Buffer[];
  #index = 0;
  #start = 0;

  constructor(chunks: readonly Buffer[]) {
    this.#chunks = chunks;
    let length = 0;
    for (const chunk of chunks) length += chunk.length;
    this.length = length;
  }

  view(pos: number, length: number): Buffer {
    const chunks = this.#chunks;
    while (pos >= this.#start + chunks[this.#index]!.length) this.#start += chunks[this.#index++]!.length;
    const chunk = chunks[this.#index]!;
    const local = pos - this.#start;
    if (local + length <= chunk.length) {
      this.offset = local;
      return chunk;
    }
    const copy = Buffer.allocUnsafe(length);
    let written = chunk.copy(copy, 0, local);
    for (let i = this.#index + 1; written < length; i++) written += chunks[i]!.copy(copy, written, 0, Math.min(chunks[i]!.length, length - written));
    this.offset = 0;
    return copy;
  }
}

const NO_HEADERS: ReadonlyArray<readonly [string, Buffer]> = Object.freeze([]);

function readVarint(data: Buffer, pos: number): [number, number] {
  let b = data[pos++];
  let raw = b & 0x7f;
  let shift = 7;
  while (b & 0x80) {
    b = data[pos++];
    raw |= (b & 0x7f) << shift;
    shift += 7;
  }
  return [(raw >>> 1) ^ -(raw & 1), pos];
}

/**
 * A record that points into the fetched bytes: offset, timestamp, key and value are only
 * materialised (bigints, buffer views) when read, so a consumer that only needs the value
 * text allocates one string per record. `valueText()` decodes UTF-8 without a Buffer view.
 */
export class FetchedRecord implements LogRecord {
  readonly topic: string;
  readonly partition: number;
  readonly headers: ReadonlyArray<readonly [string, Buffer]>;
  readonly #data: Buffer;
  readonly #baseOffset: bigint;
  readonly #offsetDelta: number;
  readonly #baseTimestamp: bigint;
  readonly #timestampDelta: number;
  readonly #keyStart: number;
  readonly #keyLength: number;
  readonly #valueStart: number;
  readonly #valueLength: number;

  constructor(
    topic: string,
    partition: number,
    data: Buffer,
    baseOffset: bigint,
    offsetDelta: number,
    baseTimestamp: bigint,
    timestampDelta: number,
    keyStart: number,
    keyLength: number,
    valueStart: number,
    valueLength: number,
    headers: ReadonlyArray<readonly [string, Buffer]>,
  ) {
    this.topic = topic;
    this.partition = partition;
    this.headers = headers;
    this.#data = data;
    this.#baseOffset = baseOffset;
    this.#offsetDelta = offsetDelta;
    this.#baseTimestamp = baseTimestamp;
    this.#timestampDelta = timestampDelta;
    this.#keyStart = keyStart;
    this.#keyLength = keyLength;
    this.#valueStart = valueStart;
    this.#valueLength = valueLength;
  }

  get offset(): bigint {
    return this.#baseOffset + BigInt(this.#offsetDelta);
  }

  get timestamp(): bigint {
    return this.#baseTimestamp + BigInt(this.#timestampDelta);
  }

  get key(): Buffer | null {
    return this.#keyLength < 0 ? null : this.#data.subarray(this.#keyStart, this.#keyStart + this.#keyLength);
  }

  get value(): Buffer | null {
    return this.#valueLength < 0 ? null : this.#data.subarray(this.#valueStart, this.#valueStart + this.#valueLength);
  }

  valueRange(out: ValueRange): boolean {
    if (this.#valueLength < 0) return false;
    out.data = this.#data;
    out.start = this.#valueStart;
    out.end = this.#valueStart + this.#valueLength;
    return true;
  }

  valueText(): string | null {
    return this.#valueLength < 0 ? null : this.#data.toString('utf8', this.#valueStart, this.#valueStart + this.#valueLength);
  }
}
