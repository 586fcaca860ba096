import { compressionsAlgorithms } from '@platformatic/kafka';
import { TickflowError } from '../core/errors.ts';
import type { LogRecord, ValueRange } from './types.ts';

/**
 * Decodes Kafka record batches (magic v2) straight from one contiguous buffer into
 * LogRecords: varints read inline, keys and values as zero-copy views of the fetched
 * bytes. This is the hot loop of every consumer, so it avoids per-field objects.
 *
 * Batch layout: baseOffset int64, batchLength int32, partitionLeaderEpoch int32, magic
 * int8, crc uint32, attributes int16, lastOffsetDelta int32, baseTimestamp int64,
 * maxTimestamp int64, producerId int64, producerEpoch int16, baseSequence int32,
 * recordCount int32, then the records (compressed as one block when attributes say so).
 */

const BATCH_OVERHEAD = 61; // bytes from baseOffset to the first record
const LENGTH_AND_OFFSET = 12; // baseOffset + batchLength precede the counted length
const IS_CONTROL = 0x20;
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

/** Decodes every complete batch in `data` into `out`, advancing `target.next`. */
export function decodeBatches(data: Buffer, target: DecodeTarget, out: LogRecord[]): void {
  let pos = 0;
  while (data.length - pos >= LENGTH_AND_OFFSET) {
    const batchLength = data.readInt32BE(pos + 8);
    const batchEnd = pos + LENGTH_AND_OFFSET + batchLength;
    if (batchEnd > data.length) return; // a partial batch at the end of a fetch: next fetch resumes there
    const baseOffset = data.readBigInt64BE(pos);
    const magic = data.readInt8(pos + 16);
    if (magic !== 2) throw new TickflowError('LOG_ERROR', `unsupported record batch magic ${magic} in ${target.topic}[${target.partition}]`);
    const attributes = data.readInt16BE(pos + 21);
    const lastOffsetDelta = data.readInt32BE(pos + 23);
    const baseTimestamp = data.readBigInt64BE(pos + 27);
    const recordCount = data.readInt32BE(pos + 57);
    const lastOffset = baseOffset + BigInt(lastOffsetDelta);
    if ((attributes & IS_CONTROL) !== 0 || lastOffset < target.next) {
      if (lastOffset >= target.next) target.next = lastOffset + 1n;
      pos = batchEnd;
      continue;
    }
    let records = data;
    let rp = pos + BATCH_OVERHEAD;
    let recordsEnd = batchEnd;
    const compression = attributes & COMPRESSION_MASK;
    if (compression !== 0) {
      const decompress = byBitmask.get(compression);
      if (!decompress) throw new TickflowError('LOG_ERROR', `unsupported compression ${compression} in ${target.topic}[${target.partition}]`);
      records = decompress(data.subarray(rp, batchEnd));
      rp = 0;
      recordsEnd = records.length;
    }
    // Offset deltas below this were read before; at or past stopAt lies the end of the range.
    const skipBelow = Number(target.next - baseOffset);
    const stopAt = target.end === undefined || target.end - baseOffset > 2147483647n ? null : Number(target.end - baseOffset);
    for (let i = 0; i < recordCount && rp < recordsEnd; i++) {
      // Varints are zigzag-encoded; lengths and deltas fit in 32 bits, the timestamp delta in 53.
      // They are read inline on purpose: a helper returning (value, position) allocates per field.
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
      rp++; // attributes
      let tsRaw = 0;
      let mult = 1;
      do {
        b = records[rp++];
        tsRaw += (b & 0x7f) * mult;
        mult *= 128;
      } while (b & 0x80);
      const timestampDelta = tsRaw % 2 === 0 ? tsRaw / 2 : -(tsRaw + 1) / 2;
      b = records[rp++];
      raw = b & 0x7f;
      shift = 7;
      while (b & 0x80) {
        b = records[rp++];
        raw |= (b & 0x7f) << shift;
        shift += 7;
      }
      const offsetDelta = (raw >>> 1) ^ -(raw & 1);
      if (offsetDelta < skipBelow) {
        rp = recordEnd;
        continue;
      }
      if (stopAt !== null && offsetDelta >= stopAt) {
        target.next = target.end!;
        return;
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
      rp = recordEnd;
      out.push(new FetchedRecord(target.topic, target.partition, records, baseOffset, offsetDelta, baseTimestamp, timestampDelta, keyStart, keyLength, valueStart, valueLength, headers));
    }
    // Past this batch, including offsets that compaction removed from its end.
    target.next = lastOffset + 1n;
    if (target.end !== undefined && target.next > target.end) target.next = target.end;
    pos = batchEnd;
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
