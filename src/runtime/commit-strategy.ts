/**
 * How a stream task makes its progress durable: one of four commit strategies, chosen per
 * pipeline (docs/runtime.md, "Commit strategies").
 *
 *   pg-transaction         rows + state + offsets + accounting in ONE PostgreSQL
 *                          transaction, fenced by a claim generation: exactly once into
 *                          PostgreSQL (archive, indicators, aggregate stocks).
 *   kafka-group-after-ack  offsets committed to the Kafka consumer group once everything
 *                          emitted before them is acknowledged: at least once, nothing lost
 *                          (clean-users).
 *   output-derived         offsets derived from what was emitted: per partition the lowest
 *                          offset that state not yet emitted still needs; on every
 *                          assignment the output topic's newest records tell the processor
 *                          what is already out: no output lost or repeated (unique-users).
 *   kafka-transaction      outputs + dead letters + the consumed offsets in ONE Kafka
 *                          transaction per commit: exactly once for read_committed readers;
 *                          with a database, the processor's state commits in PostgreSQL
 *                          around it (indicators); with resume points, the offsets are the
 *                          lowest that open windows need and carry the processor's state
 *                          there (unique-users).
 *
 * Each strategy is one file implementing `Committer`; the runtime (stream-task.ts) only
 * asks it where assigned partitions resume and to make a commit unit durable.
 */
import { TickflowError } from '../core/errors.ts';
import type { Database, Queryable } from '../db/types.ts';
import type { PartitionCounts } from '../db/pipeline-counts.ts';
import type { GroupConsumer, GroupMember, Log, Producer, RecordToProduce } from '../log/types.ts';
import type { PartitionClaim, Processor } from './processor.ts';

export type CommitStrategy =
  | { readonly kind: 'pg-transaction'; readonly db: Database }
  | { readonly kind: 'kafka-group-after-ack' }
  | { readonly kind: 'output-derived'; readonly outputTopic: string | null }
  | { readonly kind: 'kafka-transaction'; readonly db: Database | null; readonly outputTopic: string | null; readonly transactionTimeoutMs?: number };

/** Rows + state + offsets + accounting in one PostgreSQL transaction (exactly once into PostgreSQL). */
export function pgTransaction(db: Database): CommitStrategy {
  return { kind: 'pg-transaction', db };
}

/** Offsets to the Kafka consumer group after every output is acknowledged (at least once). */
export function kafkaGroupAfterAck(): CommitStrategy {
  return { kind: 'kafka-group-after-ack' };
}

/**
 * Offsets from what `outputTopic` holds and what open state still needs (each output
 * once). Null: the outputs go elsewhere (stdout); nothing is skipped on start.
 */
export function outputDerived(outputTopic: string | null): CommitStrategy {
  return { kind: 'output-derived', outputTopic };
}

/** The commit interval of exactly-once pipelines when none is given: bounds latency and the work a crash redoes. */
export const DEFAULT_TRANSACTION_INTERVAL_MS = 1_000;

/**
 * Outputs, dead letters and the consumed offsets in one Kafka transaction per commit
 * (exactly once for read_committed readers). With `db`, the processor's state, the offsets
 * and the accounting also commit in PostgreSQL, in a transaction that closes around the
 * Kafka commit (commit-kafka-transaction.ts). `transactionTimeoutMs` is how long Kafka lets a
 * transaction of a member that died stay open (default 60 s). Without `db`, a processor with `resumePoints()`
 * has its offsets lowered to them, its state there committed with them; `outputTopic` is
 * where it finds, with `resume()`, what a run before (at least once) emitted, for offsets
 * committed without that state.
 */
export function kafkaTransaction(options: { db?: Database; outputTopic?: string; transactionTimeoutMs?: number } = {}): CommitStrategy {
  return {
    kind: 'kafka-transaction',
    db: options.db ?? null,
    outputTopic: options.outputTopic ?? null,
    ...(options.transactionTimeoutMs === undefined ? {} : { transactionTimeoutMs: options.transactionTimeoutMs }),
  };
}

/**
 * Offsets a commit stores, by topic: the claim generation, the next offset per partition,
 * where the records processed before end when a replay of them is still under way (`read`,
 * above `next`), and for some partitions the metadata committed with the offset.
 */
export type CommitOffsets = Map<string, { generation: number; next: Map<number, bigint>; read?: Map<number, bigint>; metadata?: Map<number, string> }>;

/** What one commit makes durable, taken synchronously so offsets, counts and checkpoint agree. */
export interface CommitUnit<Checkpoint> {
  outputs: Map<string, RecordToProduce[]>;
  /** Side records in the dead-letter format, by topic (dead letters, late records). */
  deadLetters: Map<string, RecordToProduce[]>;
  /** Next offset to read after a restart, per topic and partition. */
  offsets: CommitOffsets;
  /** The consumer-group member whose claim the unit was processed under (null: a bounded run outside the group). */
  member: GroupMember | null;
  counts: Map<string, ReadonlyMap<number, PartitionCounts>>;
  checkpoint: Checkpoint | null;
  read: number;
  /** Tells a retry whether an attempt whose answer was lost did commit. */
  id: string;
}

export interface ClaimRequest {
  /** Assigned partitions by topic. */
  partitions: ReadonlyMap<string, readonly number[]>;
  /** Earliest offset of every partition, by topic: where a partition without a stored offset starts. */
  earliest: ReadonlyMap<string, ReadonlyMap<number, bigint>>;
  /** Start every partition at its earliest offset, and the accounting over. */
  fromBeginning: boolean;
}

export interface Claimed extends PartitionClaim {
  /** Fencing generation of the claim (0 for strategies without fencing). */
  generation: number;
  /**
   * Per partition, where outputs already committed end (kafka-transaction with a database,
   * after a crash between the Kafka and the PostgreSQL commit): records below it are
   * processed again to rebuild the state, their outputs and dead letters not sent again.
   */
  published?: ReadonlyMap<number, bigint>;
}

/** What a committer needs from the task that runs it. */
export interface CommitterContext<Checkpoint> {
  pipeline: string;
  group: string;
  log: Log;
  processor: Processor<Checkpoint, never>;
  signal: AbortSignal;
}

export interface Committer<Checkpoint> {
  readonly kind: CommitStrategy['kind'];
  /**
   * A bounded run (`untilEnd`) of this strategy reads the range without joining the group
   * and stores no offsets; false: it is a group member that stores them as it goes.
   */
  readonly boundedWithoutGroup: boolean;
  /** Where the assigned partitions resume; restores the processor's state for them (`assign`). */
  claim(request: ClaimRequest): Promise<Claimed[]>;
  /** The offsets a commit stores, from the processed positions (the next offset per partition). */
  offsets(processed: CommitOffsets): CommitOffsets;
  /**
   * Makes a unit durable once its outputs and side records are acknowledged; returns the
   * rows written. `consumer` is the group membership to commit through (null: none now).
   */
  commit(unit: CommitUnit<Checkpoint>, consumer: GroupConsumer | null): Promise<number>;
  /**
   * The producer outputs go through, when the strategy owns it (a transactional one); a
   * unit's sends then wait for the previous unit's commit, so that each transaction holds
   * exactly one unit.
   */
  producer?(): Producer;
}

/**
 * The `tx` handed to `assign` by strategies that keep no database: any query is a
 * programming error (the processor's state lives elsewhere).
 */
export const NO_DATABASE: Queryable = {
  query: () => Promise.reject(new TickflowError('INTERNAL', 'this task commits to Kafka and has no database: assign() must not query tx')),
};
