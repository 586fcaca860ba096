/**
 * The one place that runs a pipeline: a source (a consumer-group member, or a bounded
 * range to the end offsets seen at start) feeding a Processor, with its progress made
 * durable by a commit strategy (commit-strategy.ts): rows + state + offsets + accounting
 * in ONE PostgreSQL transaction (exactly once into PostgreSQL), offsets to the consumer
 * group after every output is acknowledged (at least once), or offsets derived from what
 * was emitted (each output once).
 *
 * Per assignment: the strategy says where each partition resumes and the processor's
 * state is restored (for pg-transaction: a fresh fencing generation and the state, read in
 * the claim transaction). Per batch: guard the size of each record, process in slices,
 * and commit: outputs and side records are sent first and acknowledged (at least once,
 * deterministic values), then the strategy stores the offsets (pg-transaction: with the
 * checkpoint and counts, fenced: a newer owner rolls it back). A slice is computed and its
 * outputs sent while the previous slice's commit runs; commits stay in order. A processor
 * may prepare batches off the loop's thread (`prepare`): up to two are prepared ahead.
 *
 * Faults: a lost database is retried (the transaction rolled back, so running it again is
 * safe) and a lost broker is retried by the log adapter, both under the one policy of
 * `withRetries`; an outage the adapter could not ride through makes the member rejoin
 * from the stored state. A partition the log cannot fetch (its leader lost) is never
 * idle. Fenced by a newer owner: drop what is uncommitted and wait for the new assignment.
 * Ctrl-C: commit what was processed while still a member, then leave the group.
 */
import { TickflowError, isTickflowError } from '../core/errors.ts';
import { randomUUID } from 'node:crypto';
import { BatchCounts } from '../db/pipeline-counts.ts';
import type { PartitionCounts } from '../db/pipeline-counts.ts';
import type { Database } from '../db/types.ts';
import type { Assignment, GroupConsumer, GroupMember, Log, LogRecord, Producer, RecordToProduce, TopicPartition, TopicPartitionOffset } from '../log/types.ts';
import { metrics } from '../observability/metrics.ts';
import { OutageWatch, withRetries } from '../observability/retry.ts';
import { GroupAfterAckCommitter } from './commit-group-after-ack.ts';
import { KafkaTransactionCommitter } from './commit-kafka-transaction.ts';
import { isProducerFenced } from '../log/kafka-transaction.ts';
import { OutputDerivedCommitter } from './commit-output-derived.ts';
import { PgTransactionCommitter, isRetriableDbError } from './commit-pg-transaction.ts';
import { NO_DATABASE } from './commit-strategy.ts';
import type { Claimed, CommitOffsets, CommitStrategy, Committer, CommitterContext, CommitUnit } from './commit-strategy.ts';
import { withDeadLetterFallback } from './dead-letter-producer.ts';
import { DEFAULT_DEAD_LETTER_LIMIT, DEFAULT_MAX_RECORD_BYTES, deadLetter, tooLarge, tooLargeRejection } from './dead-letters.ts';
import type { EndContext, IdleContext, ProcessContext, Processor, QuietPartition, RejectOutcome } from './processor.ts';

export interface TaskLogger {
  debug(obj: Record<string, unknown>, msg: string): void;
  info(obj: Record<string, unknown>, msg: string): void;
  warn(obj: Record<string, unknown>, msg: string): void;
}

export interface StreamTaskOptions<Checkpoint, Prepared = unknown> {
  /** Names the pipeline in metrics, logs and the `x-pipeline` dead-letter header. */
  pipeline: string;
  log: Log;
  /** The database of the pg-transaction strategy (the default strategy when `commit` is not given). */
  db?: Database;
  /** How progress is made durable; default `pgTransaction(db)`. */
  commit?: CommitStrategy;
  /**
   * The Kafka strategies without a database of their own (kafka-transaction without `db`,
   * output-derived, kafka-group-after-ack): a database the processor's checkpoint is written
   * to (`write`, in a PostgreSQL transaction of its own per commit unit) BEFORE the unit's
   * outputs can be seen — before its Kafka transaction commits, before its outputs are sent
   * when they are not transactional — retried while PostgreSQL is away. A crash in between
   * redoes the unit, which writes its checkpoint again: `write` must be idempotent.
   */
  checkpointDb?: Database;
  /** Consumer group, and the consumer name of its rows in `stored_offsets`. */
  group: string;
  topics: readonly string[];
  processor: Processor<Checkpoint, Prepared>;
  /** Where rejected records go; required when the processor rejects or records can be too large. */
  deadLetterTopic?: string;
  /** Where rejections with outcome `late` go (default: the dead-letter topic). */
  lateTopic?: string;
  logger: TaskLogger;
  signal: AbortSignal;
  /**
   * Return once every partition reached the end offset it had at start (a bounded run).
   * With pg-transaction a group member that stores its offsets; with the Kafka strategies
   * a plain read from the earliest offsets, without the group, storing none.
   */
  untilEnd?: boolean;
  /** Read every partition from its earliest offset on the first assignment, and start the accounting over. */
  fromBeginning?: boolean;
  /** Commit at most this often while records flow (0: after every batch). */
  commitIntervalMs?: number;
  /** A partition is quiet after this long without records (onIdle, lag); default 5 s. */
  idleMs?: number;
  /** Names the rows the processor writes in `tickflow_records_out_total` (default: postgres). */
  sink?: string;
  /** Records above this size are dead-lettered as `too-large` without being processed. */
  maxRecordBytes?: number;
  /** Records processed and committed together (bounds the output held in memory). */
  sliceRecords?: number;
  sessionTimeoutMs?: number;
  /** Static membership in the group (group.instance.id; SubscribeOptions.groupInstanceId). */
  groupInstanceId?: string;
  /** Awaited before the first send (output topics being created while the first records are read). */
  outputsReady?: Promise<unknown>;
  /**
   * A member of several (kafka-transaction): a producer fenced by a newer one of its
   * transactional id — the partition set moved to another member in a rebalance while a commit
   * was under way — drops its uncommitted work and waits for the next assignment, as a group
   * fencing does, instead of stopping the member.
   */
  rejoinWhenProducerFenced?: boolean;
  /** Wall clock, epoch ms; injectable for tests. */
  now?: () => number;
  /** Observers, for tests and dashboards. */
  onAssigned?: (info: { partitions: TopicPartitionOffset[]; generation: number | null }) => void;
  onCommitted?: (info: { offsets: TopicPartitionOffset[]; rows: number }) => void;
}

