/**
 * The one place that runs a pipeline whose results live in PostgreSQL: a consumer-group
 * member (or a bounded run to the end offsets seen at start) feeding a Processor, with
 * rows + state + offsets + accounting committed in ONE transaction. Exactly once: after
 * any crash, rebalance or outage a member resumes from what that transaction stored.
 *
 * Per assignment: claim the partitions in `stored_offsets` (a fresh fencing generation)
 * and restore the processor's state in the same transaction; resume at the stored
 * offsets. Per batch: guard the size of each record, process in slices, and commit:
 * outputs and dead letters are sent first and acknowledged (at least once, deterministic
 * values), then the transaction writes the checkpoint, the offsets (fenced: a newer
 * owner rolls it back) and the counts. A slice is computed and its outputs sent while
 * the previous slice's commit runs; commits stay in order.
 *
 * Faults: a lost database is retried (the transaction rolled back, so running it again is
 * safe) and a lost broker is retried by the log adapter, both under the one policy of
 * `withRetries`; an outage the adapter could not ride through makes the member rejoin
 * from the stored state. Fenced by a newer owner: drop what is uncommitted and wait for
 * the new assignment. Ctrl-C: commit what was processed, leave the group.
 */
import { TickflowError, isTickflowError } from '../core/errors.ts';
import { randomUUID } from 'node:crypto';
import { claimInTransaction, commitLanded, saveOffsets } from '../db/offset-store.ts';
import { BatchCounts, addCounts, resetCounts } from '../db/pipeline-counts.ts';
import type { PartitionCounts } from '../db/pipeline-counts.ts';
import type { Database, Queryable } from '../db/types.ts';
import type { Assignment, GroupConsumer, Log, LogRecord, Producer, RecordToProduce, TopicPartitionOffset } from '../log/types.ts';
import { metrics } from '../observability/metrics.ts';
import { OutageWatch, withRetries } from '../observability/retry.ts';
import { withDeadLetterFallback } from './dead-letter-producer.ts';
import { DEFAULT_DEAD_LETTER_LIMIT, DEFAULT_MAX_RECORD_BYTES, deadLetter, tooLarge, tooLargeRejection } from './dead-letters.ts';
import type { IdleContext, PartitionClaim, ProcessContext, Processor, QuietPartition, RejectOutcome } from './processor.ts';

export interface TaskLogger {
  debug(obj: Record<string, unknown>, msg: string): void;
  info(obj: Record<string, unknown>, msg: string): void;
  warn(obj: Record<string, unknown>, msg: string): void;
}

export interface StreamTaskOptions<Checkpoint> {
  /** Names the pipeline in metrics, logs and the `x-pipeline` dead-letter header. */
  pipeline: string;
  log: Log;
  db: Database;
  /** Consumer group, and the consumer name of its rows in `stored_offsets`. */
  group: string;
  topics: readonly string[];
  processor: Processor<Checkpoint>;
  /** Where rejected records go; required when the processor rejects or records can be too large. */
  deadLetterTopic?: string;
  logger: TaskLogger;
  signal: AbortSignal;
  /** Return once every partition reached the end offset it had at start (a bounded run). */
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
  commits: number;
  fenced: number;
}

interface Position {
  topic: string;
  partition: number;
  generation: number;
  /** Next offset to process. */
  next: bigint;
  /** Processed since the last commit was taken. */
  dirty: boolean;
  lastRecordWall: number;
}

/** What one commit writes, taken synchronously so offsets, counts and checkpoint agree. */
interface CommitUnit<Checkpoint> {
  outputs: Map<string, RecordToProduce[]>;
  deadLetters: RecordToProduce[];
  offsets: Map<string, { generation: number; next: Map<number, bigint> }>;
  counts: Map<string, ReadonlyMap<number, PartitionCounts>>;
  checkpoint: Checkpoint | null;
  read: number;
  /** Tells a retry whether an attempt whose answer was lost did commit. */
  id: string;
}

/**
 * Fenced means a newer member claimed our partitions: a rebalance is under way and our
 * new assignment usually follows within a heartbeat. If none comes, rejoin the group.
 */
const FENCED_REJOIN_MS = 3_000;
const key = (topic: string, partition: number) => `${topic}\u0000${partition}`;

export async function runStreamTask<Checkpoint>(options: StreamTaskOptions<Checkpoint>): Promise<StreamTaskReport> {
  return new StreamTask(options).run();
}

