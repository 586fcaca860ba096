import { Writer, crc32c, produceV11 } from '@platformatic/kafka';
import type { Producer as KafkaProducer } from '@platformatic/kafka';
import { partitionForKey } from '../core/murmur2.ts';
import { TickflowError } from '../core/errors.ts';
import type { RecordToProduce } from './types.ts';

/**
 * The idempotent produce path, encoding record batches directly into one buffer per
 * partition (no object or buffer per record) and sending them with Produce v11 on the
 * client library's connections. The library still owns connections, metadata, and the
 * producer id (InitProducerId); this file owns batches and sequence numbers.
 *
 * Exactly once per partition: every batch carries the producer id, epoch and a base
 * sequence; a batch that must be retried is resent byte for byte, so the broker drops a
 * duplicate (DUPLICATE_SEQUENCE_NUMBER counts as success) and never reorders.
 */

const RETRIABLE = new Set([3, 5, 6, 7, 9, 13, 14, 15, 19, 20, 74, 75, 100]);
const DUPLICATE_SEQUENCE = 46;
const ACKS_ALL = -1;
const PRODUCE_API = 0;
const MAX_ATTEMPTS = 10;

export interface FastProduceOptions {
  /** Upper bound of one batch (the broker's default message.max.bytes is ~1 MiB). */
  maxBatchBytes: number;
  timeoutMs: number;
}

interface EncodedBatch {
  partition: number;
  buffer: Buffer;
  count: number;
}

export class FastProduce {
  readonly #client: KafkaProducer;
  readonly #options: FastProduceOptions;
  readonly #sequences = new Map<string, number>();
  readonly #roundRobin = new Map<string, number>();
  #producer: Promise<{ producerId: bigint; producerEpoch: number }> | null = null;

  constructor(client: KafkaProducer, options: FastProduceOptions) {
    this.#client = client;
    this.#options = options;
  }

  async send(topic: string, records: readonly RecordToProduce[]): Promise<void> {
    if (records.length === 0) return;
    try {
      await this.#send(topic, records);
    } catch (error) {
      // Sequences may now be ahead of what the broker has: start over with a new producer id.
      this.#producer = null;
      this.#sequences.clear();
      throw error;
    }
  }

  async #send(topic: string, records: readonly RecordToProduce[]): Promise<void> {
    this.#producer ??= this.#client.initIdempotentProducer({});
    const { producerId, producerEpoch } = await this.#producer;
    let metadata = await this.#client.metadata({ topics: [topic] });
    const topicMetadata = metadata.topics.get(topic);
    if (!topicMetadata) throw new TickflowError('UNKNOWN_TOPIC', `topic ${topic} does not exist (create it first)`, { topic });
    const partitions = topicMetadata.partitionsCount;

    const byPartition = new Map<number, RecordToProduce[]>();
    for (const record of records) {
      const partition = this.#partitionOf(topic, record, partitions);
      let list = byPartition.get(partition);
      if (!list) byPartition.set(partition, (list = []));
      list.push(record);
    }
    // Batches per partition in order; round k sends every partition's k-th batch.
    const queues = [...byPartition].map(([partition, list]) => ({ partition, batches: this.#encode(topic, partition, list, producerId, producerEpoch) }));
    for (let round = 0; queues.some((q) => q.batches.length > round); round++) {
      let pending = queues.filter((q) => q.batches.length > round).map((q) => q.batches[round]);
      for (let attempt = 1; pending.length > 0; attempt++) {
        if (attempt > MAX_ATTEMPTS) throw new TickflowError('LOG_UNAVAILABLE', `produce to ${topic}: partitions ${pending.map((b) => b.partition).join(',')} still failing after ${MAX_ATTEMPTS} attempts`);
        if (attempt > 1) {
          await new Promise((r) => setTimeout(r, Math.min(2000, 50 * 2 ** attempt)));
          metadata = await this.#client.metadata({ topics: [topic], forceUpdate: true });
        }
        const leaders = metadata.topics.get(topic)!.partitions;
        const byNode = new Map<number, EncodedBatch[]>();
        for (const batch of pending) {
          const node = leaders[batch.partition]?.leader ?? -1;
          byNode.set(node, [...(byNode.get(node) ?? []), batch]);
        }
        const failed: EncodedBatch[] = [];
        await Promise.all(
          [...byNode].map(async ([node, batches]) => {
            const broker = metadata.brokers.get(node);
            if (!broker) {
              failed.push(...batches);
              return;
            }
            const errors = await this.#request(broker, topic, batches).catch((error: unknown) => {
              if (isNetworkError(error)) return new Map(batches.map((b) => [b.partition, -1]));
              throw error;
            });
            for (const batch of batches) {
              const code = errors.get(batch.partition) ?? 0;
              if (code === 0 || code === DUPLICATE_SEQUENCE) continue;
              if (code === -1 || RETRIABLE.has(code)) failed.push(batch);
              else throw new TickflowError(code === 3 ? 'UNKNOWN_TOPIC' : 'LOG_ERROR', `produce to ${topic}[${batch.partition}] failed with Kafka error code ${code}`, { topic, code });
            }
          }),
        );
        pending = failed;
      }
    }
  }