export interface StreamTaskReport {
  read: number;
  /** Rows the processor wrote. */
  rows: number;
  published: number;
  deadLettered: number;
  /** Of those, records over `maxRecordBytes`, rejected unparsed. */
  tooLarge: number;
  commits: number;
  fenced: number;
}

interface Position {
  topic: string;
  partition: number;
  generation: number;
  /** Next offset to process. */
  next: bigint;
  /** Next offset fetched (ahead of `next` while batches are being prepared). */
  fetched: bigint;
  /** Exclusive end of a bounded run. */
  end: bigint | null;
  ended: boolean;
  /** Processed since the last commit was taken. */
  dirty: boolean;
  lastRecordWall: number;
  /** Records below this were processed and their side records (and outputs, with `silentOutputs`) committed before: replayed silently. */
  silentUntil: bigint | null;
  /** The outputs of the records below `silentUntil` were committed too (per record outputs); false: the processor's to deduplicate. */
  silentOutputs: boolean;
}

/** Consecutive records of one partition in a batch. */
interface Run {
  position: Position;
  /** Where the run's accounting starts: the position before it (offsets up to `first` held no record). */
  from: bigint;
  first: bigint;
  next: bigint;
  accepted: number;
  /** Offsets in [from, next) without a record: transaction markers, aborted or compacted records. */
  skipped: number;
}

/** A slice checked against the positions: what the processor gets, and what is too large. */
interface Admitted {
  runs: Run[];
  accepted: LogRecord[];
  oversized: LogRecord[];
  /** Replayed records: processed, their side records (and with 'all' their outputs) not sent. */
  silent: Silence;
}

/** What a replay does not send again: nothing held back, side records, or side records and outputs. */
type Silence = 'none' | 'side' | 'all';

/** Batches prepared off the loop's thread while the oldest is processed. */
const PREPARE_AHEAD = 2;
/**
 * Fenced means a newer member claimed our partitions: a rebalance is under way and our
 * new assignment usually follows within a heartbeat. If none comes, rejoin the group.
 */
const FENCED_REJOIN_MS = 3_000;
const key = (topic: string, partition: number) => `${topic}\u0000${partition}`;

/** A run of a partition's records starting at `first`; the offsets between the position and it held no record. */
function newRun(position: Position, first: bigint): Run {
  return { position, from: position.fetched, first, next: first, accepted: 0, skipped: Number(first - position.fetched) };
}

export async function runStreamTask<Checkpoint, Prepared = unknown>(options: StreamTaskOptions<Checkpoint, Prepared>): Promise<StreamTaskReport> {
  return new StreamTask(options).run();
}

function committerFor<Checkpoint>(options: StreamTaskOptions<Checkpoint, never>): Committer<Checkpoint> {
  const strategy = options.commit ?? (options.db ? { kind: 'pg-transaction' as const, db: options.db } : null);
  if (!strategy) throw new TickflowError('BAD_CONFIG', `${options.pipeline}: give a database (db) or another commit strategy (commit)`);
  const context: CommitterContext<Checkpoint> = { pipeline: options.pipeline, group: options.group, log: options.log, processor: options.processor, signal: options.signal };
  if (options.checkpointDb && (strategy.kind === 'pg-transaction' || (strategy.kind === 'kafka-transaction' && strategy.db !== null))) {
    throw new TickflowError('INTERNAL', `${options.pipeline}: checkpointDb is for the Kafka strategies without a database; ${strategy.kind} writes the checkpoint in its own transaction`);
  }
  switch (strategy.kind) {
    case 'pg-transaction':
      return new PgTransactionCommitter(strategy.db, context);
    case 'kafka-group-after-ack':
      return new GroupAfterAckCommitter(context);
    case 'output-derived':
      return new OutputDerivedCommitter(strategy.outputTopic, context);
    case 'kafka-transaction':
      return new KafkaTransactionCommitter(strategy.db, strategy.outputTopic, context, strategy.transactionTimeoutMs);
  }
}

