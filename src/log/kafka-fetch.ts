import { fetchV17 } from '@platformatic/kafka';
import type { Admin, Connection, Consumer, Reader } from '@platformatic/kafka';

/** A reader (admin client) or a group member's consumer. */
export type FetchClient = Admin | Consumer;
import { TickflowError } from '../core/errors.ts';
import { KafkaCode, errorForCode } from './kafka-errors.ts';
import type { KafkaErrorContext } from './kafka-errors.ts';
import { AbortedTransactions, decodeBatches } from './kafka-records.ts';
import type { AbortedTransaction } from './kafka-records.ts';
import type { LogRecord } from './types.ts';

/** Batches with this attribute bit are transaction markers, not data. */
const IS_CONTROL = 0b10_0000;

export interface FetchPosition {
  topic: string;
  partition: number;
  /** Next offset to read. */
  next: bigint;
  /** Exclusive end; records at or past it are not returned. */
  end?: bigint;
}

/** Kafka's isolation levels: read_committed never returns records of open or aborted transactions. */
export type IsolationLevel = 'read_committed' | 'read_uncommitted';
export const ISOLATION_LEVELS: readonly IsolationLevel[] = ['read_committed', 'read_uncommitted'];

/** The protocol's number for an isolation level (Fetch, ListOffsets). */
export function isolationCode(level: IsolationLevel): number {
  return level === 'read_committed' ? 1 : 0;
}

export interface FetchTuning {
  maxWaitMs: number;
  maxBytes: number;
  partitionMaxBytes: number;
  /**
   * read_committed (the default): a fetch stops at the last stable offset and skips the
   * records of aborted transactions; read_uncommitted: up to the high watermark, all of them.
   */
  isolationLevel: IsolationLevel;
}

export const DEFAULT_FETCH: FetchTuning = { maxWaitMs: 500, maxBytes: 16 << 20, partitionMaxBytes: 4 << 20, isolationLevel: 'read_committed' };

/** Sees each fetch attempt's outcome for its positions; null when none of them could be fetched. */
export type FetchObserver = (positions: readonly FetchPosition[], outcome: FetchOutcome | null) => void;

/** Classifies an error (kafka-errors), asking fresh metadata whether a topic is really missing. */
export type KafkaClassifier = (error: unknown, context: KafkaErrorContext) => Promise<TickflowError>;

export interface FetchOutcome {
  records: LogRecord[];
  /** Partitions whose position fell outside the log (deleted by retention). */
  outOfRange: FetchPosition[];
  /**
   * Why some partitions returned nothing this round (a lost broker, a leader election, a
   * stale leader): their positions did not move. Retriable failures call for fresh
   * metadata and another round.
   */
  failure: TickflowError | null;
  /** The partitions that failed this round (their positions did not move). */
  failed: FetchPosition[];
}

/**
 * One fetch round: a Fetch request per leader broker for the given positions. Decodes the
 * record batches into LogRecords, skips control batches, batches of aborted transactions
 * (read_committed, from the response's aborted-transactions list) and records before the position
 * (a batch can start earlier), stops at `end`, and advances each position in place.
 *
 * It throws only before any position moved (metadata could not be had). Once requests are
 * out, a broker that fails leaves its partitions' positions where they were and is reported
 * in `failure`, next to the records the other brokers delivered: the caller yields those
 * and fetches the failed partitions again from the same offsets, so nothing is skipped or
 * read twice.
 */
/**
 * `client` is a group member's consumer or a reader (any client of the library): on brokers
 * without Fetch v17 the library's own fetch is used, of `client` when it is a consumer, else
 * of `legacyConsumer()`.
 */
