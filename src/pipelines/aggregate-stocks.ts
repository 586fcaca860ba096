/**
 * aggregate stocks: the `stocks` topic → per-partition 30-second windows per ticker →
 * Postgres, exactly once. Read as: join the group; on every assignment claim the
 * partitions in Postgres and resume from their stored offsets and open windows; decode
 * each record (malformed → dead letters), add it to its partition's windows (late →
 * dead letters); commit closed windows, open windows, stream times and offsets in one
 * transaction. A wall-clock timer closes the windows of a quiet stream.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { isTickflowError } from '../core/errors.ts';
import type { TickflowError } from '../core/errors.ts';
import { decodeStockTick } from '../core/stock-ticks.ts';
import { PartitionWindows, mergeTickerWindows } from '../core/stock-windows.ts';
import type { TickerWindow } from '../core/stock-windows.ts';
import { claimStockPartitions, commitStockWindows } from '../db/stock-window-store.ts';
import { BatchCounts } from '../db/pipeline-counts.ts';
import type { Database } from '../db/types.ts';
import type { Assignment, GroupConsumer, Log, LogRecord, Producer, RecordBatch, RecordToProduce, TopicPartitionOffset } from '../log/types.ts';
import { metrics } from '../observability/metrics.ts';

export interface AggregateStocksOptions {
  topic: string;
  /** Consumer group, and the consumer name of the offsets and state kept in Postgres. */
  group: string;
  deadLetterTopic: string;
  /** Partitions when the topic is created here. */
  partitions: number;
  windowMs: number;
  allowedLatenessMs: number;
  idleFlushMs: number;
  /** Open-window state and offsets are committed at least this often while records flow. */
  commitIntervalMs: number;
  sessionTimeoutMs?: number;
  signal: AbortSignal;
  logger: PipelineLogger;
  /** Wall clock, epoch ms; injectable for tests. */
  now?: () => number;
  /** Observers, for tests and dashboards. */
  onAssigned?: (info: { partitions: number[]; generation: number | null }) => void;
  onCommitted?: (info: { partitions: number[]; windows: number; generation: number }) => void;
}

export interface PipelineLogger {
  debug(obj: Record<string, unknown>, msg: string): void;
  info(obj: Record<string, unknown>, msg: string): void;
  warn(obj: Record<string, unknown>, msg: string): void;
}

export interface AggregateStocksSummary {
  records: number;
  windowsEmitted: number;
  late: number;
  malformed: number;
  commits: number;
  fenced: number;
}

const PIPELINE = 'aggregate-stocks';

interface PartitionState {
  /** Next offset to read; what gets stored at the next commit. */
  next: bigint;
  windows: PartitionWindows;
  /** Changed since the last commit. */
  dirty: boolean;
  lastRecordWall: number;
}

/** Gives up waiting for a rebalance after being fenced, and rejoins the group. */
const FENCED_REJOIN_MS = 30_000;

export async function aggregateStocks(log: Log, db: Database, options: AggregateStocksOptions): Promise<AggregateStocksSummary> {
  await log.createTopics([
    { name: options.topic, partitions: options.partitions },
    { name: options.deadLetterTopic, partitions: 1 },
  ]);
  const aggregator = new StockAggregator(log, db, options);
  return aggregator.run();
}

class StockAggregator {
  readonly #log: Log;
  readonly #db: Database;
  readonly #options: AggregateStocksOptions;
  readonly #now: () => number;
  readonly #producer: Producer;
  readonly #parts = new Map<number, PartitionState>();
  #generation: number | null = null;
  #closed: TickerWindow[] = [];
  #deadLetters: RecordToProduce[] = [];
  /** Outcomes of the records since the last commit, committed with their offsets. */
  readonly #counts = new BatchCounts();
  #lastCommit = 0;
  #fencedAt: number | null = null;
  #consumer: GroupConsumer | null = null;
  #failure: unknown = null;
  /** Everything that touches the state runs one at a time: batches, the idle timer, assignments. */
  #queue: Promise<unknown> = Promise.resolve();
  readonly #summary: AggregateStocksSummary = { records: 0, windowsEmitted: 0, late: 0, malformed: 0, commits: 0, fenced: 0 };