class StreamTask<Checkpoint, Prepared> {
  readonly #o: StreamTaskOptions<Checkpoint, Prepared>;
  readonly #committer: Committer<Checkpoint>;
  readonly #now: () => number;
  readonly #producer: Producer;
  readonly #commitIntervalMs: number;
  readonly #maxRecordBytes: number;
  readonly #sliceRecords: number;
  /** A bounded run read without the group: no idle ticks, no offsets stored. */
  readonly #range: boolean;
  readonly #positions = new Map<string, Position>();
  readonly #report: StreamTaskReport = { read: 0, rows: 0, published: 0, deadLettered: 0, tooLarge: 0, commits: 0, fenced: 0 };
  /** Uncommitted work since the last commit unit was taken. */
  #outputs = new Map<string, RecordToProduce[]>();
  #deadLetters = new Map<string, RecordToProduce[]>();
  #counts = new Map<string, BatchCounts>();
  #read = 0;
  #commitRequested = false;
  #lastCommit = 0;
  /** Batches admitted and being prepared, oldest first. */
  #pending: Array<{ admitted: Admitted; prepared: Promise<Prepared> }> = [];
  /** The commit in flight (at most one; the next slice is computed meanwhile). */
  #committing: Promise<void> | null = null;
  #assigned = false;
  /** Failed commits already handled (a failure is seen by its chain and by its own handler). */
  readonly #settled = new WeakSet<Promise<void>>();
  #fencedAt: number | null = null;
  #fromBeginning: boolean;
  #ends: Map<string, bigint> | null = null;
  #consumer: GroupConsumer | null = null;
  #failure: unknown = null;
  #ticking = false;
  /** Processing a replay: rejections (and with 'all' emits) are not sent, they were committed before. */
  #silent: Silence = 'none';
  /** The group member of the current claim: a transaction's offsets carry it (null: none, or a bounded run outside the group). */
  #member: GroupMember | null = null;
  /** The strategy owns the producer (a transaction): a unit's sends wait for the previous commit. */
  readonly #transactional: boolean;
  /** Everything touching the state runs one at a time: batches, idle ticks, assignments. */
  #queue: Promise<unknown> = Promise.resolve();

  constructor(options: StreamTaskOptions<Checkpoint, Prepared>) {
    this.#o = options;
    this.#committer = committerFor(options as StreamTaskOptions<Checkpoint, never>);
    this.#now = options.now ?? Date.now;
    this.#transactional = this.#committer.producer !== undefined;
    const producer = this.#committer.producer?.() ?? options.log.producer();
    const sideTopics = [options.deadLetterTopic, options.lateTopic].filter((t): t is string => t !== undefined);
    this.#producer = sideTopics.length > 0 ? withDeadLetterFallback(producer, sideTopics) : producer;
    this.#commitIntervalMs = options.commitIntervalMs ?? 0;
    this.#maxRecordBytes = options.maxRecordBytes ?? DEFAULT_MAX_RECORD_BYTES;
    this.#sliceRecords = options.sliceRecords ?? 50_000;
    this.#fromBeginning = options.fromBeginning ?? false;
    this.#range = (options.untilEnd ?? false) && this.#committer.boundedWithoutGroup;
  }

