/**
 * aggregate stocks: the `stocks` topic → per-partition 30-second windows per ticker →
 * Postgres, exactly once, on the runtime (src/runtime). Read as: on every assignment
 * restore each partition's open windows, stream time and event-time guard (with the
 * records it holds); decode each record (malformed → dead letters), offer it to its
 * partition's windows behind the guard (late, implausible-time → dead letters); commit
 * closed windows, open windows, guards, held records, stream times and offsets in one
 * transaction, as soon as windows close and at least every commit interval. A wall-clock
 * tick closes the windows of a quiet stream.
 */
import { TickflowError } from '../core/errors.ts';
import { describeSkew } from '../core/event-time-guard.ts';
import type { HeldEvent } from '../core/event-time-guard.ts';
import { decodeStockTick } from '../core/stock-ticks.ts';
import { PartitionWindows, mergeTickerWindows } from '../core/stock-windows.ts';
import type { HeldTick, PartitionSnapshot, StockTickSink, TickerWindow } from '../core/stock-windows.ts';
import { loadEventTimeGuards, saveEventTimeGuards } from '../db/event-time-guards.ts';
import type { KeptGuard } from '../db/event-time-guards.ts';
import { loadHeldRecords, replaceHeldRecords } from '../db/held-records.ts';
import { ReasonCounts, addRejectionCounts } from '../db/rejection-counts.ts';
import type { ReasonsByPartition } from '../db/rejection-counts.ts';
import { loadStockSnapshots, writeStockWindows } from '../db/stock-window-store.ts';
import type { Database, Queryable } from '../db/types.ts';
import type { Log, LogRecord } from '../log/types.ts';
import { metrics } from '../observability/metrics.ts';
import type { IdleContext, PartitionClaim, ProcessContext, Processor } from '../runtime/processor.ts';
import { runStreamTask } from '../runtime/stream-task.ts';
import { countingRejections } from './counted-rejections.ts';
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
  /** The event-time guard's bound (`--max-time-skew`, default 10 minutes; docs/event-time.md). */
  maxTimeSkewMs?: number;
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
  /** Refused by the event-time guard (`implausible-time`). */
  implausible: number;
  commits: number;
  fenced: number;
}

const PIPELINE = 'aggregate-stocks';
const IMPLAUSIBLE_TIME = 'implausible-time';

interface StockCheckpoint {
  /** Records dead-lettered, by partition and reason. */
  reasons: ReasonsByPartition;
  closed: TickerWindow[];
  snapshots: Map<number, PartitionSnapshot<LogRecord>>;
  /** Partitions whose held records changed, with the records they hold now. */
  held: Map<number, LogRecord[]>;
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
  readonly counts = { late: 0, malformed: 0, implausible: 0 };
  #parts = new Map<number, PartitionWindows<LogRecord>>();
  /** Partitions whose state changed since the last checkpoint. */
  #dirty = new Set<number>();
  /** The held-records version of each partition as last checkpointed. */
  #savedHeld = new Map<number, number>();
  #closed: TickerWindow[] = [];
  readonly #reasons = new ReasonCounts();

  constructor(options: AggregateStocksOptions) {
    this.#options = options;
    this.#now = options.now ?? Date.now;
  }

  async assign(tx: Queryable, claims: readonly PartitionClaim[]): Promise<void> {
    const { group, topic, windowMs, allowedLatenessMs, idleFlushMs, maxTimeSkewMs } = this.#options;
    const partitions = claims.find((c) => c.topic === topic)?.partitions ?? [];
    const snapshots = await loadStockSnapshots(tx, group, topic, [...partitions]);
    const guards = await loadEventTimeGuards(tx, group, topic, partitions);
    const held = await loadHeldRecords(tx, group, topic, partitions);
    const wallNow = this.#now();
    this.revoke();
    for (const partition of partitions) {
      const snapshot = snapshots.get(partition);
      const guard = guards.get(partition);
      const restore: PartitionSnapshot<LogRecord> | undefined = snapshot && {
        ...snapshot,
        guard: guard && { recent: guard.recent, judgedAt: guard.judgedAt, held: heldTicks(guard, held.get(partition) ?? []) },
      };
      const windows = new PartitionWindows<LogRecord>({ windowMs, allowedLatenessMs, idleFlushMs, maxTimeSkewMs, wallNow, restore });
      this.#parts.set(partition, windows);
      this.#savedHeld.set(partition, windows.heldVersion);
    }
  }