export async function fetchOnce(consumer: FetchClient, positions: FetchPosition[], tuning: FetchTuning, classify: KafkaClassifier, legacyConsumer?: () => Consumer): Promise<FetchOutcome> {
  const topics = [...new Set(positions.map((p) => p.topic))];
  const action = `fetch ${topics.join(', ')}`;
  let metadata: Awaited<ReturnType<FetchClient['metadata']>>;
  let raw: boolean;
  try {
    metadata = await consumer.metadata({ topics });
    raw = await supportsRawFetch(consumer);
  } catch (error) {
    throw await classify(error, { action, ...(topics.length === 1 ? { topic: topics[0] } : {}) });
  }
  const outcome: FetchOutcome = { records: [], outOfRange: [], failure: null, failed: [] };
  const fail = (failure: TickflowError, failed: readonly FetchPosition[]) => {
    if (!outcome.failure || (outcome.failure.retriable && !failure.retriable)) outcome.failure = failure;
    outcome.failed.push(...failed);
  };
  const byNode = new Map<number, Map<string, FetchPosition[]>>();
  const topicNames = new Map<string, string>();
  for (const position of positions) {
    const topicMetadata = metadata.topics.get(position.topic);
    const leader = topicMetadata?.partitions[position.partition]?.leader ?? -1;
    if (!topicMetadata || leader < 0 || !metadata.brokers.has(leader)) {
      fail(new TickflowError('LOG_UNAVAILABLE', `fetch ${position.topic} [partition ${position.partition}]: no leader known yet`, { topic: position.topic, partition: position.partition, staleMetadata: true }), [position]);
      continue;
    }
    topicNames.set(topicMetadata.id, position.topic);
    let topicsForNode = byNode.get(leader);
    if (!topicsForNode) byNode.set(leader, (topicsForNode = new Map()));
    const list = topicsForNode.get(topicMetadata.id) ?? [];
    list.push(position);
    topicsForNode.set(topicMetadata.id, list);
  }

  await Promise.all(
    [...byNode].map(async ([node, topicsForNode]) => {
      const request = [...topicsForNode].map(([topicId, list]) => ({
        topicId,
        partitions: rotate(list, fetchRounds++).map((p) => ({
          partition: p.partition,
          fetchOffset: p.next,
          partitionMaxBytes: partitionMaxBytes(consumer, p.topic, tuning),
          currentLeaderEpoch: -1,
          lastFetchedEpoch: -1,
        })),
      }));
      let partitions: PartitionResult[];
      try {
        partitions = raw ? await rawFetch(consumer, metadata.brokers.get(node)!, request, tuning) : await libraryFetch(isConsumer(consumer) ? consumer : legacyConsumer!(), node, request, tuning);
      } catch (error) {
        fail(await classify(error, { action, ...(topics.length === 1 ? { topic: topics[0] } : {}) }), [...topicsForNode.values()].flat());
        return;
      }
      for (const result of partitions) {
        const topic = topicNames.get(result.topicId)!;
        const position = topicsForNode.get(result.topicId)?.find((p) => p.partition === result.partition);
        if (!position) continue;
        if (result.errorCode === KafkaCode.OFFSET_OUT_OF_RANGE) {
          outcome.outOfRange.push(position);
          continue;
        }
        if (result.errorCode !== KafkaCode.NONE) {
          const context = { action: `fetch ${topic}`, topic, partition: position.partition };
          fail(await classify(errorForCode(result.errorCode, context), context), [position]);
          continue;
        }
        const aborted = tuning.isolationLevel === 'read_committed' && result.aborted && result.aborted.length > 0 ? new AbortedTransactions(result.aborted) : null;
        if (result.records) {
          const before = outcome.records.length;
          decodeBatches(result.records, position, outcome.records, aborted);
          observeRecordSize(consumer, topic, result.records, outcome.records.length - before);
        }
        else if (result.batches) decodeInto(outcome.records, topic, position, result.batches);
      }
    }),
  );
  return outcome;
}

interface PartitionResult {
  topicId: string;
  partition: number;
  errorCode: number;
  /** The raw record batches as the socket delivered them (fast path). */
  records?: Buffer[] | null;
  /** read_committed: the aborted transactions among the returned batches. */
  aborted?: AbortedTransaction[];
  /** Batches decoded by the client library (fallback path). */
  batches?: Batches;
}

