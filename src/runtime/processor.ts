/**
 * What a pipeline writes to run on the tickflow runtime: only its logic. The runtime
 * (stream-task.ts) owns the loop, the consumer group, fencing, retries, dead letters,
 * commits, metrics and shutdown — in the spirit of Kafka Streams' StreamTask. How a commit
 * is made durable is the commit strategy's (commit-strategy.ts); the contract is the same
 * for all of them.
 *
 * The life of a processor, per member:
 *   assign(tx, claims)      partitions taken over, with the state kept for them, read in
 *                           the same transaction as their offsets
 *   prepare(records)        (optional) work off the loop's thread, started as soon as the
 *                           records are fetched; its answer is handed to process()
 *   process(records, ctx)   records of assigned partitions, in offset order per partition;
 *                           emit outputs, reject records (dead letters), ask for a commit
 *   onIdle(ctx)             a wall-clock tick, with the partitions that have been quiet
 *   onEnd(ctx)              (bounded runs) partitions that reached their end offset
 *   checkpoint()            what the next commit must write (taken synchronously, together
 *                           with the offsets of the same records)
 *   write(tx, checkpoint)   writes it inside the commit transaction, next to the offsets
 *   revoke()                the assignment is gone (rebalance, fenced, outage): forget
 *                           everything not committed; the next assign() restores it
 *
 * With the output-derived strategy, two more: resume(lastOutputs) before every assign, and
 * neededOffsets() whenever a commit is taken. With kafka-transaction, a processor that holds
 * windows open over many records adds resumePoints() (taken with every commit) and
 * onReplayed() (records processed again after a claim are through).
 */
import type { Queryable } from '../db/types.ts';
import type { LogRecord, RecordToProduce, TopicPartition, TopicPartitionOffset } from '../log/types.ts';

/** Partitions of one topic handed to the processor, with where each resumes. */
export interface PartitionClaim {
  readonly topic: string;
  readonly partitions: readonly number[];
  /** The next offset to read, per partition. */
  readonly offsets: ReadonlyMap<number, bigint>;
  /**
   * kafka-transaction with `resumePoints`: per partition, the state the processor committed
   * with the offset (`ResumePoint.state`), as it gave it.
   */
  readonly states?: ReadonlyMap<number, unknown>;
  /**
   * kafka-transaction with `resumePoints`: per partition, where the records processed
   * before this claim end, when the claim resumes below it (at a resume point). The records
   * below it are processed again to rebuild the state: their rejections are not sent again
   * (they were committed), their emits are (the processor does not emit again what it
   * emitted before, as its state says); `onReplayed` tells when they are through.
   */
  readonly replayed?: ReadonlyMap<number, bigint>;
}

/**
 * Where a restart resumes one partition exactly (kafka-transaction): the lowest offset that
 * state not yet emitted still needs (omitted: the read position), and the processor's
 * state at that offset — JSON-safe and small (it goes in the offset commit's metadata, at
 * most about 3 KB with the runtime's framing).
 */
export interface ResumePoint extends TopicPartition {
  offset?: bigint;
  state: unknown;
}

/**
 * kafka-transaction with `resumePoints`: partitions the processor resumes further on than
 * their claim says, by topic: its own durable state (a snapshot in PostgreSQL) holds what
 * lies before. Never below the claim's offset; records from there up to the claim's
 * `replayed` are still processed again.
 */
export type ClaimStarts = ReadonlyMap<string, ReadonlyMap<number, bigint>>;

/** How a record ended, for the per-partition accounting `monitor` reconciles. */
export type RejectOutcome = 'invalid' | 'late';