class StreamTask<Checkpoint> {
  readonly #o: StreamTaskOptions<Checkpoint>;
  readonly #now: () => number;
  readonly #producer: Producer;
  readonly #commitIntervalMs: number;
  readonly #maxRecordBytes: number;
  readonly #sliceRecords: number;
  readonly #positions = new Map<string, Position>();
  readonly #report: StreamTaskReport = { read: 0, rows: 0, published: 0, deadLettered: 0, commits: 0, fenced: 0 };
  /** Uncommitted work since the last commit unit was taken. */
  #outputs = new Map<string, RecordToProduce[]>();
  #deadLetters: RecordToProduce[] = [];
  #counts = new Map<string, BatchCounts>();
  #read = 0;
  #commitRequested = false;
  #lastCommit = 0;
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
  /** Everything touching the state runs one at a time: batches, idle ticks, assignments. */
  #queue: Promise<unknown> = Promise.resolve();

  constructor(options: StreamTaskOptions<Checkpoint>) {
    this.#o = options;
    this.#now = options.now ?? Date.now;
    const producer = options.log.producer();
    this.#producer = options.deadLetterTopic ? withDeadLetterFallback(producer, [options.deadLetterTopic]) : producer;
    this.#commitIntervalMs = options.commitIntervalMs ?? 0;
    this.#maxRecordBytes = options.maxRecordBytes ?? DEFAULT_MAX_RECORD_BYTES;
    this.#sliceRecords = options.sliceRecords ?? 50_000;
    this.#fromBeginning = options.fromBeginning ?? false;
  }