/**
 * How much of a partition one fetch asks for, from the average record size seen on the topic:
 * about RECORDS_PER_FETCH records, within [MIN_PARTITION_BYTES, tuning.partitionMaxBytes].
 * The records of a fetch are alive until the caller has handled them all; 4 MiB of 60-byte
 * prices is ~70,000 records a partition, more than V8's young generation holds, so they were
 * promoted and collected by full collections (~15% of `stats`). A few thousand records die
 * young: `stats` over 10M prices peaks at ~190 MiB instead of ~340 and spends ~15% less CPU.
 * Larger records keep the full partition size. The first fetch of a topic asks for
 * FIRST_PARTITION_BYTES. Kafka returns a record batch larger than the limit whole, as always.
 */
const RECORDS_PER_FETCH = 4096;
const MIN_PARTITION_BYTES = 64 << 10;
const FIRST_PARTITION_BYTES = 512 << 10;
const recordBytes = new WeakMap<FetchClient, Map<string, number>>();

/**
 * Each fetch lists a node's partitions starting one further: a broker returns a batch over the
 * partition limit only for the first partition with data, so a partition whose next batch is
 * that large is first in some fetch soon, however busy the others are.
 */
let fetchRounds = 0;

function rotate<T>(list: readonly T[], by: number): T[] {
  const start = by % list.length;
  return start === 0 ? [...list] : [...list.slice(start), ...list.slice(0, start)];
}

function partitionMaxBytes(client: FetchClient, topic: string, tuning: FetchTuning): number {
  const average = recordBytes.get(client)?.get(topic);
  const wanted = average === undefined ? FIRST_PARTITION_BYTES : average * RECORDS_PER_FETCH;
  return Math.max(Math.min(MIN_PARTITION_BYTES, tuning.partitionMaxBytes), Math.min(tuning.partitionMaxBytes, Math.round(wanted)));
}

function observeRecordSize(client: FetchClient, topic: string, data: Buffer | readonly Buffer[], records: number): void {
  if (records === 0) return;
  let bytes = 0;
  if (Buffer.isBuffer(data)) bytes = data.length;
  else for (const chunk of data) bytes += chunk.length;
  let topics = recordBytes.get(client);
  if (!topics) recordBytes.set(client, (topics = new Map()));
  topics.set(topic, bytes / records);
}

type FetchRequestTopics = Parameters<typeof fetchV17.createRequest>[6];

const rawSupport = new WeakMap<FetchClient, Promise<boolean>>();

/**
 * Fetch v17 (Kafka 3.9+) lets us read record bytes ourselves; older brokers use the
 * library's decoder. Only an answer is remembered: a failed lookup is asked again.
 */
function supportsRawFetch(consumer: FetchClient): Promise<boolean> {
  let known = rawSupport.get(consumer);
  if (!known) {
    known = consumer.listApis().then((apis) => apis.some((api) => api.apiKey === 1 && api.minVersion <= 17 && api.maxVersion >= 17));
    known.catch(() => rawSupport.delete(consumer));
    rawSupport.set(consumer, known);
  }
  return known;
}

/**
 * One Fetch v17 request on the client's connection to `broker`, answered by a parser that
 * keeps each partition's record bytes as views of the received socket chunks (decoded by
 * decodeBatches) instead of building an object per record or copying them into one buffer.
 * A full fetch: no incremental fetch session (id 0, epoch -1).
 */
async function rawFetch(consumer: FetchClient, broker: { host: string; port: number }, topics: FetchRequestTopics, tuning: FetchTuning): Promise<PartitionResult[]> {
  const connection: Connection = await consumer.connections.get(broker);
  return new Promise((resolve, reject) => {
    connection.send(
      1,
      17,
      () => fetchV17.createRequest(tuning.maxWaitMs, 1, tuning.maxBytes, isolationCode(tuning.isolationLevel), 0, -1, topics, [], ''),
      parseRawFetchResponse,
      true,
      true,
      (error: Error | null, result?: PartitionResult[]) => (error ? reject(error) : resolve(result!)),
    );
  });
}