export interface ProcessContext {
  /** Wall clock (epoch ms) at the start of this batch; pipelines never read the clock themselves. */
  readonly now: number;
  /** Sends a record to an output topic; committed after the acknowledgement, before the offsets. */
  emit(topic: string, record: RecordToProduce): void;
  /**
   * Sends the record to the dead-letter topic with a reason (a stable code such as
   * `bad-json`, `late`) and a one-line error, and counts it as invalid or late.
   * Extra facts go in `x-` headers. A late one goes to the task's `lateTopic` when it has one.
   */
  reject(record: LogRecord, reason: string, error: string, options?: { outcome?: RejectOutcome; headers?: Record<string, string> }): void;
  /** Counts the record as deliberately discarded (not an error). */
  drop(record: LogRecord): void;
  /** Asks for a commit after this batch (e.g. windows closed), whatever the commit interval. */
  commitSoon(): void;
}

export interface QuietPartition {
  readonly topic: string;
  readonly partition: number;
  /** Its position has reached the end offset of the log. */
  readonly caughtUp: boolean;
}

export interface IdleContext extends Pick<ProcessContext, 'now' | 'emit' | 'reject' | 'commitSoon'> {
  /**
   * Partitions fetched without a record for at least the idle interval. A partition that
   * cannot be fetched (its leader lost) is never quiet: its records may be waiting.
   */
  readonly quiet: readonly QuietPartition[];
  /** Every assigned partition is quiet and caught up (at the end offset last looked up). */
  readonly allQuiet: boolean;
}

export interface EndContext extends Pick<ProcessContext, 'now' | 'emit' | 'reject' | 'commitSoon'> {
  /** Partitions that just reached the end offset they had at the start of a bounded run. */
  readonly ended: readonly TopicPartition[];
  /** Every partition has: the run commits and returns after this call. */
  readonly finished: boolean;
}

export interface Processor<Checkpoint, Prepared = unknown> {
  /**
   * Replaces all in-memory state with what is kept for these partitions. `tx` is the claim
   * transaction with the pg-transaction strategy; the Kafka strategies keep no database
   * and hand a `tx` that refuses every query.
   */
  assign(tx: Queryable, claims: readonly PartitionClaim[]): Promise<void | ClaimStarts>;
  /**
   * Optional: starts work on fetched records off the loop's thread (a worker parsing
   * them); the answer is handed to `process` with the same records. Up to two batches are
   * prepared ahead while the oldest is processed. Null: nothing prepared for these.
   */
  prepare?(records: readonly LogRecord[]): Promise<Prepared> | null;
  /** Handles records; synchronous, so batches are processed strictly in order. */
  process(records: readonly LogRecord[], context: ProcessContext, prepared?: Prepared): void;
  onIdle?(context: IdleContext): void;
  /** Bounded runs (`untilEnd`): partitions reached their end; flush what they held open. */
  onEnd?(context: EndContext): void;
  /** What the next commit writes, or null when there is nothing besides offsets. */
  checkpoint(): Checkpoint | null;
  /** Writes a checkpoint inside the commit transaction; returns the rows written. */
  write(tx: Queryable, checkpoint: Checkpoint): Promise<number>;
  /** Forgets everything not committed. */
  revoke(): void;
  /**
   * Output-derived commits: per partition, the lowest offset that state not yet emitted
   * still needs (partitions not listed need nothing before the read position). Taken
   * together with the outputs of the same commit.
   */
  neededOffsets?(): readonly TopicPartitionOffset[];
  /**
   * Output-derived commits: before every assign, the newest record of each partition of
   * the output topic as earlier runs left it, so that what it covers is not emitted again.
   */
  resume?(lastOutputs: readonly LogRecord[]): void;
  /**
   * kafka-transaction: per assigned partition, where a restart resumes and the state it
   * needs there; taken with the outputs of the same commit, committed in its transaction
   * and handed back in `assign` (`PartitionClaim.states`, `replayed`). `positions`: per
   * topic and partition, where the records processed so far end (the read position).
   */
  resumePoints?(positions: ReadonlyMap<string, ReadonlyMap<number, bigint>>): readonly ResumePoint[];
  /**
   * kafka-transaction with `resumePoints`: the records of the partition processed again
   * after a claim (below `PartitionClaim.replayed`) are through; rejections made here are
   * not sent either.
   */
  onReplayed?(partition: TopicPartition, context: Pick<ProcessContext, 'now' | 'emit' | 'reject'>): void;
}
