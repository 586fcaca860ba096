/**
 * A consumer-group member whose position lives in Postgres, not in the group: the
 * source half of every exactly-once sink (`archive`, `indicators`).
 *
 * On every assignment it claims the assigned partitions in `stored_offsets` (a fresh
 * fencing generation per topic), lets the sink restore what it keeps for them, and
 * resumes each partition at its stored offset. The sink handles each batch in one
 * transaction that writes its output and `saveOffsets(..., claim.generation)`. When the
 * member is fenced (a newer member took a partition), or a batch arrives under an old
 * assignment, it leaves and rejoins: state is rebuilt from what was committed, never
 * from what was in flight. Outages (retriable errors) rejoin the same way after a backoff.
 */
import type { Logger } from 'pino';
import { TickflowError, isTickflowError } from '../core/errors.ts';
import { claimPartitions } from '../db/offset-store.ts';
import type { Database } from '../db/types.ts';
import type { Log, LogRecord, TopicPartitionOffset } from '../log/types.ts';

export interface TopicClaim {
  /** Fencing token for `saveOffsets` on this topic. */
  readonly generation: number;
  readonly partitions: readonly number[];
  /** Stored next offsets (absent: the partition starts at the earliest offset). */
  readonly offsets: ReadonlyMap<number, bigint>;
}

export interface Claims {
  /** The group generation the claims were made under. */
  readonly groupGeneration: number;
  readonly topics: ReadonlyMap<string, TopicClaim>;
}

export interface StoredOffsetSink {
  /** Runs after every claim, before any record of it: load what is kept for those partitions. */
  assigned(claims: Claims): Promise<void>;
  /** Writes the batch's output and its next offsets (`saveOffsets`) in one transaction. */
  process(records: readonly LogRecord[], claims: Claims): Promise<void>;
}

export interface StoredOffsetConsumerOptions {
  log: Log;
  db: Database;
  /** Consumer group, and the `consumer` name of its rows in `stored_offsets`. */
  group: string;
  topics: readonly string[];
  sink: StoredOffsetSink;
  logger: Logger;
  signal: AbortSignal;
  /** Ignore stored offsets on the first assignment and read every partition from its earliest offset. */
  fromBeginning?: boolean;
  /** Return once every partition reached the end offset it had at start (single member). */
  stopAtEnd?: boolean;
  /** Longest wait between rejoins after outages. */
  maxBackoffMs?: number;
}

const tp = (topic: string, partition: number) => `${topic}\u0000${partition}`;

export async function runStoredOffsetConsumer(options: StoredOffsetConsumerOptions): Promise<void> {
  const { log, db, group, topics, sink, logger, signal } = options;
  const ends = options.stopAtEnd ? await endOffsets(log, topics) : null;
  let fromBeginning = options.fromBeginning ?? false;
  let failures = 0;
  while (!signal.aborted) {
    const caughtUp = new AbortController();
    const positions = new Map<string, bigint>();
    let claims: Claims | null = null;
    const isCaughtUp = () => ends !== null && [...ends].every(([key, end]) => (positions.get(key) ?? -1n) >= end);
    const consumer = log.subscribe({
      group,
      topics,
      signal: AbortSignal.any([signal, caughtUp.signal]),
      onAssign: async (assignment) => {
        claims = null;
        positions.clear();
        const byTopic = new Map<string, number[]>();
        for (const { topic, partition } of assignment.partitions) byTopic.set(topic, [...(byTopic.get(topic) ?? []), partition]);
        const claimed = new Map<string, TopicClaim>();
        const starts: TopicPartitionOffset[] = [];
        for (const [topic, partitions] of byTopic) {
          // Partitions without a stored row get one at the log start in the claim itself, so an
          // older owner's late first commit on them is fenced too.
          const earliest = new Map((await log.offsets(topic)).map((p) => [p.partition, p.earliest]));
          const { generation, offsets } = await claimPartitions(db, group, topic, partitions, earliest);
          const kept = fromBeginning ? new Map<number, bigint>() : offsets;
          claimed.set(topic, { generation, partitions, offsets: kept });
          for (const partition of partitions) {
            const offset = kept.get(partition) ?? earliest.get(partition) ?? 0n;
            starts.push({ topic, partition, offset });
            positions.set(tp(topic, partition), offset);
          }
        }
        const next: Claims = { groupGeneration: assignment.generation, topics: claimed };
        await sink.assigned(next);
        claims = next;
        logger.info({ group, generation: assignment.generation, partitions: starts.map((s) => `${s.topic}/${s.partition}@${s.offset}`) }, 'partitions assigned');
        if (isCaughtUp()) caughtUp.abort();
        return starts;
      },
    });
    try {
      for await (const batch of consumer) {
        const current = claims as Claims | null;
        if (!current || batch.generation !== current.groupGeneration) {
          throw new TickflowError('FENCED', `a batch of generation ${batch.generation} arrived after the assignment changed`);
        }
        await sink.process(batch.records, current);
        const records = batch.records;
        for (let i = 0; i < records.length; i++) {
          const r = records[i];
          const n = records[i + 1];
          // Only the last record of each run of one partition moves its position.
          if (!n || n.partition !== r.partition || n.topic !== r.topic) positions.set(tp(r.topic, r.partition), r.offset + 1n);
        }
        failures = 0;
        fromBeginning = false; // a rejoin resumes from what this run stored
        if (isCaughtUp()) caughtUp.abort();
      }
      if (caughtUp.signal.aborted) return;
    } catch (error) {
      if (isTickflowError(error, 'FENCED')) {
        logger.warn({ group, err: error.message }, 'fenced by a newer member: rejoining from the stored state');
        continue;
      }
      if (isTickflowError(error) && error.retriable && !signal.aborted) {
        const wait = Math.min(options.maxBackoffMs ?? 30_000, 250 * 2 ** Math.min(failures++, 10));
        logger.warn({ group, err: error.message, retryInMs: wait }, 'outage: rejoining from the stored state after a pause');
        await sleep(wait, signal);
        continue;
      }
      throw error;
    } finally {
      await consumer.close();
    }
  }
}

async function endOffsets(log: Log, topics: readonly string[]): Promise<Map<string, bigint>> {
  const ends = new Map<string, bigint>();
  for (const topic of topics) for (const p of await log.offsets(topic)) ends.set(tp(topic, p.partition), p.latest);
  return ends;
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(done, ms);
    function done() {
      clearTimeout(timer);
      signal.removeEventListener('abort', done);
      resolve();
    }
    signal.addEventListener('abort', done, { once: true });
  });
}
