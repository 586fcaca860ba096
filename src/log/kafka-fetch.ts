import { fetchV17 } from '@platformatic/kafka';
import type { Consumer, Reader } from '@platformatic/kafka';
import { TickflowError } from '../core/errors.ts';
import { decodeBatches } from './kafka-records.ts';
import type { LogRecord } from './types.ts';

/** Batches with this attribute bit are transaction markers, not data. */
const IS_CONTROL = 0b10_0000;
/** Errors that a metadata refresh and a retry cure (leader moved, not yet elected, ...). */
const RETRIABLE_FETCH_ERRORS = new Set([3, 5, 6, 9, 13, 74, 75, 100]);
const OFFSET_OUT_OF_RANGE = 1;

export interface FetchPosition {
  topic: string;
  partition: number;
  /** Next offset to read. */
  next: bigint;
  /** Exclusive end; records at or past it are not returned. */
  end?: bigint;
}

export interface FetchTuning {
  maxWaitMs: number;
  maxBytes: number;
  partitionMaxBytes: number;
}

export const DEFAULT_FETCH: FetchTuning = { maxWaitMs: 500, maxBytes: 16 << 20, partitionMaxBytes: 4 << 20 };

export interface FetchOutcome {
  records: LogRecord[];
  /** Partitions whose leader must be looked up again before the next fetch. */
  stale: boolean;
  /** Partitions whose position fell outside the log (deleted by retention). */
  outOfRange: FetchPosition[];
}

/**
 * One fetch round: a Fetch request per leader broker for the given positions. Decodes the
 * record batches into LogRecords, skips control batches and records before the position
 * (a batch can start earlier), stops at `end`, and advances each position in place.
 */
export async function fetchOnce(
  consumer: Consumer,
  positions: FetchPosition[],
  tuning: FetchTuning,
  refreshMetadata = false,
): Promise<FetchOutcome> {
  const topics = [...new Set(positions.map((p) => p.topic))];
  const metadata = await consumer.metadata({ topics, forceUpdate: refreshMetadata });
  const byNode = new Map<number, Map<string, FetchPosition[]>>();
  const topicNames = new Map<string, string>();
  for (const position of positions) {
    const topicMetadata = metadata.topics.get(position.topic);
    if (!topicMetadata) throw new TickflowError('UNKNOWN_TOPIC', `topic ${position.topic} does not exist`, { topic: position.topic });
    topicNames.set(topicMetadata.id, position.topic);
    const leader = topicMetadata.partitions[position.partition]?.leader ?? -1;
    let topicsForNode = byNode.get(leader);
    if (!topicsForNode) byNode.set(leader, (topicsForNode = new Map()));
    const list = topicsForNode.get(topicMetadata.id) ?? [];
    list.push(position);
    topicsForNode.set(topicMetadata.id, list);
  }

  const outcome: FetchOutcome = { records: [], stale: false, outOfRange: [] };
  const raw = await supportsRawFetch(consumer);
  await Promise.all(
    [...byNode].map(async ([node, topicsForNode]) => {
      if (node < 0) {
        outcome.stale = true;
        return;
      }
      const request = [...topicsForNode].map(([topicId, list]) => ({
        topicId,
        partitions: list.map((p) => ({
          partition: p.partition,
          fetchOffset: p.next,
          partitionMaxBytes: tuning.partitionMaxBytes,
          currentLeaderEpoch: -1,
          lastFetchedEpoch: -1,
        })),
      }));
      const partitions = raw
        ? await rawFetch(consumer, metadata.brokers.get(node), request, tuning)
        : await libraryFetch(consumer, node, request, tuning);
      for (const result of partitions) {
        const topic = topicNames.get(result.topicId)!;
        const position = topicsForNode.get(result.topicId)?.find((p) => p.partition === result.partition);
        if (!position) continue;
        if (result.errorCode === OFFSET_OUT_OF_RANGE) {
          outcome.outOfRange.push(position);
          continue;
        }
        if (result.errorCode !== 0) {
          if (RETRIABLE_FETCH_ERRORS.has(result.errorCode)) {
            outcome.stale = true;
            continue;
          }
          throw new TickflowError('LOG_ERROR', `fetch ${topic}[${position.partition}] failed with Kafka error code ${result.errorCode}`);
        }
        if (result.records) decodeBatches(result.records, position, outcome.records);
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
  /** Batches decoded by the client library (fallback path). */
  batches?: Batches;
}

type FetchRequestTopics = Parameters<typeof fetchV17.createRequest>[6];

const rawSupport = new WeakMap<Consumer, Promise<boolean>>();

/** Fetch v17 (Kafka 3.9+) lets us read record bytes ourselves; older brokers use the library's decoder. */
function supportsRawFetch(consumer: Consumer): Promise<boolean> {
  let known = rawSupport.get(consumer);
  if (!known) {
    known = consumer
      .listApis()
      .then((apis) => apis.some((api) => api.apiKey === 1 && api.minVersion <= 17 && api.maxVersion >= 17))
      .catch(() => false);
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
async function rawFetch(
  consumer: Consumer,
  broker: { host: string; port: number } | undefined,
  topics: FetchRequestTopics,
  tuning: FetchTuning,
): Promise<PartitionResult[]> {
  if (!broker) return [];
  const connection = await consumer.connections.get(broker);
  return new Promise((resolve, reject) => {
    connection.send(
      1,
      17,
      () => fetchV17.createRequest(tuning.maxWaitMs, 1, tuning.maxBytes, 0, 0, -1, topics, [], ''),
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
  if (errorCode !== 0) throw new TickflowError('LOG_ERROR', `fetch failed with Kafka error code ${errorCode}`);
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
      const aborted = reader.readUnsignedVarInt() - 1;
      for (let a = 0; a < aborted; a++) {
        reader.readInt64();
        reader.readInt64();
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
      results.push({ topicId, partition, errorCode: partitionError, records });
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

async function libraryFetch(consumer: Consumer, node: number, topics: FetchRequestTopics, tuning: FetchTuning): Promise<PartitionResult[]> {
  const response = await consumer.fetch({ node, maxWaitTime: tuning.maxWaitMs, minBytes: 1, maxBytes: tuning.maxBytes, topics });
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