  constructor(log: Log, db: Database, options: AggregateStocksOptions) {
    this.#log = log;
    this.#db = db;
    this.#options = options;
    this.#now = options.now ?? Date.now;
    this.#producer = log.producer();
  }

  async run(): Promise<AggregateStocksSummary> {
    const { signal, logger } = this.#options;
    const tickMs = Math.min(1000, Math.max(50, Math.floor(this.#options.idleFlushMs / 4)));
    const timer = setInterval(() => void this.#serial(() => this.#idleTick()).catch((error) => this.#fail(error)), tickMs);
    let backoffMs = 500;
    try {
      while (!signal.aborted) {
        const consumer = this.#log.subscribe({
          group: this.#options.group,
          topics: [this.#options.topic],
          onAssign: (assignment) => this.#serial(() => this.#assign(assignment)),
          sessionTimeoutMs: this.#options.sessionTimeoutMs,
          signal,
        });
        this.#consumer = consumer;
        try {
          for await (const batch of consumer) {
            await this.#serial(() => this.#ingest(batch));
            backoffMs = 500;
          }
          if (this.#failure) throw this.#failure;
          // Shutting down (or rejoining): keep what was done since the last commit.
          await this.#serial(() => this.#commit());
        } catch (error) {
          if (!isTickflowError(error) || !error.retriable || signal.aborted) throw error;
          logger.warn({ err: error.message, retryInMs: backoffMs }, 'aggregator lost the log or the database; rejoining');
          await this.#serial(async () => this.#reset());
          await sleep(backoffMs, undefined, { signal }).catch(() => undefined);
          backoffMs = Math.min(backoffMs * 2, 10_000);
        } finally {
          this.#consumer = null;
          await consumer.close().catch(() => undefined);
        }
      }
    } finally {
      clearInterval(timer);
      await this.#queue.catch(() => undefined);
      await this.#producer.close().catch(() => undefined);
    }
    return { ...this.#summary };
  }

  #serial<T>(task: () => Promise<T>): Promise<T> {
    const run = this.#queue.then(task);
    this.#queue = run.catch(() => undefined);
    return run;
  }

  #fail(error: unknown): void {
    if (isTickflowError(error) && error.retriable) {
      this.#options.logger.warn({ err: error.message }, 'idle flush failed; will retry');
      return;
    }
    // Not retriable: stop the consumer so run() rethrows it.
    this.#failure ??= error;
    void this.#consumer?.close();
  }

  /** Forgets everything not committed: the next assignment reloads it from Postgres. */
  #reset(): void {
    this.#counts.clear();
    this.#parts.clear();
    this.#closed = [];
    this.#deadLetters = [];
    this.#generation = null;
  }

  async #assign(assignment: Assignment): Promise<TopicPartitionOffset[]> {
    const { topic, group, logger } = this.#options;
    // Save what we have under the old claim; if someone else owns it now, that is FENCED and harmless.
    await this.#commit();
    this.#reset();
    this.#fencedAt = null;
    const mine = assignment.partitions.filter((tp) => tp.topic === topic).map((tp) => tp.partition);
    if (mine.length === 0) {
      this.#options.onAssigned?.({ partitions: [], generation: null });
      logger.info({ topic, partitions: [] }, 'no partitions assigned');
      return [];
    }
    const ends = await this.#log.offsets(topic);
    const starts = new Map(mine.map((p) => [p, ends[p]?.earliest ?? 0n]));
    const claim = await withRetries(() => claimStockPartitions(this.#db, group, topic, starts), this.#options);
    const now = this.#now();
    for (const partition of mine) {
      this.#parts.set(partition, {
        next: claim.offsets.get(partition)!,
        windows: this.#windowsFor(now, claim.snapshots.get(partition)),
        dirty: false,
        lastRecordWall: now,
      });
    }
    this.#generation = claim.generation;
    this.#lastCommit = now;
    logger.info({ topic, partitions: mine, generation: claim.generation, offsets: Object.fromEntries([...claim.offsets].map(([p, o]) => [p, String(o)])) }, 'partitions claimed; resuming from stored offsets');
    this.#options.onAssigned?.({ partitions: mine, generation: claim.generation });
    return mine.map((partition) => ({ topic, partition, offset: claim.offsets.get(partition)! }));
  }

  #windowsFor(wallNow: number, restore: ConstructorParameters<typeof PartitionWindows>[0]['restore']): PartitionWindows {
    const { windowMs, allowedLatenessMs, idleFlushMs } = this.#options;
    return new PartitionWindows({ windowMs, allowedLatenessMs, idleFlushMs, wallNow, restore });
  }