  process(records: readonly LogRecord[], batch: ProcessContext): void {
    const context = countingRejections(batch, this.#reasons);
    const sink = this.#sink(context);
    for (const record of records) {
      const windows = this.#parts.get(record.partition)!;
      this.#dirty.add(record.partition);
      const decoded = decodeStockTick(record.value?.toString('utf8') ?? null);
      if (!decoded.ok) {
        this.counts.malformed++;
        context.reject(record, decoded.reason, decoded.detail);
        continue;
      }
      windows.add(decoded.tick, record, context.now, sink);
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

  #sink(context: ProcessContext): StockTickSink<LogRecord> {
    return {
      late: (record, tick, latenessMs) => {
        this.counts.late++;
        context.reject(record, 'late', `event time ${new Date(tick.eventTime).toISOString()} is ${latenessMs} ms behind the watermark`, {
          outcome: 'late',
          headers: { 'x-lateness-ms': String(latenessMs), 'x-event-time': new Date(tick.eventTime).toISOString() },
        });
      },
      implausible: (record, tick, skewMs, streamTime) => {
        this.counts.implausible++;
        const eventTime = new Date(tick.eventTime).toISOString();
        const headers: Record<string, string> = { 'x-event-time': eventTime };
        if (skewMs !== null) headers['x-time-skew-ms'] = String(skewMs);
        if (streamTime !== null) headers['x-stream-time'] = new Date(streamTime).toISOString();
        const error = streamTime === null
          ? `event time ${eventTime} never agreed with the partition's other records`
          : `event time ${eventTime} is ${describeSkew(skewMs!)} the partition's stream time ${new Date(streamTime).toISOString()}, and the stream did not confirm it`;
        context.reject(record, IMPLAUSIBLE_TIME, error, { headers });
      },
    };
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
    if (this.#dirty.size === 0 && this.#closed.length === 0 && !this.#reasons.pending) return null;
    const snapshots = new Map<number, PartitionSnapshot<LogRecord>>();
    const held = new Map<number, LogRecord[]>();
    for (const partition of this.#dirty) {
      const windows = this.#parts.get(partition)!;
      const snapshot = windows.snapshot();
      snapshots.set(partition, snapshot);
      if (windows.heldVersion !== this.#savedHeld.get(partition)) {
        held.set(partition, (snapshot.guard?.held ?? []).map((h) => h.item.ref));
        this.#savedHeld.set(partition, windows.heldVersion);
      }
    }
    const checkpoint = { reasons: this.#reasons.take(), closed: mergeTickerWindows(this.#closed), snapshots, held };
    this.#dirty = new Set();
    this.#closed = [];
    return checkpoint;
  }

  async write(tx: Queryable, checkpoint: StockCheckpoint): Promise<number> {
    const { group, topic } = this.#options;
    await writeStockWindows(tx, { consumer: group, topic, ...checkpoint });
    const guards = new Map<number, KeptGuard>();
    for (const [partition, { streamTime, guard }] of checkpoint.snapshots) {
      if (!guard) continue;
      guards.set(partition, { streamTime, recent: guard.recent, judgedAt: guard.judgedAt, held: guard.held.map((h) => ({ eventTime: h.eventTime, since: h.since, item: String(h.item.ref.offset) })) });
    }
    await saveEventTimeGuards(tx, group, topic, guards);
    await replaceHeldRecords(tx, group, topic, checkpoint.held);
    await addRejectionCounts(tx, group, topic, checkpoint.reasons);
    const now = this.#now();
    for (const window of checkpoint.closed) metrics.windowEmitSeconds.observe({ pipeline: PIPELINE }, Math.max(0, now - window.end) / 1000);
    return checkpoint.closed.length;
  }

  revoke(): void {
    this.#parts = new Map();
    this.#dirty = new Set();
    this.#savedHeld = new Map();
    this.#closed = [];
    this.#reasons.clear();
  }

  #observeWatermark(now: number): void {
    let lowest = Number.POSITIVE_INFINITY;
    for (const windows of this.#parts.values()) if (windows.watermark !== null) lowest = Math.min(lowest, windows.watermark);
    if (Number.isFinite(lowest)) metrics.watermarkLagSeconds.set({ pipeline: PIPELINE }, (now - lowest) / 1000);
  }
}

/** The held ticks of a kept guard, from their records (decoded again: they decoded before). */
function heldTicks(guard: KeptGuard, records: readonly LogRecord[]): Array<HeldEvent<HeldTick<LogRecord>>> {
  const byOffset = new Map(records.map((r) => [String(r.offset), r]));
  return guard.held.map(({ eventTime, since, item: offset }) => {
    const record = byOffset.get(offset);
    const decoded = record && decodeStockTick(record.value?.toString('utf8') ?? null);
    if (!record || !decoded?.ok) throw new TickflowError('INTERNAL', `held record at offset ${offset} of partition ${records[0]?.partition ?? '?'} is missing or no longer decodes`);
    return { eventTime, since, item: { tick: decoded.tick, ref: record } };
  });
}