  #partitionOf(topic: string, record: RecordToProduce, partitions: number): number {
    if (record.partition !== undefined) {
      if (!Number.isInteger(record.partition) || record.partition < 0 || record.partition >= partitions) {
        throw new TickflowError('LOG_ERROR', `topic ${topic} has no partition ${record.partition}`);
      }
      return record.partition;
    }
    if (record.key !== null && record.key !== undefined) {
      return partitionForKey(typeof record.key === 'string' ? Buffer.from(record.key) : record.key, partitions);
    }
    const next = this.#roundRobin.get(topic) ?? 0;
    this.#roundRobin.set(topic, next + 1);
    return next % partitions;
  }

  /** Encodes one partition's records into batches of at most maxBatchBytes, assigning sequences. */
  #encode(topic: string, partition: number, records: RecordToProduce[], producerId: bigint, producerEpoch: number): EncodedBatch[] {
    const batches: EncodedBatch[] = [];
    const key = `${topic}:${partition}`;
    let from = 0;
    while (from < records.length) {
      let buffer = Buffer.allocUnsafe(Math.min(this.#options.maxBatchBytes + 1024, 64 + estimate(records, from)));
      const baseTimestamp = records[from].timestamp ?? BigInt(Date.now());
      let maxTimestamp = baseTimestamp;
      let pos = 61;
      let count = 0;
      while (from + count < records.length) {
        const record = records[from + count];
        const size = recordSize(record, count, record.timestamp === undefined ? 0 : Number(record.timestamp - baseTimestamp));
        if (count > 0 && pos + size.total > this.#options.maxBatchBytes) break;
        if (pos + size.total > buffer.length) {
          const grown = Buffer.allocUnsafe(Math.max(buffer.length * 2, pos + size.total + 1024));
          buffer.copy(grown, 0, 0, pos);
          buffer = grown;
        }
        pos = writeRecord(buffer, pos, record, count, size);
        if (record.timestamp !== undefined && record.timestamp > maxTimestamp) maxTimestamp = record.timestamp;
        count++;
      }
      const sequence = this.#sequences.get(key) ?? 0;
      this.#sequences.set(key, (sequence + count) % 2 ** 31);
      buffer.writeBigInt64BE(0n, 0); // base offset, assigned by the broker
      buffer.writeInt32BE(pos - 12, 8); // batch length
      buffer.writeInt32BE(0, 12); // partition leader epoch
      buffer.writeInt8(2, 16); // magic
      buffer.writeInt16BE(0, 21); // attributes: no compression, not transactional
      buffer.writeInt32BE(count - 1, 23); // last offset delta
      buffer.writeBigInt64BE(baseTimestamp, 27);
      buffer.writeBigInt64BE(maxTimestamp, 35);
      buffer.writeBigInt64BE(producerId, 43);
      buffer.writeInt16BE(producerEpoch, 51);
      buffer.writeInt32BE(sequence, 53);
      buffer.writeInt32BE(count, 57);
      buffer.writeUInt32BE(crc32c(buffer.subarray(21, pos)) >>> 0, 17);
      batches.push({ partition, buffer: buffer.subarray(0, pos), count });
      from += count;
    }
    return batches;
  }

  /** One Produce v11 request; resolves with the error code per partition (0 = written). */
  async #request(broker: { host: string; port: number }, topic: string, batches: EncodedBatch[]): Promise<Map<number, number>> {
    const connection = await this.#client.connections.get(broker);
    const payload = () =>
      Writer.create()
        .appendString(null)
        .appendInt16(ACKS_ALL)
        .appendInt32(this.#options.timeoutMs)
        .appendArray([topic], (w, name) => {
          w.appendString(name).appendArray(batches, (w, batch) => {
            w.appendInt32(batch.partition).appendUnsignedVarInt(batch.buffer.length + 1).append(batch.buffer);
          });
        })
        .appendTaggedFields();
    const response = await new Promise<Awaited<ReturnType<typeof produceV11.parseResponse>>>((resolve, reject) => {
      connection.send(PRODUCE_API, 11, payload, produceV11.parseResponse, true, true, (error: Error | null, result?: ReturnType<typeof produceV11.parseResponse>) => {
        if (error && (error as { response?: unknown }).response) resolve((error as unknown as { response: ReturnType<typeof produceV11.parseResponse> }).response);
        else if (error) reject(error);
        else resolve(result!);
      });
    });
    const codes = new Map<number, number>();
    for (const t of response.responses) for (const p of t.partitionResponses) codes.set(p.index, p.errorCode);
    return codes;
  }
}

function isNetworkError(error: unknown): boolean {
  const message = String((error as Error)?.message ?? '');
  return /ECONNRESET|ECONNREFUSED|EPIPE|closed|timed out|Network/i.test(message);
}

interface RecordSize {
  keyLength: number;
  valueLength: number;
  timestampDelta: number;
  body: number;
  total: number;
}

function byteLength(value: Buffer | string | null | undefined): number {
  if (value === null || value === undefined) return -1;
  return typeof value === 'string' ? Buffer.byteLength(value) : value.length;
}

function estimate(records: RecordToProduce[], from: number): number {
  let bytes = 0;
  for (let i = from; i < records.length && bytes < 2 << 20; i++) {
    const r = records[i];
    bytes += 24 + (typeof r.value === 'string' ? r.value.length * 1.1 : (r.value?.length ?? 0)) + (typeof r.key === 'string' ? r.key.length * 1.1 : (r.key?.length ?? 0));
  }
  return Math.ceil(bytes);
}

function recordSize(record: RecordToProduce, offsetDelta: number, timestampDelta: number): RecordSize {
  const keyLength = byteLength(record.key);
  const valueLength = byteLength(record.value);
  let body = 1 + varlongSize(timestampDelta) + varintSize(offsetDelta) + varintSize(keyLength) + Math.max(0, keyLength) + varintSize(valueLength) + Math.max(0, valueLength);
  const headers = record.headers ? Object.entries(record.headers) : [];
  body += varintSize(headers.length);
  for (const [k, v] of headers) {
    const kl = Buffer.byteLength(k);
    const vl = byteLength(v);
    body += varintSize(kl) + kl + varintSize(vl) + Math.max(0, vl);
  }
  return { keyLength, valueLength, timestampDelta, body, total: body + varintSize(body) };
}

function writeRecord(b: Buffer, pos: number, record: RecordToProduce, offsetDelta: number, size: RecordSize): number {
  pos = writeVarint(b, pos, size.body);
  b[pos++] = 0; // attributes
  pos = writeVarlong(b, pos, size.timestampDelta);
  pos = writeVarint(b, pos, offsetDelta);
  pos = writeVarint(b, pos, size.keyLength);
  if (size.keyLength > 0) pos += writeBytes(b, pos, record.key!);
  pos = writeVarint(b, pos, size.valueLength);
  if (size.valueLength > 0) pos += writeBytes(b, pos, record.value!);
  const headers = record.headers ? Object.entries(record.headers) : [];
  pos = writeVarint(b, pos, headers.length);
  for (const [k, v] of headers) {
    pos = writeVarint(b, pos, Buffer.byteLength(k));
    pos += b.write(k, pos);
    const vl = byteLength(v);
    pos = writeVarint(b, pos, vl);
    if (vl > 0) pos += writeBytes(b, pos, v);
  }
  return pos;
}

function writeBytes(b: Buffer, pos: number, value: Buffer | string): number {
  return typeof value === 'string' ? b.write(value, pos) : value.copy(b, pos);
}

function varintSize(value: number): number {
  let v = ((value << 1) ^ (value >> 31)) >>> 0;
  let n = 1;
  while (v >= 0x80) {
    v >>>= 7;
    n++;
  }
  return n;
}

function writeVarint(b: Buffer, pos: number, value: number): number {
  let v = ((value << 1) ^ (value >> 31)) >>> 0;
  while (v >= 0x80) {
    b[pos++] = (v & 0x7f) | 0x80;
    v >>>= 7;
  }
  b[pos++] = v;
  return pos;
}

function zigzag64(value: number): number {
  return value >= 0 ? value * 2 : -value * 2 - 1;
}

function varlongSize(value: number): number {
  let v = zigzag64(value);
  let n = 1;
  while (v >= 128) {
    v = Math.floor(v / 128);
    n++;
  }
  return n;
}

function writeVarlong(b: Buffer, pos: number, value: number): number {
  let v = zigzag64(value);
  while (v >= 128) {
    b[pos++] = (v % 128) | 0x80;
    v = Math.floor(v / 128);
  }
  b[pos++] = v;
  return pos;
}
