/**
 * aggregate stocks: the `stocks` topic → per-partition 30-second windows per ticker →
 * Postgres, exactly once, on the runtime (src/runtime). Read as: on every assignment
 * restore each partition's open windows and stream time; decode each record (malformed →
 * dead letters), add it to its partition's windows (late → dead letters); commit closed
 * windows, open windows, stream times and offsets in one transaction, as soon as windows
 * close and at least every commit interval. A wall-clock tick closes the windows of a
 * quiet stream.
 */
import { decodeStockTick } from '../core/stock-ticks.ts';
import { PartitionWindows, mergeTickerWindows } from '../core/stock-windows.ts';
import type { PartitionSnapshot, TickerWindow } from '../core/stock-windows.ts';
import { loadStockSnapshots, writeStockWindows } from '../db/stock-window-store.ts';
import type { Database, Queryable } from '../db/types.ts';
import type { Log, LogRecord } from '../log/types.ts';
import { metrics } from '../observability/metrics.ts';
import type { IdleContext, PartitionClaim, ProcessContext, Processor } from '../runtime/processor.ts';
import { runStreamTask } from '../runtime/stream-task.ts';
import type { TaskLogger } from '../runtime/stream-task.ts';

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
  maxRecordBytes?: number;
  sessionTimeoutMs?: number;
  signal: AbortSignal;
  logger: PipelineLogger;
  /** Wall clock, epoch ms; injectable for tests. */
  now?: () => number;
  /** Observers, for tests and dashboards. */
  onAssigned?: (info: { partitions: number[]; generation: number | null }) => void;
  onCommitted?: (info: { partitions: number[]; windows: number }) => void;
}

export type PipelineLogger = TaskLogger;

export interface AggregateStocksSummary {
  records: number;
  windowsEmitted: number;
  late: number;
  malformed: number;
  commits: number;
  fenced: number;
}

const PIPELINE = 'aggregate-stocks';

interface StockCheckpoint {
  closed: TickerWindow[];
  snapshots: Map<number, PartitionSnapshot>;
}

export async function aggregateStocks(log: Log, db: Database, options: AggregateStocksOptions): Promise<AggregateStocksSummary> {
  await log.createTopics([
    { name: options.topic, partitions: options.partitions },
    { name: options.deadLetterTopic, partitions: 1 },
  ]);
  const processor = new StockWindowsProcessor(options);
  const report = await runStreamTask({
    pipeline: PIPELINE,
    log,
    db,
    group: options.group,
    topics: [options.topic],
    processor,
    sink: 'stock_windows',
    deadLetterTopic: options.deadLetterTopic,
    logger: options.logger,
    signal: options.signal,
    commitIntervalMs: options.commitIntervalMs,
    idleMs: options.idleFlushMs,
    maxRecordBytes: options.maxRecordBytes,
    sessionTimeoutMs: options.sessionTimeoutMs,
    now: options.now,
    onAssigned: ({ partitions, generation }) => options.onAssigned?.({ partitions: partitions.map((p) => p.partition), generation }),
    onCommitted: ({ offsets, rows }) => options.onCommitted?.({ partitions: offsets.map((o) => o.partition), windows: rows }),
  });
  return { ...processor.counts, records: report.read, windowsEmitted: report.rows, commits: report.commits, fenced: report.fenced };
}

class StockWindowsProcessor implements Processor<StockCheckpoint> {
  readonly #options: AggregateStocksOptions;
  readonly #now: () => number;
  readonly counts = { late: 0, malformed: 0 };
  #parts = new Map<number, PartitionWindows>();
  /** Partitions whose state changed since the last checkpoint. */
  #dirty = new Set<number>();
  #closed: TickerWindow[] = [];

  constructor(options: AggregateStocksOptions) {
    this.#options = options;
    this.#now = options.now ?? Date.now;
  }

  async assign(tx: Queryable, claims: readonly PartitionClaim[]): Promise<void> {
    const { group, topic, windowMs, allowedLatenessMs, idleFlushMs } = this.#options;
    const partitions = claims.find((c) => c.topic === topic)?.partitions ?? [];
    const snapshots = await loadStockSnapshots(tx, group, topic, [...partitions]);
    const wallNow = this.#now();
    this.revoke();
    for (const partition of partitions) {
      this.#parts.set(partition, new PartitionWindows({ windowMs, allowedLatenessMs, idleFlushMs, wallNow, restore: snapshots.get(partition) }));
    }
  }

  process(records: readonly LogRecord[], context: ProcessContext): void {
    for (const record of records) {
      const windows = this.#parts.get(record.partition)!;
      this.#dirty.add(record.partition);
      const decoded = decodeStockTick(record.value?.toString('utf8') ?? null);
      if (!decoded.ok) {
        this.counts.malformed++;
        context.reject(record, decoded.reason, decoded.detail);
        continue;
      }
      const added = windows.add(decoded.tick, context.now);
      if (!added.accepted) {
        this.counts.late++;
        context.reject(record, 'late', `event time ${new Date(decoded.tick.eventTime).toISOString()} is ${added.latenessMs} ms behind the watermark`, {
          outcome: 'late',
          headers: { 'x-lateness-ms': String(added.latenessMs), 'x-event-time': new Date(decoded.tick.eventTime).toISOString() },
        });
      }
    }
    this.#closeWindows(context);
    this.#observeWatermark(context.now);
  }

  onIdle(context: IdleContext): void {
    for (const { partition, caughtUp } of context.quiet) {
      const windows = this.#parts.get(partition);
      if (!windows?.advanceIdle(context.now, caughtUp)) continue;
      this.#dirty.add(partition);
    }
    this.#closeWindows(context);
    this.#observeWatermark(context.now);
  }

  #closeWindows(context: Pick<ProcessContext, 'commitSoon'>): void {
    let closed = 0;
    for (const windows of this.#parts.values()) {
      const done = windows.close();
      closed += done.length;
      for (const window of done) this.#closed.push(window);
    }
    if (closed > 0) context.commitSoon();
  }

  checkpoint(): StockCheckpoint | null {
    if (this.#dirty.size === 0 && this.#closed.length === 0) return null;
    const snapshots = new Map([...this.#dirty].map((p) => [p, this.#parts.get(p)!.snapshot()]));
    const checkpoint = { closed: mergeTickerWindows(this.#closed), snapshots };
    this.#dirty = new Set();
    this.#closed = [];
    return checkpoint;
  }

  async write(tx: Queryable, checkpoint: StockCheckpoint): Promise<number> {
    await writeStockWindows(tx, { consumer: this.#options.group, topic: this.#options.topic, ...checkpoint });
    const now = this.#now();
    for (const window of checkpoint.closed) metrics.windowEmitSeconds.observe({ pipeline: PIPELINE }, Math.max(0, now - window.end) / 1000);
    return checkpoint.closed.length;
  }

  revoke(): void {
    this.#parts = new Map();
    this.#dirty = new Set();
    this.#closed = [];
  }

  #observeWatermark(now: number): void {
    let lowest = Number.POSITIVE_INFINITY;
    for (const windows of this.#parts.values()) if (windows.watermark !== null) lowest = Math.min(lowest, windows.watermark);
    if (Number.isFinite(lowest)) metrics.watermarkLagSeconds.set({ pipeline: PIPELINE }, (now - lowest) / 1000);
  }
}
