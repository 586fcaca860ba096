import { Writer, crc32c, produceV11 } from '@platformatic/kafka';
import type { Connection, Producer as KafkaProducer } from '@platformatic/kafka';
import { partitionForKey } from '../core/murmur2.ts';
import { TickflowError } from '../core/errors.ts';
import { withRetries } from '../observability/retry.ts';
import { KafkaCode, errorForCode } from './kafka-errors.ts';
import type { KafkaErrorContext } from './kafka-errors.ts';
import { producerFenced } from './kafka-transaction.ts';
import type { ProducerIdentity, TransactionCoordinator } from './kafka-transaction.ts';
import type { RecordToProduce } from './types.ts';

/**
 * The idempotent produce path, encoding record batches directly into one buffer per
 * partition (no object or buffer per record) and sending them with Produce v11 on the
 * client library's connections. The library still owns connections, metadata, and the
 * producer id (InitProducerId); this file owns batches and sequence numbers.
 *
 * Exactly once per partition: every batch carries the producer id, epoch and a base
 * sequence. A batch that fails for a reason waiting can cure (a broker lost, a leader
 * election, stale metadata, too few in-sync replicas for now) is resent byte for byte after
 * a metadata refresh, to whichever broker leads the partition now, under `withRetries`
 * (until --retry-for). The broker drops a copy it already has (DUPLICATE_SEQUENCE_NUMBER
 * counts as success), and only one batch per partition is in flight, so a retry can neither
 * duplicate nor reorder.
 */

const ACKS_ALL = -1;
const PRODUCE_API = 0;
const BATCH_HEADER_BYTES = 61;
/** Batch attribute: the batch belongs to a transaction (committed or aborted by its markers). */
const TRANSACTIONAL = 0x10;

/**
 * Codes saying that the broker's producer state for this partition does not continue ours.
 * Only a new producer id (and sequences from 0) gets past them; see #renewProducerId.
 */
const SEQUENCE_REFUSED = new Set<number>([KafkaCode.OUT_OF_ORDER_SEQUENCE_NUMBER, KafkaCode.UNKNOWN_PRODUCER_ID, KafkaCode.INVALID_PRODUCER_EPOCH]);
/**
 * Retriable codes after which the batch may still be in the log (the leader appended it but
 * could not confirm replication in time): only the same bytes may follow.
 */
const MAY_HAVE_BEEN_WRITTEN = new Set<number>([KafkaCode.REQUEST_TIMED_OUT, KafkaCode.NOT_ENOUGH_REPLICAS_AFTER_APPEND, KafkaCode.NETWORK_EXCEPTION]);

export interface FastProduceOptions {
  /** Upper bound of one batch (the broker's default message.max.bytes is ~1 MiB). */
  maxBatchBytes: number;
  timeoutMs: number;
  /**
   * Classifies an error (kafka-errors), confirming with fresh metadata whether a topic that a
   * broker calls unknown is really missing.
   */
  classify(error: unknown, context: KafkaErrorContext): Promise<TickflowError>;
  /**
   * Transactional: batches carry the transactional bit and the coordinator's producer id
   * and epoch, and their partitions are added to the open transaction before they are sent.
   * A refused sequence or epoch is then not renewed here: it fails the transaction.
   */
  transaction?: TransactionCoordinator;
}

interface EncodedBatch {
  partition: number;
  buffer: Buffer;
  count: number;
  baseSequence: number;
  acknowledged: boolean;
  /** An attempt failed without a definite answer: the batch may be in the log already. */
  inDoubt: boolean;
  /** The broker refused its sequence (it is not in the log): resend under a new producer id. */
  sequenceRefused: boolean;
}

/** One partition's batches of a send, in sequence order; `next` is the first not yet acknowledged. */
interface PartitionQueue {
  partition: number;
  batches: EncodedBatch[];
  next: number;
}

/** Keys whose partition a producer remembers per topic. */
const KEY_PARTITIONS_KEPT = 4096;