  async #ingest(batch: RecordBatch): Promise<void> {
    if (this.#generation === null || this.#fencedAt !== null) return;
    const started = performance.now();
    const now = this.#now();
    let accepted = 0;
    for (const record of batch.records) {
      const part = record.topic === this.#options.topic ? this.#parts.get(record.partition) : undefined;
      if (!part || record.offset < part.next) continue;
      this.#counts.count(record.partition, record.offset, this.#accept(record, part, now));
      accepted++;
      part.next = record.offset + 1n;
      part.dirty = true;
      part.lastRecordWall = now;
    }
    metrics.recordsIn.inc({ pipeline: PIPELINE, topic: this.#options.topic }, accepted);
    this.#summary.records += accepted;
    for (const part of this.#parts.values()) this.#closed.push(...part.windows.close());
    if (this.#closed.length > 0 || now - this.#lastCommit >= this.#options.commitIntervalMs) await this.#commit();
    metrics.batchSeconds.observe({ pipeline: PIPELINE }, (performance.now() - started) / 1000);
    this.#observeWatermark(now);
  }

  #accept(record: LogRecord, part: PartitionState, now: number): 'accepted' | 'invalid' | 'late' {
    const decoded = decodeStockTick(record.value?.toString('utf8') ?? null);
    if (!decoded.ok) {
      this.#summary.malformed++;
      metrics.invalid.inc({ pipeline: PIPELINE, reason: decoded.reason });
      this.#deadLetter(record, decoded.reason, { detail: decoded.detail });
      return 'invalid';
    }
    const added = part.windows.add(decoded.tick, now);
    if (!added.accepted) {
      this.#summary.late++;
      metrics.late.inc({ pipeline: PIPELINE });
      this.#deadLetter(record, 'late', { 'lateness-ms': String(added.latenessMs), 'event-time': new Date(decoded.tick.eventTime).toISOString() });
      return 'late';
    }
    return 'accepted';
  }

  #deadLetter(record: LogRecord, reason: string, extra: Record<string, string>): void {
    this.#deadLetters.push({
      key: record.key,
      value: record.value,
      headers: {
        reason,
        ...extra,
        'source-topic': record.topic,
        'source-partition': String(record.partition),
        'source-offset': String(record.offset),
        consumer: this.#options.group,
      },
    });
  }