  async run(): Promise<StreamTaskReport> {
    const { signal, logger, log, topics, group } = this.#o;
    if (this.#o.untilEnd) {
      this.#ends = new Map();
      for (const topic of topics) for (const p of await log.offsets(topic)) this.#ends.set(key(topic, p.partition), p.latest);
    }
    const idleMs = this.#o.idleMs ?? 5_000;
    const timer = setInterval(() => void this.#serial(() => this.#idle(idleMs)).catch((error) => this.#fail(error)), Math.min(1000, Math.max(50, Math.floor(idleMs / 4))));
    const kafka = new OutageWatch('kafka', `consume ${topics.join(',')} as ${group}`);
    try {
      while (!signal.aborted) {
        const done = new AbortController();
        const consumer = log.subscribe({
          group,
          topics,
          sessionTimeoutMs: this.#o.sessionTimeoutMs,
          signal: AbortSignal.any([signal, done.signal]),
          onAssign: (assignment) => this.#serial(() => this.#assign(assignment, done)),
        });
        this.#consumer = consumer;
        try {
          for await (const batch of consumer) {
            await this.#serial(() => this.#ingest(batch.records, batch.generation));
            kafka.recovered();
            if (this.#caughtUp()) done.abort();
          }
          if (this.#failure) throw this.#failure;
          // Shutting down or caught up: keep what was processed.
          await this.#serial(() => this.#commit(true));
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
          this.#consumer = null;
          await consumer.close().catch(() => undefined);
        }
      }
    } finally {
      kafka.leave();
      clearInterval(timer);
      await this.#queue.catch(() => undefined);
      await this.#committing?.catch(() => undefined);
      await this.#producer.close().catch(() => undefined);
    }
    return { ...this.#report };
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
    this.#outputs = new Map();
    this.#deadLetters = [];
    this.#counts = new Map();
    this.#read = 0;
    this.#commitRequested = false;
    this.#assigned = false;
  }

  async #assign(assignment: Assignment, done: AbortController): Promise<TopicPartitionOffset[]> {
    const { db, log, group, processor, logger, topics } = this.#o;
    // Save what we have under the old claim; if someone else owns it now, that is FENCED and harmless.
    await this.#commit(true).catch((error) => {
      if (!isTickflowError(error, 'FENCED')) throw error;
    });
    this.#revoke();
    this.#fencedAt = null;
    const byTopic = new Map<string, number[]>();
    for (const { topic, partition } of assignment.partitions) if (topics.includes(topic)) byTopic.set(topic, [...(byTopic.get(topic) ?? []), partition]);
    const earliest = new Map<string, Map<number, bigint>>();
    for (const topic of byTopic.keys()) earliest.set(topic, new Map((await log.offsets(topic)).map((p) => [p.partition, p.earliest])));
    const fromBeginning = this.#fromBeginning;
    const claims = await withRetries('postgres', `claim partitions of ${[...byTopic.keys()].join(',') || 'nothing'} for ${group}`, () =>
      db.transaction(async (tx) => {
        const claimed: (PartitionClaim & { generation: number })[] = [];
        for (const [topic, partitions] of byTopic) {
          const starts = earliest.get(topic)!;
          const claim = await claimInTransaction(tx, group, topic, partitions, starts);
          if (fromBeginning) await resetCounts(tx, group, topic, partitions);
          const offsets = new Map(partitions.map((p) => [p, fromBeginning ? (starts.get(p) ?? 0n) : (claim.offsets.get(p) ?? starts.get(p) ?? 0n)]));
          claimed.push({ topic, partitions, offsets, generation: claim.generation });
        }
        await processor.assign(tx, claimed);
        return claimed;
      }), { signal: this.#o.signal, isRetriable: isRetriableDbError });
    this.#fromBeginning = false; // a rejoin resumes from what this run stored
    const now = this.#now();
    const starts: TopicPartitionOffset[] = [];
    for (const claim of claims) {
      for (const partition of claim.partitions) {
        const next = claim.offsets.get(partition)!;
        this.#positions.set(key(claim.topic, partition), { topic: claim.topic, partition, generation: claim.generation, next, dirty: fromBeginning, lastRecordWall: now });
        starts.push({ topic: claim.topic, partition, offset: next });
      }
    }
    this.#assigned = true;
    this.#lastCommit = now;
    logger.info({ group, generation: assignment.generation, partitions: starts.map((s) => `${s.topic}/${s.partition}@${s.offset}`) }, starts.length > 0 ? 'partitions claimed; resuming from stored offsets' : 'no partitions assigned');
    this.#o.onAssigned?.({ partitions: starts, generation: claims[0]?.generation ?? null });
    if (this.#caughtUp()) done.abort();
    return starts;
  }

  async #ingest(records: readonly LogRecord[], _generation: number): Promise<void> {
    if (!this.#assigned || this.#fencedAt !== null) return;
    const started = performance.now();
    for (let from = 0; from < records.length; from += this.#sliceRecords) {
      const slice = from === 0 && records.length <= this.#sliceRecords ? records : records.slice(from, from + this.#sliceRecords);
      this.#processSlice(slice);
      if (this.#commitRequested || this.#now() - this.#lastCommit >= this.#commitIntervalMs) await this.#commit(false);
    }
    metrics.batchSeconds.observe({ pipeline: this.#o.pipeline }, (performance.now() - started) / 1000);
  }

  #processSlice(records: readonly LogRecord[]): void {
    const { processor, pipeline } = this.#o;
    const now = this.#now();
    // Records of partitions not (or no longer) ours, or already processed, are skipped.
    const accepted: LogRecord[] = [];
    let last: Position | undefined;
    for (const record of records) {
      if (!last || last.partition !== record.partition || last.topic !== record.topic) last = this.#positions.get(key(record.topic, record.partition));
      if (!last || record.offset < last.next) continue;
      last.next = record.offset + 1n;
      last.dirty = true;
      last.lastRecordWall = now;
      const counts = this.#countsOf(record.topic);
      counts.observe(record.partition, record.offset);
      if (tooLarge(record, this.#maxRecordBytes)) {
        const rejection = tooLargeRejection(record, this.#maxRecordBytes);
        this.#reject(record, rejection.reason, rejection.error, 'invalid', rejection.headers);
        continue;
      }
      counts.count(record.partition, record.offset, 'accepted');
      accepted.push(record);
    }
    this.#read += accepted.length;
    if (accepted.length === 0) return;
    const byTopic = new Map<string, number>();
    for (const r of accepted) byTopic.set(r.topic, (byTopic.get(r.topic) ?? 0) + 1);
    for (const [topic, n] of byTopic) metrics.recordsIn.inc({ pipeline, topic }, n);
    processor.process(accepted, this.#context(now));
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
    const { pipeline, deadLetterTopic } = this.#o;
    if (!deadLetterTopic) throw new TickflowError('INTERNAL', `${pipeline} rejected a record but has no dead-letter topic`);
    this.#countsOf(record.topic).count(record.partition, record.offset, outcome);
    if (outcome === 'late') metrics.late.inc({ pipeline });
    else metrics.invalid.inc({ pipeline, reason });
    this.#deadLetters.push(deadLetter(pipeline, { record, reason, error, headers }, DEFAULT_DEAD_LETTER_LIMIT));
  }

  async #idle(idleMs: number): Promise<void> {
    if (this.#fencedAt !== null) {
      if (this.#now() - this.#fencedAt > FENCED_REJOIN_MS) {
        this.#o.logger.warn({}, 'fenced and no new assignment came: rejoining the group');
        this.#fencedAt = null;
        void this.#consumer?.close();
      }
      return;
    }
    if (!this.#assigned || this.#positions.size === 0) return;
    const now = this.#now();
    const quietPositions = [...this.#positions.values()].filter((p) => now - p.lastRecordWall >= idleMs);
    const quiet: QuietPartition[] = [];
    if (quietPositions.length > 0) {
      const ends = new Map<string, bigint>();
      for (const topic of new Set(quietPositions.map((p) => p.topic))) {
        for (const p of await this.#o.log.offsets(topic)) ends.set(key(topic, p.partition), p.latest);
      }
      for (const p of quietPositions) {
        const end = ends.get(key(p.topic, p.partition)) ?? 0n;
        metrics.consumerLag.set({ pipeline: this.#o.pipeline, topic: p.topic, partition: String(p.partition) }, Number(end > p.next ? end - p.next : 0n));
        quiet.push({ topic: p.topic, partition: p.partition, caughtUp: p.next >= end });
      }
    }
    if (this.#o.processor.onIdle) {
      const context: IdleContext = { ...this.#context(now), quiet };
      this.#o.processor.onIdle(context);
    }
    const due = now - this.#lastCommit >= Math.max(this.#commitIntervalMs, idleMs);
    if (this.#commitRequested || (due && this.#hasWork())) await this.#commit(false);
  }

  #hasWork(): boolean {
    if (this.#commitRequested || this.#deadLetters.length > 0 || this.#outputs.size > 0) return true;
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
      const sent = this.#send(unit);
      sent.catch(() => undefined); // awaited below, unless the previous commit failed first
      const committed = (async () => {
        if (previous) await previous;
        await sent;
        await this.#write(unit);
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
      if (!isTickflowError(error, 'FENCED')) throw error;
      this.#report.fenced++;
      this.#o.logger.warn({ err: error.message }, 'fenced by a newer owner: dropping uncommitted work until the next assignment');
      this.#revoke();
      this.#fencedAt = this.#now();
    }
  }

  #take(): CommitUnit<Checkpoint> {
    const offsets = new Map<string, { generation: number; next: Map<number, bigint> }>();
    // Every assigned partition, changed or not: the fencing check then covers the whole
    // commit (a checkpoint can change state without new records, e.g. windows closed on idle).
    for (const p of this.#positions.values()) {
      let topic = offsets.get(p.topic);
      if (!topic) offsets.set(p.topic, (topic = { generation: p.generation, next: new Map() }));
      topic.next.set(p.partition, p.next);
      p.dirty = false;
    }
    const counts = new Map<string, ReadonlyMap<number, PartitionCounts>>();
    for (const [topic, c] of this.#counts) counts.set(topic, c.take());
    const unit: CommitUnit<Checkpoint> = {
      outputs: this.#outputs,
      deadLetters: this.#deadLetters,
      offsets,
      counts,
      checkpoint: this.#o.processor.checkpoint(),
      read: this.#read,
      id: randomUUID(),
    };
    this.#outputs = new Map();
    this.#deadLetters = [];
    this.#read = 0;
    return unit;
  }

  async #send(unit: CommitUnit<Checkpoint>): Promise<void> {
    const sends: Promise<void>[] = [];
    for (const [topic, records] of unit.outputs) sends.push(this.#producer.send(topic, records));
    if (unit.deadLetters.length > 0) sends.push(this.#producer.send(this.#o.deadLetterTopic!, unit.deadLetters));
    await Promise.all(sends);
  }

  async #write(unit: CommitUnit<Checkpoint>): Promise<void> {
    const { db, group, processor, pipeline, signal } = this.#o;
    const what = [...unit.offsets.keys()].join(',') || 'state';
    let attempts = 0;
    const rows = await withRetries('postgres', `commit ${pipeline} offsets of ${what}`, () =>
      db.transaction(async (tx: Queryable) => {
        // A retry after a lost answer: the first attempt may have committed.
        if (attempts++ > 0 && (await commitLanded(tx, group, unit.id))) return 0;
        // Offsets first: a fenced commit fails before writing anything else.
        for (const [topic, { generation, next }] of unit.offsets) await saveOffsets(tx, group, topic, next, generation, unit.id);
        for (const [topic, counts] of unit.counts) await addCounts(tx, group, topic, counts);
        return unit.checkpoint === null ? 0 : processor.write(tx, unit.checkpoint);
      }), { signal, isRetriable: isRetriableDbError });
    const report = this.#report;
    report.commits++;
    report.read += unit.read;
    report.rows += rows;
    if (rows > 0) metrics.recordsOut.inc({ pipeline, sink: this.#o.sink ?? 'postgres' }, rows);
    for (const [topic, records] of unit.outputs) {
      report.published += records.length;
      metrics.recordsOut.inc({ pipeline, sink: topic }, records.length);
    }
    if (unit.deadLetters.length > 0) {
      report.deadLettered += unit.deadLetters.length;
      metrics.deadLettered.inc({ pipeline, topic: this.#o.deadLetterTopic! }, unit.deadLetters.length);
    }
    this.#o.logger.debug({ rows, read: unit.read, offsets: [...unit.offsets.keys()] }, 'committed');
    const committed = [...unit.offsets].flatMap(([topic, { next }]) => [...next].map(([partition, offset]) => ({ topic, partition, offset })));
    this.#o.onCommitted?.({ offsets: committed, rows });
  }
}

/** A rolled-back transaction is safe to run again when the database went away or lost a race. */
function isRetriableDbError(error: unknown): boolean {
  if (!isTickflowError(error)) return false;
  if (error.retriable) return true;
  return error.code === 'DB_ERROR' && ['40001', '40P01'].includes(String(error.details.code));
}