export class FastProduce {
  readonly #client: KafkaProducer;
  readonly #options: FastProduceOptions;
  readonly #sequences = new Map<string, number>();
  readonly #roundRobin = new Map<string, number>();
  readonly #keyPartitions = new Map<string, { partitions: number; byKey: Map<Buffer | string, number> }>();
  #identity: ProducerIdentity | null = null;
  /** The transactional identity the sequences belong to (a new epoch starts them from 0). */
  #sequencesOf: ProducerIdentity | null = null;

  constructor(client: KafkaProducer, options: FastProduceOptions) {
    this.#client = client;
    this.#options = options;
  }

  /** Sends are serialised by the caller: one send at a time per FastProduce. */
  async send(topic: string, records: readonly RecordToProduce[]): Promise<void> {
    if (records.length === 0) return;
    const context = { action: `produce to ${topic}`, topic };
    const refresh = { beforeRetry: () => this.#client.clearMetadata() };
    const transaction = this.#options.transaction;
    const identity = transaction ? await transaction.identity() : await withRetries('kafka', 'get a producer id', () => this.#currentIdentity(context), refresh);
    if (transaction && this.#sequencesOf !== identity) {
      this.#sequences.clear();
      this.#sequencesOf = identity;
    }
    const partitions = await withRetries('kafka', `metadata of ${topic}`, () => this.#partitionCount(topic, context), refresh);

    const byPartition = new Map<number, RecordToProduce[]>();
    for (const record of records) {
      const partition = this.#partitionOf(topic, record, partitions);
      let list = byPartition.get(partition);
      if (!list) byPartition.set(partition, (list = []));
      list.push(record);
    }
    const sequencesBefore = new Map(this.#sequences);
    let queues: PartitionQueue[];
    try {
      queues = [...byPartition].map(([partition, list]) => ({ partition, batches: this.#encode(topic, partition, list, identity), next: 0 }));
    } catch (error) {
      this.#restoreSequences(sequencesBefore);
      throw error;
    }
    try {
      await transaction?.addPartitions(topic, queues.map((q) => q.partition));
      await withRetries('kafka', `produce to ${topic}`, () => this.#drain(topic, queues), refresh);
    } catch (error) {
      this.#afterFailedSend(topic, queues);
      throw error;
    }
  }

  async #currentIdentity(context: KafkaErrorContext): Promise<ProducerIdentity> {
    if (this.#identity) return this.#identity;
    try {
      const { producerId, producerEpoch } = await this.#client.initIdempotentProducer({});
      this.#identity = { producerId, producerEpoch };
      return this.#identity;
    } catch (error) {
      throw await this.#options.classify(error, { ...context, action: 'get a producer id' });
    }
  }

  async #partitionCount(topic: string, context: KafkaErrorContext): Promise<number> {
    try {
      const metadata = await this.#client.metadata({ topics: [topic] });
      const count = metadata.topics.get(topic)?.partitionsCount;
      if (count) return count;
      throw new TickflowError('LOG_UNAVAILABLE', `metadata of ${topic} lists no partitions yet`, { topic, staleMetadata: true });
    } catch (error) {
      throw await this.#options.classify(error, context);
    }
  }

  /**
   * Sends the head batch of every partition until all are acknowledged. Throws the first
   * retriable failure (withRetries refreshes metadata and calls again: acknowledged batches
   * are not sent twice) or a fatal one.
   */
  async #drain(topic: string, queues: PartitionQueue[]): Promise<void> {
    let renewed = false;
    for (;;) {
      const heads = queues.flatMap((q) => (q.next < q.batches.length ? [q.batches[q.next]] : []));
      if (heads.length === 0) return;
      if (this.#options.transaction && heads.some((b) => b.sequenceRefused)) {
        throw new TickflowError('LOG_ERROR', `produce to ${topic}: the broker refused the transactional producer's sequence or epoch`, { topic, transactionAbortable: true });
      }
      if (heads.every((b) => b.sequenceRefused)) {
        if (renewed) throw new TickflowError('LOG_UNAVAILABLE', `produce to ${topic}: the broker refused the sequence of a new producer id too`, { topic });
        await this.#renewProducerId(topic, queues);
        renewed = true;
        continue;
      }
      let failure: TickflowError | null;
      try {
        failure = await this.#attempt(topic, heads.filter((b) => !b.sequenceRefused));
      } finally {
        // Also when another partition's batch failed fatally in the same request: what was
        // acknowledged is in the log, and its sequence must never be handed out again.
        for (const q of queues) while (q.next < q.batches.length && q.batches[q.next].acknowledged) q.next++;
      }
      if (failure) throw failure;
    }
  }

  /**
   * Sends each batch once to its partition's leader. Every outcome is recorded on the batch
   * before this returns (no request is left running behind a thrown error); returns the first
   * retriable failure, throws a fatal one.
   */
  async #attempt(topic: string, batches: EncodedBatch[]): Promise<TickflowError | null> {
    const context = { action: `produce to ${topic}`, topic };
    let metadata: Awaited<ReturnType<KafkaProducer['metadata']>>;
    try {
      metadata = await this.#client.metadata({ topics: [topic] });
    } catch (error) {
      throw await this.#options.classify(error, context);
    }
    const leaders = metadata.topics.get(topic)?.partitions ?? [];
    const byNode = new Map<number, EncodedBatch[]>();
    for (const batch of batches) {
      const node = leaders[batch.partition]?.leader ?? -1;
      byNode.set(node, [...(byNode.get(node) ?? []), batch]);
    }
    const failures: TickflowError[] = [];
    await Promise.all(
      [...byNode].map(async ([node, list]) => {
        const broker = metadata.brokers.get(node);
        if (node < 0 || !broker) {
          failures.push(new TickflowError('LOG_UNAVAILABLE', `produce to ${topic}: no leader for partitions ${list.map((b) => b.partition).join(',')} yet`, { topic, staleMetadata: true }));
          return;
        }
        let connection: Connection;
        try {
          connection = await this.#client.connections.get(broker);
        } catch (error) {
          failures.push(await this.#options.classify(error, context)); // nothing was sent
          return;
        }
        let codes: Map<number, number>;
        try {
          codes = await this.#request(connection, topic, list);
        } catch (error) {
          for (const batch of list) batch.inDoubt = true; // sent, no answer: it may have been written
          failures.push(await this.#options.classify(error, context));
          return;
        }
        for (const batch of list) {
          const code = codes.get(batch.partition) ?? KafkaCode.NETWORK_EXCEPTION;
          if (code === KafkaCode.NONE || code === KafkaCode.DUPLICATE_SEQUENCE_NUMBER) {
            batch.acknowledged = true;
            continue;
          }
          const partitionContext = { ...context, partition: batch.partition };
          const transaction = this.#options.transaction;
          if (transaction && (code === KafkaCode.INVALID_PRODUCER_EPOCH || code === KafkaCode.PRODUCER_FENCED)) {
            failures.push(producerFenced(transaction.transactionalId, code === KafkaCode.PRODUCER_FENCED ? 'PRODUCER_FENCED' : 'INVALID_PRODUCER_EPOCH'));
            continue;
          }
          if (SEQUENCE_REFUSED.has(code) && !(code === KafkaCode.INVALID_PRODUCER_EPOCH && batch.inDoubt)) {
            batch.sequenceRefused = true;
            continue;
          }
          if (MAY_HAVE_BEEN_WRITTEN.has(code)) batch.inDoubt = true;
          failures.push(await this.#options.classify(errorForCode(code, partitionContext), partitionContext));
        }
      }),
    );
    const fatal = failures.find((f) => !f.retriable);
    if (fatal) throw fatal;
    return failures[0] ?? null;
  }

  /**
   * Takes a new producer id after the broker refused our sequence (OUT_OF_ORDER_SEQUENCE_NUMBER,
   * UNKNOWN_PRODUCER_ID, INVALID_PRODUCER_EPOCH), and restamps every batch not yet
   * acknowledged with it, sequences from 0 per partition.
   *
   * Why this cannot duplicate: a new producer id makes the broker treat a batch as new, so a
   * restamped batch must not be in the log already, and nothing restamped may still be on its
   * way to a broker.
   * - The refused batch is not in the log. OUT_OF_ORDER_SEQUENCE_NUMBER: the broker's last
   *   sequence for us is neither just before the batch nor the batch itself (a copy written
   *   by an earlier attempt would make this attempt a DUPLICATE_SEQUENCE_NUMBER, as the
   *   broker remembers our last five batches and we send one at a time).
   *   UNKNOWN_PRODUCER_ID: the broker keeps nothing of ours for the partition, so no earlier
   *   attempt either. INVALID_PRODUCER_EPOCH proves nothing about earlier attempts, so a batch
   *   refused with it is only renewed if every earlier attempt got a definite refusal (not in
   *   doubt); otherwise it stays a fatal error.
   * - Nothing else is in doubt: this runs only once every partition's head batch is either
   *   acknowledged or refused for its sequence; a batch with a lost answer is resent (same
   *   bytes) until it has a definite one first. Batches behind the heads were never sent.
   * - Transient errors (network, leader moves, timeouts) never come here: for them the same
   *   bytes are resent, which the broker deduplicates.
   */
  async #renewProducerId(topic: string, queues: PartitionQueue[]): Promise<void> {
    this.#identity = null;
    const identity = await this.#currentIdentity({ action: `produce to ${topic}`, topic });
    this.#sequences.clear();
    for (const queue of queues) {
      let sequence = 0;
      for (let i = queue.next; i < queue.batches.length; i++) {
        const batch = queue.batches[i];
        stamp(batch, identity, sequence);
        batch.sequenceRefused = false;
        batch.inDoubt = false;
        sequence = (sequence + batch.count) % 2 ** 31;
      }
      this.#sequences.set(`${topic}:${queue.partition}`, sequence);
    }
  }

  /**
   * After a send failed (fatal error, or Kafka gone for longer than --retry-for): partitions
   * whose unacknowledged batches were definitely not written continue from the first of them.
   * If one may have been written, no sequence is right any more: the next send takes a new
   * producer id. Like any Kafka producer after a delivery timeout, the records of a failed
   * send may or may not be in the log.
   */
  #afterFailedSend(topic: string, queues: PartitionQueue[]): void {
    const unacknowledged = queues.flatMap((q) => q.batches.slice(q.next));
    if (unacknowledged.some((b) => b.inDoubt || b.sequenceRefused)) {
      // Transactional: the transaction cannot commit any more; the caller aborts it (a new epoch, sequences from 0).
      if (this.#options.transaction) this.#sequencesOf = null;
      else this.#identity = null;
      this.#sequences.clear();
      return;
    }
    for (const queue of queues) {
      const first = queue.batches[queue.next];
      if (first) this.#sequences.set(`${topic}:${queue.partition}`, first.baseSequence);
    }
  }

  #restoreSequences(saved: Map<string, number>): void {
    this.#sequences.clear();
    for (const [key, sequence] of saved) this.#sequences.set(key, sequence);
  }

  #partitionOf(topic: string, record: RecordToProduce, partitions: number): number {
    if (record.partition !== undefined) {
      if (!Number.isInteger(record.partition) || record.partition < 0 || record.partition >= partitions) {
        throw new TickflowError('LOG_ERROR', `topic ${topic} has no partition ${record.partition}`, { topic, partition: record.partition });
      }
      return record.partition;
    }
    if (record.key !== null && record.key !== undefined) {
      // Keys repeat (a symbol, a user): their partition is remembered, by value for strings,
      // by identity for buffers (a producer that reuses one buffer per key).
      let known = this.#keyPartitions.get(topic);
      if (!known || known.partitions !== partitions) this.#keyPartitions.set(topic, (known = { partitions, byKey: new Map() }));
      let partition = known.byKey.get(record.key);
      if (partition === undefined) {
        partition = partitionForKey(typeof record.key === 'string' ? Buffer.from(record.key) : record.key, partitions);
        if (known.byKey.size < KEY_PARTITIONS_KEPT) known.byKey.set(record.key, partition);
      }
      return partition;
    }
    const next = this.#roundRobin.get(topic) ?? 0;
    this.#roundRobin.set(topic, next + 1);
    return next % partitions;
  }

  /**
   * Encodes one partition's records into batches of at most maxBatchBytes, assigning
   * sequences. A record that alone exceeds maxBatchBytes is refused before anything is sent.
   */
  #encode(topic: string, partition: number, records: RecordToProduce[], identity: ProducerIdentity): EncodedBatch[] {
    const batches: EncodedBatch[] = [];
    const key = `${topic}:${partition}`;
    let from = 0;
    while (from < records.length) {
      let buffer = Buffer.allocUnsafe(Math.min(this.#options.maxBatchBytes + 1024, 64 + estimate(records, from)));
      const baseTimestamp = records[from].timestamp ?? BigInt(Date.now());
      let maxTimestamp = baseTimestamp;
      let pos = BATCH_HEADER_BYTES;
      let count = 0;
      while (from + count < records.length) {
        const record = records[from + count];
        const size = recordSize(record, count, record.timestamp === undefined ? 0 : Number(record.timestamp - baseTimestamp));
        if (pos + size.total > this.#options.maxBatchBytes) {
          if (count > 0) break;
          throw new TickflowError(
            'LOG_ERROR',
            `produce to ${topic} [partition ${partition}]: a record of ${size.total} bytes exceeds the ${this.#options.maxBatchBytes}-byte request limit`,
            { kafkaCode: 'MESSAGE_TOO_LARGE', topic, partition },
          );
        }
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
      buffer.writeInt16BE(this.#options.transaction ? TRANSACTIONAL : 0, 21); // attributes: no compression
      buffer.writeInt32BE(count - 1, 23); // last offset delta
      buffer.writeBigInt64BE(baseTimestamp, 27);
      buffer.writeBigInt64BE(maxTimestamp, 35);
      buffer.writeInt32BE(count, 57);
      const batch: EncodedBatch = { partition, buffer: buffer.subarray(0, pos), count, baseSequence: sequence, acknowledged: false, inDoubt: false, sequenceRefused: false };
      stamp(batch, identity, sequence);
      batches.push(batch);
      from += count;
    }
    return batches;
  }

  /** One Produce v11 request; resolves with the error code per partition (0 = written). */
  async #request(connection: Connection, topic: string, batches: EncodedBatch[]): Promise<Map<number, number>> {
    const payload = () =>
      Writer.create()
        .appendString(this.#options.transaction?.transactionalId ?? null) // transactional id
        .appendInt16(ACKS_ALL)
        .appendInt32(this.#options.timeoutMs)
        .appendArray([topic], (w, name) => {
          w.appendString(name).appendArray(batches, (w, batch) => {
            w.appendInt32(batch.partition).appendUnsignedVarInt(batch.buffer.length + 1).append(batch.buffer);
          });
        })
        .appendTaggedFields();
    type ProduceResponse = ReturnType<typeof produceV11.parseResponse>;
    const response = await new Promise<ProduceResponse>((resolve, reject) => {
      connection.send(PRODUCE_API, 11, payload, produceV11.parseResponse, true, true, (error: Error | null, result?: ProduceResponse) => {
        // Partition errors come as a ResponseError carrying the whole response: we read the codes ourselves.
        if (error && (error as { response?: unknown }).response) resolve((error as unknown as { response: ProduceResponse }).response);
        else if (error) reject(error);
        else resolve(result!);
      });
    });
    const codes = new Map<number, number>();
    for (const t of response.responses) for (const p of t.partitionResponses) codes.set(p.index, p.errorCode);
    return codes;
  }
}

/** Writes the producer id, epoch and base sequence into a batch and seals it with its CRC. */
function stamp(batch: EncodedBatch, identity: ProducerIdentity, baseSequence: number): void {
  const buffer = batch.buffer;
  buffer.writeBigInt64BE(identity.producerId, 43);
  buffer.writeInt16BE(identity.producerEpoch, 51);
  buffer.writeInt32BE(baseSequence, 53);
  buffer.writeUInt32BE(crc32c(buffer.subarray(21)) >>> 0, 17);
  batch.baseSequence = baseSequence;
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
