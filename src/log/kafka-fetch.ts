import type { Consumer } from '@platformatic/kafka';
import { TickflowError } from '../core/errors.ts';
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

export const DEFAULT_FETCH: FetchTuning = { maxWaitMs: 500, maxBytes: 64 << 20, partitionMaxBytes: 16 << 20 };

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
  const responses = await Promise.all(
    [...byNode].map(async ([node, topicsForNode]) => {
      if (node < 0) {
        outcome.stale = true;
        return null;
      }
      const response = await consumer.fetch({
        node,
        maxWaitTime: tuning.maxWaitMs,
        minBytes: 1,
        maxBytes: tuning.maxBytes,
        topics: [...topicsForNode].map(([topicId, list]) => ({
          topicId,
          partitions: list.map((p) => ({
            partition: p.partition,
            fetchOffset: p.next,
            partitionMaxBytes: tuning.partitionMaxBytes,
            currentLeaderEpoch: -1,
            lastFetchedEpoch: -1,
          })),
        })),
      });
      return { response, topicsForNode };
    }),
  );

  for (const entry of responses) {
    if (!entry) continue;
    for (const topicResponse of entry.response.responses) {
      const topic = topicNames.get(topicResponse.topicId)!;
      const list = entry.topicsForNode.get(topicResponse.topicId) ?? [];
      for (const partitionResponse of topicResponse.partitions) {
        const position = list.find((p) => p.partition === partitionResponse.partitionIndex);
        if (!position) continue;
        if (partitionResponse.errorCode === OFFSET_OUT_OF_RANGE) {
          outcome.outOfRange.push(position);
          continue;
        }
        if (partitionResponse.errorCode !== 0) {
          if (RETRIABLE_FETCH_ERRORS.has(partitionResponse.errorCode)) {
            outcome.stale = true;
            continue;
          }
          throw new TickflowError('LOG_ERROR', `fetch ${topic}[${position.partition}] failed with Kafka error code ${partitionResponse.errorCode}`);
        }
        decodeInto(outcome.records, topic, position, partitionResponse.records ?? []);
      }
    }
  }
  return outcome;
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