  async run(): Promise<StreamTaskReport> {
    const { log, topics } = this.#o;
    try {
      if (this.#o.untilEnd) {
        this.#ends = new Map();
        for (const topic of topics) for (const p of await log.offsets(topic)) this.#ends.set(key(topic, p.partition), p.latest);
      }
      if (this.#range) await this.#runRange();
      else await this.#runGroup();
    } finally {
      await this.#queue.catch(() => undefined);
      await this.#committing?.catch(() => undefined);
      await this.#producer.close().catch(() => undefined);
    }
    return { ...this.#report };
  }

  /** A bounded run without the group: every partition from its earliest offset to its end at start. */
  async #runRange(): Promise<void> {
    const { log, topics, signal } = this.#o;
    const claims: Claimed[] = [];
    for (const topic of topics) {
      const offsets = await log.offsets(topic);
      claims.push({ topic, partitions: offsets.map((p) => p.partition), offsets: new Map(offsets.map((p) => [p.partition, p.earliest])), generation: 0 });
    }
    await this.#serial(async () => {
      await this.#o.processor.assign(NO_DATABASE, claims);
      this.#install(claims, null);
    });
    for (const claim of claims) {
      const to = new Map(claim.partitions.map((p) => [p, this.#ends!.get(key(claim.topic, p))!]));
      for await (const batch of log.readRange({ topic: claim.topic, from: claim.offsets, to, signal })) {
        await this.#serial(() => this.#ingest(batch));
        if (this.#failure) throw this.#failure;
      }
    }
    await this.#serial(async () => {
      await this.#drainPending();
      // Stopped early (Ctrl-C): what was read is all there is; the processor flushes it.
      if (signal.aborted) this.#reportEnds(this.#now(), true);
      await this.#commit(true);
    });
    if (this.#failure) throw this.#failure;
  }

  async #runGroup(): Promise<void> {
    const { signal, logger, log, topics, group } = this.#o;
    const idleMs = this.#o.idleMs ?? 5_000;
    const timer = setInterval(() => void this.#tick(idleMs), Math.min(1000, Math.max(50, Math.floor(idleMs / 4))));
    const kafka = new OutageWatch('kafka', `consume ${topics.join(',')} as ${group}`);
    try {
      while (!signal.aborted) {
        const done = new AbortController();
        // Stopping: commit what was processed while still a member, then leave (the Kafka
        // strategies commit through the membership).
        const stop = () => void this.#serial(async () => {
          await this.#drainPending();
          await this.#commit(true);
        }).catch((error) => this.#fail(error)).finally(() => done.abort());
        signal.addEventListener('abort', stop, { once: true });
        const consumer = log.subscribe({
          group,
          topics,
          sessionTimeoutMs: this.#o.sessionTimeoutMs,
          ...(this.#o.groupInstanceId ? { groupInstanceId: this.#o.groupInstanceId } : {}),
          signal: done.signal,
          onAssign: (assignment) => this.#serial(() => this.#assign(assignment, done)),
        });
        this.#consumer = consumer;
        try {
          for await (const batch of consumer) {
            await this.#serial(async () => {
              await this.#ingest(batch.records);
              if (batch.positions) await this.#skipTo(batch.positions);
            });
            kafka.recovered();
            if (this.#caughtUp()) await this.#finishCaughtUp(done);
          }
          if (this.#failure) throw this.#failure;
          // Shutting down or caught up: keep what was processed.
          await this.#serial(async () => {
            await this.#drainPending();
            await this.#commit(true);
          });
          if (this.#failure) throw this.#failure;
          if (done.signal.aborted || signal.aborted) break;
        } catch (error) {
          if (signal.aborted && !isTickflowError(error, 'FENCED')) throw error;
          if (!isTickflowError(error) || !error.retriable) throw error;
          // What the adapters could not ride through: rejoin from the stored state.
          logger.warn({ err: error.message }, 'lost the log or the database; rejoining from the stored state');
          await this.#serial(async () => this.#revoke());
          this.#failure = null;
          await kafka.failed(error, signal);
        } finally {
          signal.removeEventListener('abort', stop);
          this.#consumer = null;
          await consumer.close().catch(() => undefined);
        }
      }
    } finally {
      kafka.leave();
      clearInterval(timer);
    }
  }

  /**
   * A bounded group run reached its ends: commit while still a member (a transaction's
   * offsets carry the membership, which leaving ends), then leave.
   */
  async #finishCaughtUp(done: AbortController): Promise<void> {
    await this.#serial(async () => {
      await this.#drainPending();
      await this.#commit(true);
    }).catch((error) => this.#fail(error));
    done.abort();
  }

  #serial<T>(task: () => Promise<T>): Promise<T> {
    const run = this.#queue.then(task);
    this.#queue = run.catch(() => undefined);
    return run;
  }

  #fail(error: unknown): void {
    if (isTickflowError(error) && error.retriable) {
      this.#o.logger.warn({ err: error.message }, 'idle tick failed; will retry');
      return;
    }
    this.#failure ??= error;
    void this.#consumer?.close();
  }

  #caughtUp(): boolean {
    const ends = this.#ends;
    if (!ends || !this.#assigned) return false;
    for (const [k, end] of ends) {
      const position = this.#positions.get(k);
      if (!position || position.next < end) return false;
    }
    return true;
  }

  #revoke(): void {
    this.#o.processor.revoke();
    this.#positions.clear();
    this.#pending = [];
    this.#outputs = new Map();
    this.#deadLetters = new Map();
    this.#counts = new Map();
    this.#read = 0;
    this.#commitRequested = false;
    this.#assigned = false;
  }

  async #assign(assignment: Assignment, done: AbortController): Promise<TopicPartitionOffset[]> {
    const { log, group, logger, topics } = this.#o;
    // Save what we have under the old claim; if someone else owns it now, that is FENCED and harmless.
    await this.#drainPending();
    await this.#commit(true).catch((error) => {
      if (!isTickflowError(error, 'FENCED') || (isProducerFenced(error) && !this.#o.rejoinWhenProducerFenced)) throw error;
    });
    this.#revoke();
    this.#fencedAt = null;
    this.#member = assignment.member ?? null;
    const byTopic = new Map<string, number[]>();
    for (const { topic, partition } of assignment.partitions) if (topics.includes(topic)) byTopic.set(topic, [...(byTopic.get(topic) ?? []), partition]);
    const earliest = new Map<string, Map<number, bigint>>();
    for (const topic of byTopic.keys()) earliest.set(topic, new Map((await log.offsets(topic)).map((p) => [p.partition, p.earliest])));
    const claims = await this.#committer.claim({ partitions: byTopic, earliest, fromBeginning: this.#fromBeginning });
    const starts = this.#install(claims, done);
    logger.info({ group, generation: assignment.generation, partitions: starts.map((s) => `${s.topic}/${s.partition}@${s.offset}`) }, starts.length > 0 ? 'partitions claimed; resuming from stored offsets' : 'no partitions assigned');
    return starts;
  }

  /** Takes over claimed partitions at their offsets. */
  #install(claims: readonly Claimed[], done: AbortController | null): TopicPartitionOffset[] {
    const fromBeginning = this.#fromBeginning;
    this.#fromBeginning = false; // a rejoin resumes from what this run stored
    const now = this.#now();
    const starts: TopicPartitionOffset[] = [];
    for (const claim of claims) {
      for (const partition of claim.partitions) {
        const next = claim.offsets.get(partition)!;
        const k = key(claim.topic, partition);
        const end = this.#ends?.get(k) ?? null;
        const published = claim.published?.get(partition);
        const replayed = claim.replayed?.get(partition);
        const silentOutputs = published !== undefined && published > next;
        const silentUntil = silentOutputs ? published : replayed !== undefined && replayed > next ? replayed : null;
        this.#positions.set(k, { topic: claim.topic, partition, generation: claim.generation, next, fetched: next, end, ended: false, dirty: fromBeginning, lastRecordWall: now, silentUntil, silentOutputs });
        starts.push({ topic: claim.topic, partition, offset: next });
      }
    }
    this.#assigned = true;
    this.#lastCommit = now;
    this.#o.onAssigned?.({ partitions: starts, generation: claims[0]?.generation ?? null });
    this.#reportEnds(now);
    // Nothing to read: the bounded run commits (after this assignment, while a member) and leaves.
    if (done && this.#caughtUp()) void this.#finishCaughtUp(done);
    return starts;
  }

  async #ingest(records: readonly LogRecord[]): Promise<void> {
    if (!this.#assigned || this.#fencedAt !== null || this.#o.signal.aborted) return;
    const started = performance.now();
    for (const [part, silent] of this.#splitReplay(records)) await this.#ingestPart(part, silent);
    // A bounded run fetched everything: nothing more comes to push the pending batches out.
    if (this.#ends && this.#pending.length > 0 && [...this.#positions.values()].every((p) => p.end === null || p.fetched >= p.end)) await this.#drainPending();
    metrics.batchSeconds.observe({ pipeline: this.#o.pipeline }, (performance.now() - started) / 1000);
  }

  /**
   * Moves positions past offsets that hold no record for this reader (transaction markers,
   * records of aborted transactions), as the log reports them after a batch: a partition
   * whose last offsets are a commit marker is then at its end (a bounded run finishes, an
   * idle one counts as caught up), and the stored offset moves past the marker. In order:
   * the batches still being prepared are applied first.
   */
  async #skipTo(positions: readonly TopicPartitionOffset[]): Promise<void> {
    if (!this.#assigned || this.#fencedAt !== null || this.#o.signal.aborted) return;
    const gaps = positions.filter((pos) => {
      const p = this.#positions.get(key(pos.topic, pos.partition));
      return p !== undefined && pos.offset > p.fetched;
    });
    if (gaps.length === 0) return;
    await this.#drainPending();
    if (!this.#assigned) return;
    for (const pos of gaps) {
      const p = this.#positions.get(key(pos.topic, pos.partition));
      if (!p || pos.offset <= p.fetched) continue;
      this.#countsOf(p.topic).skip(p.partition, p.fetched, Number(pos.offset - p.fetched));
      p.fetched = pos.offset;
      if (pos.offset > p.next) {
        p.next = pos.offset;
        p.dirty = true;
      }
    }
    this.#reportEnds(this.#now());
  }

  /**
   * The records processed before (below a position's `silentUntil`), outputs committed too
   * or only side records, then the others; one part when no partition replays. Order
   * within a partition is kept.
   */
  #splitReplay(records: readonly LogRecord[]): Array<[readonly LogRecord[], Silence]> {
    let replaying = false;
    for (const p of this.#positions.values()) if (p.silentUntil !== null) replaying = true;
    if (!replaying) return [[records, 'none']];
    const all: LogRecord[] = [];
    const side: LogRecord[] = [];
    const rest: LogRecord[] = [];
    for (const record of records) {
      const position = this.#positions.get(key(record.topic, record.partition));
      const until = position?.silentUntil;
      (until != null && record.offset < until ? (position!.silentOutputs ? all : side) : rest).push(record);
    }
    return [[all, 'all'], [side, 'side'], [rest, 'none']];
  }

  async #ingestPart(records: readonly LogRecord[], silent: Silence): Promise<void> {
    const { processor } = this.#o;
    for (let from = 0; from < records.length; from += this.#sliceRecords) {
      const slice = from === 0 && records.length <= this.#sliceRecords ? records : records.slice(from, from + this.#sliceRecords);
      const admitted = this.#admit(slice, silent);
      if (admitted.runs.length === 0) continue;
      const prepared = admitted.accepted.length > 0 ? (processor.prepare?.(admitted.accepted) ?? null) : null;
      if (prepared) {
        prepared.catch(() => undefined); // awaited in turn; a revoke may drop it
        this.#pending.push({ admitted, prepared });
        while (this.#pending.length > PREPARE_AHEAD) await this.#applyOldest();
      } else {
        await this.#drainPending();
        await this.#apply(admitted, undefined);
      }
    }
  }

  /**
   * Checks a slice against the positions: records of partitions not (or no longer) ours,
   * or already fetched, are skipped; records over the size guard are set apart. Offsets
   * grow within a partition's run, so only the first record of a run is compared.
   */
  #admit(records: readonly LogRecord[], silent: Silence = 'none'): Admitted {
    const admitted: Admitted = { runs: [], accepted: [], oversized: [], silent };
    let run: Run | null = null;
    let skipping = false;
    let last: LogRecord | null = null;
    for (const record of records) {
      if (last === null || record.partition !== last.partition || record.topic !== last.topic) {
        if (run !== null && last !== null) this.#closeRun(run, last);
        run = null;
        skipping = false;
        const position = this.#positions.get(key(record.topic, record.partition));
        const offset = record.offset;
        if (!position || offset < position.fetched) skipping = true;
        else admitted.runs.push((run = newRun(position, offset)));
      } else if (run !== null && record.offset > last.offset + 1n) {
        run.skipped += Number(record.offset - last.offset - 1n);
      }
      last = record;
      if (skipping) {
        // Within a run that started below the position: take up where the position is.
        const position = this.#positions.get(key(record.topic, record.partition));
        if (!position || record.offset < position.fetched) continue;
        skipping = false;
        admitted.runs.push((run = newRun(position, record.offset)));
      }
      if (tooLarge(record, this.#maxRecordBytes)) {
        admitted.oversized.push(record);
        continue;
      }
      run!.accepted++;
      admitted.accepted.push(record);
    }
    if (run !== null && last !== null) this.#closeRun(run, last);
    return admitted;
  }

  #closeRun(run: Run, last: LogRecord): void {
    run.next = last.offset + 1n;
    run.position.fetched = run.next;
  }

  async #applyOldest(): Promise<void> {
    const { admitted, prepared } = this.#pending.shift()!;
    const result = await prepared;
    await this.#apply(admitted, result);
  }

  async #drainPending(): Promise<void> {
    while (this.#pending.length > 0) await this.#applyOldest();
  }

  /** Processes an admitted slice: positions, counts, the size guard's dead letters, the processor; then commits when due. */
  async #apply(admitted: Admitted, prepared: Prepared | undefined): Promise<void> {
    if (!this.#assigned) return; // revoked while it was being prepared
    const { processor, pipeline } = this.#o;
    const now = this.#now();
    const inByTopic = new Map<string, number>();
    for (const run of admitted.runs) {
      const { position } = run;
      if (run.next > position.next) position.next = run.next;
      position.dirty = true;
      position.lastRecordWall = now;
      const counts = this.#countsOf(position.topic);
      counts.observe(position.partition, run.from);
      if (run.skipped > 0) counts.skip(position.partition, run.from, run.skipped);
      if (run.accepted > 0) {
        counts.add(position.partition, run.first, 'accepted', run.accepted);
        inByTopic.set(position.topic, (inByTopic.get(position.topic) ?? 0) + run.accepted);
      }
    }
    this.#silent = admitted.silent;
    try {
      for (const record of admitted.oversized) {
        const rejection = tooLargeRejection(record, this.#maxRecordBytes);
        this.#report.tooLarge++;
        this.#reject(record, rejection.reason, rejection.error, 'invalid', rejection.headers);
      }
      this.#read += admitted.accepted.length;
      for (const [topic, n] of inByTopic) metrics.recordsIn.inc({ pipeline, topic }, n);
      if (admitted.accepted.length > 0) processor.process(admitted.accepted, this.#context(now), prepared);
      for (const { position } of admitted.runs) {
        if (position.silentUntil === null || position.next < position.silentUntil) continue;
        position.silentUntil = null;
        if (!processor.onReplayed) continue;
        // Silent: what the processor decides as the replay ends was decided and sent before.
        const silent = this.#silent;
        this.#silent = position.silentOutputs ? 'all' : 'side';
        processor.onReplayed({ topic: position.topic, partition: position.partition }, this.#context(now));
        this.#silent = silent;
      }
    } finally {
      this.#silent = 'none';
    }
    this.#reportEnds(now);
    if (this.#commitRequested || this.#now() - this.#lastCommit >= this.#commitIntervalMs) await this.#commit(false);
  }

  /** Bounded runs: tells the processor which partitions reached their end (`stopped`: all of them, as they are). */
  #reportEnds(now: number, stopped = false): void {
    if (!this.#ends) return;
    const ended: TopicPartition[] = [];
    let finished = true;
    for (const p of this.#positions.values()) {
      if (!p.ended && p.end !== null && (stopped || p.next >= p.end)) {
        p.ended = true;
        ended.push({ topic: p.topic, partition: p.partition });
      }
      if (!p.ended) finished = false;
    }
    if (ended.length === 0 || !this.#o.processor.onEnd) return;
    const { now: _, ...context } = this.#context(now);
    const endContext: EndContext = { now, ...context, ended, finished };
    this.#o.processor.onEnd(endContext);
  }

  #countsOf(topic: string): BatchCounts {
    let counts = this.#counts.get(topic);
    if (!counts) this.#counts.set(topic, (counts = new BatchCounts()));
    return counts;
  }

  #context(now: number): ProcessContext {
    return {
      now,
      emit: (topic, record) => {
        if (this.#silent === 'all') return; // committed before this replay
        let list = this.#outputs.get(topic);
        if (!list) this.#outputs.set(topic, (list = []));
        list.push(record);
      },
      reject: (record, reason, error, options) => {
        // The record was counted accepted when handed over; move it to its real outcome.
        const counts = this.#countsOf(record.topic);
        const entry = counts.partitions.get(record.partition);
        if (entry) entry.accepted--;
        this.#reject(record, reason, error, options?.outcome ?? 'invalid', options?.headers);
      },
      drop: (record) => {
        const counts = this.#countsOf(record.topic);
        const entry = counts.partitions.get(record.partition);
        if (entry) entry.accepted--;
        counts.count(record.partition, record.offset, 'dropped');
      },
      commitSoon: () => {
        this.#commitRequested = true;
      },
    };
  }

  #reject(record: LogRecord, reason: string, error: string, outcome: RejectOutcome, headers?: Record<string, string>): void {
    const { pipeline, deadLetterTopic, lateTopic } = this.#o;
    const topic = outcome === 'late' && lateTopic !== undefined ? lateTopic : deadLetterTopic;
    if (!topic) throw new TickflowError('INTERNAL', `${pipeline} rejected a record but has no dead-letter topic`);
    this.#countsOf(record.topic).count(record.partition, record.offset, outcome);
    if (outcome === 'late') metrics.late.inc({ pipeline });
    else metrics.invalid.inc({ pipeline, reason });
    if (this.#silent !== 'none') return; // sent and committed before this replay; counted again, as the accounting was not
    let list = this.#deadLetters.get(topic);
    if (!list) this.#deadLetters.set(topic, (list = []));
    list.push(detached(deadLetter(pipeline, { record, reason, error, headers }, DEFAULT_DEAD_LETTER_LIMIT)));
  }

  /** The idle timer: partitions' end offsets are looked up outside the serial queue, so a slow lookup never holds up batches. */
  async #tick(idleMs: number): Promise<void> {
    if (this.#ticking) return;
    this.#ticking = true;
    try {
      const ends = await this.#quietEnds(idleMs);
      await this.#serial(() => this.#idle(idleMs, ends));
    } catch (error) {
      this.#fail(error);
    } finally {
      this.#ticking = false;
    }
  }

  /** End offsets of the topics with partitions that look quiet and can be fetched. */
  async #quietEnds(idleMs: number): Promise<Map<string, bigint>> {
    const ends = new Map<string, bigint>();
    if (!this.#assigned || this.#fencedAt !== null) return ends;
    const now = this.#now();
    const unreachable = this.#unreachable();
    const topics = new Set<string>();
    for (const p of this.#positions.values()) if (now - p.lastRecordWall >= idleMs) topics.add(p.topic);
    for (const k of unreachable) topics.delete(this.#positions.get(k)?.topic ?? '');
    for (const topic of topics) for (const p of await this.#o.log.offsets(topic)) ends.set(key(topic, p.partition), p.latest);
    return ends;
  }

  #unreachable(): Set<string> {
    return new Set((this.#consumer?.unreachable() ?? []).map((tp) => key(tp.topic, tp.partition)));
  }

  async #idle(idleMs: number, ends: Map<string, bigint>): Promise<void> {
    if (this.#fencedAt !== null) {
      if (this.#now() - this.#fencedAt > FENCED_REJOIN_MS) {
        this.#o.logger.warn({}, 'fenced and no new assignment came: rejoining the group');
        this.#fencedAt = null;
        void this.#consumer?.close();
      }
      return;
    }
    if (!this.#assigned || this.#positions.size === 0 || this.#o.signal.aborted) return;
    await this.#drainPending();
    const now = this.#now();
    // A partition the log cannot fetch is not idle: its records may be waiting behind a lost leader.
    for (const k of this.#unreachable()) {
      const position = this.#positions.get(k);
      if (position) position.lastRecordWall = now;
    }
    const quiet: QuietPartition[] = [];
    for (const p of this.#positions.values()) {
      if (now - p.lastRecordWall < idleMs) continue;
      const end = ends.get(key(p.topic, p.partition));
      if (end !== undefined) metrics.consumerLag.set({ pipeline: this.#o.pipeline, topic: p.topic, partition: String(p.partition) }, Number(end > p.next ? end - p.next : 0n));
      quiet.push({ topic: p.topic, partition: p.partition, caughtUp: end !== undefined && p.next >= end });
    }
    if (this.#o.processor.onIdle) {
      // allQuiet needs every partition at its end too: a partition whose records wait behind
      // a stall of our own (a produce retried, a slow commit) has no new records, yet it is not idle.
      const allQuiet = quiet.length === this.#positions.size && quiet.every((q) => q.caughtUp);
      const context: IdleContext = { ...this.#context(now), quiet, allQuiet };
      this.#o.processor.onIdle(context);
    }
    // Outputs and side records go out at the commit interval even when no records flow;
    // offsets alone wait for the idle interval.
    const since = now - this.#lastCommit;
    const sending = since >= this.#commitIntervalMs && (this.#outputs.size > 0 || this.#deadLetters.size > 0);
    if (this.#commitRequested || sending || (since >= Math.max(this.#commitIntervalMs, idleMs) && this.#hasWork())) await this.#commit(false);
  }

  #hasWork(): boolean {
    if (this.#commitRequested || this.#deadLetters.size > 0 || this.#outputs.size > 0) return true;
    for (const p of this.#positions.values()) if (p.dirty) return true;
    return false;
  }

  /**
   * Takes a commit unit now and chains its commit after the one in flight. With `wait`,
   * returns once everything taken so far is committed; otherwise once the previous
   * commit is done (so at most one commit runs while the next slice is computed).
   */
  async #commit(wait: boolean): Promise<void> {
    if (this.#fencedAt !== null || !this.#assigned) {
      if (wait && this.#committing) await this.#settle(this.#committing);
      return;
    }
    const previous = this.#committing;
    if (this.#hasWork()) {
      const unit = this.#take();
      // The checkpoint to its database (checkpointDb) after the previous commit, before this
      // unit's outputs can be seen: before they are sent, or in a transaction before it commits.
      const store = this.#o.checkpointDb && unit.checkpoint !== null ? () => this.#store(unit) : null;
      const stored = store === null ? null : previous ? previous.then(store) : store();
      stored?.catch(() => undefined); // awaited below
      // In a transaction, a unit's sends belong after the previous unit's commit.
      const sent = stored !== null && !this.#transactional ? stored.then(() => this.#send(unit))
        : this.#transactional && previous ? previous.then(() => this.#send(unit)) : this.#send(unit);
      sent.catch(() => undefined); // awaited below, unless the previous commit failed first
      const committed = (async () => {
        if (previous) await previous;
        const storedRows = stored === null ? 0 : await stored;
        await sent;
        await this.#write(unit, storedRows);
      })();
      // A failure is handled as soon as it happens, not only when the next batch comes.
      committed.catch(() => void this.#serial(() => this.#settle(committed)).catch((error) => this.#fail(error)));
      this.#committing = committed;
      this.#lastCommit = this.#now();
      this.#commitRequested = false;
      if (previous) await this.#settle(previous);
      // Fenced meanwhile: `committed` fails with the same error and writes nothing.
      if (wait && this.#committing === committed) await this.#settle(committed);
    } else if (wait && previous) {
      await this.#settle(previous);
    }
  }

  /**
   * Awaits a commit. When it failed, every commit chained after it failed with it (each
   * waits for its predecessor before writing). Fenced: drop everything uncommitted and
   * wait for the new assignment; anything else is the caller's to handle.
   */
  async #settle(commit: Promise<void>): Promise<void> {
    try {
      await commit;
      if (this.#committing === commit) this.#committing = null;
    } catch (error) {
      if (this.#settled.has(commit)) return;
      this.#settled.add(commit);
      this.#committing = null;
      // A newer producer took our transactional id: this member stops (no rejoin would help).
      if (!isTickflowError(error, 'FENCED') || (isProducerFenced(error) && !this.#o.rejoinWhenProducerFenced)) throw error;
      this.#report.fenced++;
      this.#o.logger.warn({ err: error.message }, 'fenced by a newer owner: dropping uncommitted work until the next assignment');
      this.#revoke();
      this.#fencedAt = this.#now();
    }
  }

  #take(): CommitUnit<Checkpoint> {
    const processed: CommitOffsets = new Map();
    // Every assigned partition, changed or not: the fencing check then covers the whole
    // commit (a checkpoint can change state without new records, e.g. windows closed on idle).
    for (const p of this.#positions.values()) {
      let topic = processed.get(p.topic);
      if (!topic) processed.set(p.topic, (topic = { generation: p.generation, next: new Map() }));
      topic.next.set(p.partition, p.next);
      // A replay under way: what was processed before it still ends there.
      if (p.silentUntil !== null && p.silentUntil > p.next) (topic.read ??= new Map()).set(p.partition, p.silentUntil);
      p.dirty = false;
    }
    const counts = new Map<string, ReadonlyMap<number, PartitionCounts>>();
    for (const [topic, c] of this.#counts) counts.set(topic, c.take());
    const unit: CommitUnit<Checkpoint> = {
      outputs: this.#outputs,
      deadLetters: this.#deadLetters,
      offsets: this.#committer.offsets(processed),
      member: this.#range ? null : this.#member,
      counts,
      checkpoint: this.#o.processor.checkpoint(),
      read: this.#read,
      id: randomUUID(),
    };
    this.#outputs = new Map();
    this.#deadLetters = new Map();
    this.#read = 0;
    return unit;
  }

  async #send(unit: CommitUnit<Checkpoint>): Promise<void> {
    if (this.#o.outputsReady && (unit.outputs.size > 0 || unit.deadLetters.size > 0)) await this.#o.outputsReady;
    const sends: Promise<void>[] = [];
    for (const [topic, records] of unit.outputs) sends.push(this.#producer.send(topic, records));
    for (const [topic, records] of unit.deadLetters) sends.push(this.#producer.send(topic, records));
    await Promise.all(sends);
  }

  /** Writes the unit's checkpoint to `checkpointDb` in a transaction of its own, retried while PostgreSQL is away; returns the rows written. */
  async #store(unit: CommitUnit<Checkpoint>): Promise<number> {
    const { pipeline, processor, signal } = this.#o;
    const db = this.#o.checkpointDb!;
    return withRetries('postgres', `write ${pipeline} state before its commit`, () => db.transaction((tx) => processor.write(tx, unit.checkpoint!)), { signal, isRetriable: isRetriableDbError });
  }

  async #write(unit: CommitUnit<Checkpoint>, storedRows = 0): Promise<void> {
    const { pipeline } = this.#o;
    const rows = storedRows + (await this.#committer.commit(unit, this.#range ? null : this.#consumer));
    const report = this.#report;
    report.commits++;
    report.read += unit.read;
    report.rows += rows;
    if (rows > 0) metrics.recordsOut.inc({ pipeline, sink: this.#o.sink ?? 'postgres' }, rows);
    for (const [topic, records] of unit.outputs) {
      report.published += records.length;
      metrics.recordsOut.inc({ pipeline, sink: topic }, records.length);
    }
    for (const [topic, records] of unit.deadLetters) {
      report.deadLettered += records.length;
      metrics.deadLettered.inc({ pipeline, topic }, records.length);
    }
    this.#o.logger.debug({ rows, read: unit.read, offsets: [...unit.offsets.keys()] }, 'committed');
    const committed = [...unit.offsets].flatMap(([topic, { next }]) => [...next].map(([partition, offset]) => ({ topic, partition, offset })));
    this.#o.onCommitted?.({ offsets: committed, rows });
  }
}

/**
 * A dead letter's bytes copied out of the fetched buffers: a view would keep a whole fetch
 * response alive until the letter is sent (dead letters wait for the next commit).
 */
function detached(letter: RecordToProduce): RecordToProduce {
  const copy = <T>(value: T): T => (Buffer.isBuffer(value) ? (Buffer.from(value) as T) : value);
  const headers = letter.headers && Object.fromEntries(Object.entries(letter.headers).map(([name, value]) => [name, copy(value)]));
  return { ...letter, key: copy(letter.key), value: copy(letter.value), ...(headers ? { headers } : {}) };
}