  async #idleTick(): Promise<void> {
    if (this.#fencedAt !== null) {
      if (this.#now() - this.#fencedAt > FENCED_REJOIN_MS) {
        this.#options.logger.warn({}, 'fenced and no new assignment came: rejoining the group');
        this.#fencedAt = null;
        void this.#consumer?.close();
      }
      return;
    }
    if (this.#generation === null || this.#parts.size === 0) return;
    const now = this.#now();
    const quiet = [...this.#parts.values()].some((part) => now - part.lastRecordWall >= this.#options.idleFlushMs);
    if (quiet) {
      const ends = await this.#log.offsets(this.#options.topic);
      for (const [partition, part] of this.#parts) {
        const end = ends[partition]?.latest ?? 0n;
        metrics.consumerLag.set({ pipeline: PIPELINE, topic: this.#options.topic, partition: String(partition) }, Number(end > part.next ? end - part.next : 0n));
        if (!part.windows.advanceIdle(now, part.next >= end)) continue;
        part.dirty = true;
        this.#closed.push(...part.windows.close());
      }
    }
    const due = [...this.#parts.values()].some((part) => part.dirty) && now - this.#lastCommit >= this.#options.commitIntervalMs;
    if (this.#closed.length > 0 || due) await this.#commit();
    this.#observeWatermark(now);
  }

  /**
   * Dead letters first (at least once: a crash after this and before the transaction
   * sends them again), then one transaction with the closed windows, the open windows,
   * stream times and offsets of every partition that changed.
   */
  async #commit(): Promise<void> {
    const generation = this.#generation;
    if (generation === null || this.#fencedAt !== null) return;
    const dirty = [...this.#parts].filter(([, part]) => part.dirty);
    if (dirty.length === 0) return;
    if (this.#deadLetters.length > 0) {
      const letters = this.#deadLetters;
      await this.#producer.send(this.#options.deadLetterTopic, letters);
      this.#deadLetters = [];
      metrics.deadLettered.inc({ pipeline: PIPELINE, topic: this.#options.deadLetterTopic }, letters.length);
    }
    const closed = mergeTickerWindows(this.#closed);
    const commit = {
      consumer: this.#options.group,
      topic: this.#options.topic,
      generation,
      offsets: new Map(dirty.map(([partition, part]) => [partition, part.next])),
      snapshots: new Map(dirty.map(([partition, part]) => [partition, part.windows.snapshot()])),
      closed,
      // Taken together with the offsets above, synchronously: they describe the same records.
      counts: this.#counts.take(),
    };
    try {
      await withRetries(() => commitStockWindows(this.#db, commit), this.#options);
    } catch (error) {
      if (!isTickflowError(error, 'FENCED')) throw error;
      this.#fenced(error);
      return;
    }
    const now = this.#now();
    for (const [, part] of dirty) part.dirty = false;
    this.#closed = [];
    this.#lastCommit = now;
    this.#summary.commits++;
    this.#summary.windowsEmitted += closed.length;
    if (closed.length > 0) {
      metrics.recordsOut.inc({ pipeline: PIPELINE, sink: 'stock_windows' }, closed.length);
      for (const window of closed) metrics.windowEmitSeconds.observe({ pipeline: PIPELINE }, Math.max(0, now - window.end) / 1000);
    }
    this.#options.onCommitted?.({ partitions: dirty.map(([p]) => p), windows: closed.length, generation });
  }

  #fenced(error: TickflowError): void {
    this.#summary.fenced++;
    this.#options.logger.warn({ err: error.message }, 'fenced by a newer owner: dropping uncommitted work until the next assignment');
    this.#reset();
    this.#fencedAt = this.#now();
  }

  #observeWatermark(now: number): void {
    let lowest = Number.POSITIVE_INFINITY;
    for (const part of this.#parts.values()) if (part.windows.watermark !== null) lowest = Math.min(lowest, part.windows.watermark);
    if (Number.isFinite(lowest)) metrics.watermarkLagSeconds.set({ pipeline: PIPELINE }, (now - lowest) / 1000);
  }
}

/**
 * Runs a transaction again while the database is unavailable or the transaction lost a
 * deadlock or serialisation race (it rolled back, so running it again is safe); gives up
 * on shutdown.
 */
async function withRetries<T>(transaction: () => Promise<T>, options: { signal: AbortSignal; logger: PipelineLogger }): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await transaction();
    } catch (error) {
      const again = isTickflowError(error) && (error.retriable || (error.code === 'DB_ERROR' && ['40P01', '40001'].includes(String(error.details.code))));
      if (!again || options.signal.aborted) throw error;
      const waitMs = Math.min(100 * 2 ** attempt, 10_000);
      options.logger.warn({ err: (error as Error).message, attempt, retryInMs: waitMs }, 'database transaction failed; retrying');
      await sleep(waitMs);
    }
  }
}