function parseRawFetchResponse(_correlationId: number, _apiKey: number, _apiVersion: number, reader: Reader): PartitionResult[] {
  const results: PartitionResult[] = [];
  reader.readInt32(); // throttle_time_ms
  const errorCode = reader.readInt16();
  reader.readInt32(); // session_id
  if (errorCode !== KafkaCode.NONE) throw errorForCode(errorCode, { action: 'fetch' });
  const topicCount = reader.readUnsignedVarInt() - 1;
  for (let t = 0; t < topicCount; t++) {
    const topicId = reader.readUUID();
    const partitionCount = reader.readUnsignedVarInt() - 1;
    for (let p = 0; p < partitionCount; p++) {
      const partition = reader.readInt32();
      const partitionError = reader.readInt16();
      reader.readInt64(); // high_watermark
      reader.readInt64(); // last_stable_offset
      reader.readInt64(); // log_start_offset
      const abortedCount = reader.readUnsignedVarInt() - 1; // -1: null (read_uncommitted)
      const aborted: AbortedTransaction[] = [];
      for (let a = 0; a < abortedCount; a++) {
        const producerId = reader.readInt64();
        const firstOffset = reader.readInt64();
        aborted.push({ producerId, firstOffset });
        skipTaggedFields(reader);
      }
      reader.readInt32(); // preferred_read_replica
      const size = reader.readUnsignedVarInt() - 1; // COMPACT_RECORDS: length + 1, 0 = null
      let records: Buffer[] | null = null;
      if (size > 0) {
        // Views of the socket's chunks, not a copy: decodeBatches reads across them.
        records = reader.buffer.subarray(reader.position, reader.position + size).buffers;
        reader.skip(size);
      }
      skipTaggedFields(reader);
      results.push({ topicId, partition, errorCode: partitionError, records, aborted });
    }
    skipTaggedFields(reader);
  }
  skipTaggedFields(reader);
  return results;
}

function skipTaggedFields(reader: Reader): void {
  const count = reader.readUnsignedVarInt();
  for (let i = 0; i < count; i++) {
    reader.readUnsignedVarInt();
    reader.skip(reader.readUnsignedVarInt());
  }
}

function isConsumer(client: FetchClient): client is Consumer {
  return 'fetch' in client;
}

async function libraryFetch(consumer: Consumer, node: number, topics: FetchRequestTopics, tuning: FetchTuning): Promise<PartitionResult[]> {
  // The library skips aborted transactions itself at read_committed.
  const response = await consumer.fetch({ node, maxWaitTime: tuning.maxWaitMs, minBytes: 1, maxBytes: tuning.maxBytes, isolationLevel: isolationCode(tuning.isolationLevel), topics });
  return response.responses.flatMap((topic) =>
    topic.partitions.map((p) => ({ topicId: topic.topicId, partition: p.partitionIndex, errorCode: p.errorCode, batches: p.records ?? [] })),
  );
}

type Batches = NonNullable<Awaited<ReturnType<Consumer['fetch']>>['responses'][number]['partitions'][number]['records']>;

function decodeInto(out: LogRecord[], topic: string, position: FetchPosition, batches: Batches): void {
  const { partition } = position;
  for (const batch of batches) {
    const lastOffset = batch.firstOffset + BigInt(batch.lastOffsetDelta);
    if (batch.attributes & IS_CONTROL) {
      if (lastOffset >= position.next) position.next = lastOffset + 1n;
      continue;
    }
    for (const record of batch.records) {
      const offset = batch.firstOffset + BigInt(record.offsetDelta);
      if (offset < position.next) continue;
      if (position.end !== undefined && offset >= position.end) {
        position.next = position.end;
        return;
      }
      out.push({
        topic,
        partition,
        offset,
        timestamp: batch.firstTimestamp + record.timestampDelta,
        key: record.key,
        value: record.value,
        headers: record.headers.length === 0 ? [] : record.headers.map(([k, v]) => [k?.toString() ?? '', v ?? Buffer.alloc(0)] as const),
      });
      position.next = offset + 1n;
    }
    // Compaction can leave gaps at the end of a batch: move past them.
    if (lastOffset >= position.next) position.next = lastOffset + 1n;
    if (position.end !== undefined && position.next > position.end) position.next = position.end;
  }
}
