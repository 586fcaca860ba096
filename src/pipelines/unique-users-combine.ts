import type { Logger } from 'pino';
import { GRANULARITIES } from '../core/calendar-windows.ts';
import type { Granularity } from '../core/calendar-windows.ts';
import type { WindowCount } from '../core/unique-users.ts';
import { CombinedWindow } from '../core/unique-users-partials.ts';
import { sketchIn } from '../core/hyperloglog.ts';
import type { DistinctCounter, HyperLogLog } from '../core/hyperloglog.ts';
import { decodeSketch, encodeSketch } from '../core/sketch-bytes.ts';
import type { Log, LogRecord, TopicPartition } from '../log/types.ts';
import { kafkaTransaction } from '../runtime/commit-strategy.ts';
import type { PartitionClaim, ProcessContext, Processor, ResumePoint } from '../runtime/processor.ts';
import { runStreamTask } from '../runtime/stream-task.ts';
import type { MinuteSketchRow } from '../core/user-sketches.ts';
import { writeUserMinutes } from '../db/user-sketch-store.ts';
import type { Database, Queryable } from '../db/types.ts';

/** Two minute sketches of one precision merged (the first taken over); of two precisions, at the lower. */
function mergeSketches(a: HyperLogLog, b: HyperLogLog): HyperLogLog {
  if (a.precision === b.precision) {
    a.merge(b);
    return a;
  }
  const [low, high] = a.precision < b.precision ? [a, b] : [b, a];
  low.merge(high.foldTo(low.precision));
  return low;
}

/**
 * How long Kafka keeps the open transaction of a member that died (--scale-out): until it is
 * aborted, what that member wrote holds back every read_committed reader of the topic, and
 * the partition's new owner uses another transactional id. 10 s, as Kafka Streams sets for
 * exactly once; each commit (every --commit-interval) ends a transaction well within it.
 */
export const SCALE_OUT_TRANSACTION_TIMEOUT_MS = 10_000;

/**
 * unique-users scaled out (`--scale-out`, docs/users.md, "How it scales"), the second stage.
 *
 * Stage one: every member of the group counts the input partitions it owns as the single
 * instance does, but writes its window records — partials, over its partitions only — to the
 * internal topic `<group>-partials` (one partition), in the same Kafka transaction as its
 * offsets, followed by a progress record: the partitions it owns and the time through which
 * it has closed their windows (`closedThrough`), and whether all of them are quiet (the
 * idle flush: every open minute went out). A frame counts in exactly one partial: a window
 * closed before a rebalance is not counted again by the next owner (the exactly-once resume).
 * The input keyed by uid, the partitions hold disjoint users, so partials add up. A window
 * counted in a HyperLogLog sketch (--approx, or an exact set over --max-exact-memory) carries
 * the sketch in its partial, and sketches merge over any partitions: --approx needs no keys.
 *
 * Stage two (this file): the member that owns the partials partition (group `<group>-combiner`)
 * combines the partials of each window (core/unique-users-partials.ts: sketches merged when
 * every partial has one, counts summed otherwise) and emits its final record once every input partition's
 * progress has passed the window's end — every partial of it is then before it in the one
 * partition — or, minutes only, once every input partition is quiet. Exactly once on the same
 * Kafka transactions: the offset it commits is the first partial of the oldest window still
 * open, with the progress and the time through which it emitted; a restart re-reads from
 * there, skipping windows already out.
 */

/**
 * A window's partial on the partials topic: its record over the member's partitions, with its
 * users as a HyperLogLog sketch when they were counted in one — the sketch's bytes as stored
 * in PostgreSQL (core/sketch-bytes.ts), base64.
 */
export interface PartialWindow extends WindowCount {
  sketch?: string;
  /**
   * With a database, minutes: the partial's users as the minute sketch that is stored
   * (core/user-sketches.ts, precision 12), base64. The combiner merges them into the minute's
   * row; the count is not taken from it.
   */
  minuteSketch?: string;
}

/** Makes a window's record its partial: with the sketch its counter counts in, if any, and the minute sketch to store. */
export function withSketch(record: WindowCount, counter: DistinctCounter, minuteSketch: Uint8Array | null = null): void {
  const sketch = sketchIn(counter);
  if (sketch !== null) (record as PartialWindow).sketch = Buffer.from(encodeSketch(sketch)).toString('base64');
  if (minuteSketch !== null) (record as PartialWindow).minuteSketch = Buffer.from(minuteSketch).toString('base64');
}

/** The largest partial: a dense sketch of precision 18 in base64 (256 KiB), and the record around it. */
export const MAX_PARTIAL_BYTES = 4 * Math.ceil((3 + 0.75 * 2 ** 18) / 3) + 4096;

/** A record of the partials topic: a window's partial (a PartialWindow), or a member's progress. */
export interface ProgressRecord {
  progress: {
    /** The input partitions the member owns. */
    partitions: number[];
    /** Windows ending at or before this (ms) are out for those partitions (null: none yet). */
    closedThrough: number | null;
    /** All of them idle: every open minute was flushed. */
    quiet: boolean;
  };
}

export function partialsTopic(group: string): string {
  return `${group}-partials`;
}

export function combinerGroup(group: string): string {
  return `${group}-combiner`;
}

/** A minute keyed by its ISO start as always, a coarser window by granularity and start. */
export function windowKey(w: Pick<WindowCount, 'granularity' | 'window'>): string {
  return w.granularity === 'minute' ? w.window : `${w.granularity}/${w.window}`;
}

interface OpenWindow {
  granularity: Granularity;
  /** Exclusive end, ms. */
  end: number;
  window: CombinedWindow;
  /** With a database, a minute: its partials' minute sketches merged (null once one came without). */
  stored: HyperLogLog | null;
  /** Offset of its first partial: a restart re-reads from the oldest. */
  first: bigint;
}

interface PartitionProgress {
  closed: number;
  quiet: boolean;
}

/** What the combiner commits with its offset. */
interface CombinerState {
  /** Windows ending at or before this (ms) are out. */
  through: number | null;
  /** Minutes ending at or before this (ms) are out (the quiet flush). */
  minutes: number | null;
  /** Per input partition: [partition, closedThrough, quiet], as at the read position. */
  progress: Array<[number, number, boolean]>;
}

const rank = (g: Granularity) => GRANULARITIES.indexOf(g);
const finite = (x: number) => (Number.isFinite(x) ? x : null);

export class CombinerProcessor implements Processor<MinuteSketchRow[]> {
  readonly #topic: string;
  readonly #output: string;
  readonly #inputPartitions: number;
  readonly #logger: Logger;
  readonly #onWindow: ((w: WindowCount) => void) | undefined;
  #open = new Map<string, OpenWindow>();
  #progress = new Map<number, PartitionProgress>();
  #through = Number.NEGATIVE_INFINITY;
  #minutes = Number.NEGATIVE_INFINITY;
  /** Records below this were processed before the claim: their progress is already in the restored state. */
  #replayUntil: bigint | null = null;
  /** With a database: the sketch rows of the minutes emitted since the last commit was taken (null: no database). */
  #rows: MinuteSketchRow[] | null;
  emitted = 0;

  constructor(topic: string, output: string, inputPartitions: number, logger: Logger, onWindow?: (w: WindowCount) => void, sketches = false) {
    this.#topic = topic;
    this.#output = output;
    this.#inputPartitions = inputPartitions;
    this.#logger = logger;
    this.#onWindow = onWindow;
    this.#rows = sketches ? [] : null;
  }

  async assign(_tx: unknown, claims: readonly PartitionClaim[]): Promise<void> {
    this.revoke();
    for (const claim of claims) {
      for (const partition of claim.partitions) {
        const state = claim.states?.get(partition) as CombinerState | undefined;
        if (state && typeof state === 'object' && Array.isArray(state.progress)) {
          this.#through = state.through ?? Number.NEGATIVE_INFINITY;
          this.#minutes = state.minutes ?? Number.NEGATIVE_INFINITY;
          for (const [p, closed, quiet] of state.progress) this.#progress.set(p, { closed, quiet });
        }
        this.#replayUntil = claim.replayed?.get(partition) ?? null;
        this.#logger.info({ partition, through: this.#through, replayUntil: this.#replayUntil?.toString() ?? null }, 'combiner resuming');
      }
    }
  }

  process(records: readonly LogRecord[], context: ProcessContext): void {
    for (const record of records) {
      let value: Partial<PartialWindow> & Partial<ProgressRecord>;
      try {
        value = JSON.parse(record.value?.toString('utf8') ?? 'null') as typeof value;
      } catch {
        continue;
      }
      if (value === null || typeof value !== 'object') continue;
      const replaying = this.#replayUntil !== null && record.offset < this.#replayUntil;
      if (value.progress) {
        if (replaying) continue; // the restored state has it
        const { partitions, closedThrough, quiet } = value.progress;
        for (const p of partitions) {
          const known = this.#progress.get(p);
          const closed = closedThrough ?? Number.NEGATIVE_INFINITY;
          this.#progress.set(p, { closed: Math.max(known?.closed ?? Number.NEGATIVE_INFINITY, closed), quiet });
        }
        continue;
      }
      if (typeof value.start !== 'number' || typeof value.end !== 'number' || typeof value.granularity !== 'string') continue;
      const { sketch: text, minuteSketch, ...partial } = value as PartialWindow;
      const endMs = partial.end * 1000;
      if (endMs <= this.#through || (partial.granularity === 'minute' && endMs <= this.#minutes)) {
        if (!replaying) this.#logger.warn({ window: windowKey(partial) }, 'a partial of a window already out: left out');
        continue;
      }
      const key = windowKey(partial);
      const sketch = typeof text === 'string' ? this.#sketch(key, text) : null;
      const stored = this.#rows !== null && partial.granularity === 'minute' && typeof minuteSketch === 'string' ? this.#sketch(key, minuteSketch) : null;
      const open = this.#open.get(key);
      if (open === undefined) this.#open.set(key, { granularity: partial.granularity, end: endMs, window: new CombinedWindow(partial, sketch), stored, first: record.offset });
      else {
        open.window.add(partial, sketch);
        open.stored = open.stored === null || stored === null ? null : mergeSketches(open.stored, stored);
      }
    }
    if (this.#replayUntil === null) this.#close(context);
  }

  /** A partial's sketch; one that cannot be read counts as none (the window's counts are then summed). */
  #sketch(key: string, text: string): HyperLogLog | null {
    try {
      return decodeSketch(Buffer.from(text, 'base64'));
    } catch (error) {
      this.#logger.warn({ window: key, error: (error as Error).message }, 'a partial\'s sketch cannot be read: the window\'s counts are summed');
      return null;
    }
  }

  onReplayed(_partition: TopicPartition, context: Pick<ProcessContext, 'now' | 'emit' | 'reject'>): void {
    this.#replayUntil = null;
    this.#close(context);
  }

  /** Emits the windows every input partition has passed (and, all of them quiet, every open minute), by end, finest first. */
  #close(context: Pick<ProcessContext, 'emit'> & Partial<Pick<ProcessContext, 'commitSoon'>>): void {
    let min = Number.POSITIVE_INFINITY;
    let quiet = true;
    for (let p = 0; p < this.#inputPartitions; p++) {
      const progress = this.#progress.get(p);
      if (progress === undefined) {
        min = Number.NEGATIVE_INFINITY;
        quiet = false;
        break;
      }
      if (progress.closed < min) min = progress.closed;
      if (!progress.quiet) quiet = false;
    }
    if (min > this.#through) this.#through = min;
    const out: WindowCount[] = [];
    for (const [key, open] of this.#open) {
      if (open.end <= this.#through || (quiet && open.granularity === 'minute')) {
        const record = open.window.record();
        out.push(record);
        this.#open.delete(key);
        if (this.#rows !== null && open.granularity === 'minute') this.#storeMinute(key, record, open.stored);
      }
    }
    if (out.length === 0) return;
    out.sort((a, b) => a.end - b.end || rank(a.granularity) - rank(b.granularity));
    for (const w of out) {
      if (w.granularity === 'minute' && w.end * 1000 > this.#minutes) this.#minutes = w.end * 1000;
      context.emit(this.#output, { key: windowKey(w), value: JSON.stringify(w) });
      this.#onWindow?.(w);
    }
    this.emitted += out.length;
    context.commitSoon?.();
  }

  resumePoints(): ResumePoint[] {
    let first: bigint | undefined;
    for (const open of this.#open.values()) if (first === undefined || open.first < first) first = open.first;
    const state: CombinerState = {
      through: finite(this.#through),
      minutes: finite(this.#minutes),
      progress: [...this.#progress].filter(([, p]) => Number.isFinite(p.closed)).map(([p, { closed, quiet }]) => [p, closed, quiet]),
    };
    return [{ topic: this.#topic, partition: 0, ...(first === undefined ? {} : { offset: first }), state }];
  }

  /** A combined minute's row for the database: its record's counts and its partials' minute sketches merged. */
  #storeMinute(key: string, record: WindowCount, stored: HyperLogLog | null): void {
    if (stored === null) {
      this.#logger.warn({ window: key }, 'a partial of this minute came without its minute sketch (a member without --database-url?): the minute is not kept in the database');
      return;
    }
    this.#rows!.push({ start: record.start, frames: record.frames, late: record.late, exactUsers: record.approximate ? null : record.uniqueUsers, sketch: encodeSketch(stored) });
  }

  /** The sketch rows of the minutes emitted since the last commit was taken: written before the Kafka transaction that emits them. */
  checkpoint(): MinuteSketchRow[] | null {
    const rows = this.#rows;
    if (rows === null || rows.length === 0) return null;
    this.#rows = [];
    return rows;
  }

  /** Written (checkpointDb) before the commit that makes the minutes visible; written again, a minute replaces itself. */
  async write(tx: Queryable, rows: MinuteSketchRow[]): Promise<number> {
    await writeUserMinutes(tx, rows);
    return rows.length;
  }

  revoke(): void {
    if (this.#rows !== null) this.#rows = [];
    this.#open = new Map();
    this.#progress = new Map();
    this.#through = Number.NEGATIVE_INFINITY;
    this.#minutes = Number.NEGATIVE_INFINITY;
    this.#replayUntil = null;
  }
}

export interface CombinerOptions {
  log: Log;
  logger: Logger;
  signal: AbortSignal;
  group: string;
  input: string;
  output: string;
  deadLetterTopic: string;
  commitIntervalMs: number;
  idleMs: number;
  maxRecordBytes: number;
  outputsReady: Promise<void>;
  now?: () => number;
  onWindow?: (w: WindowCount) => void;
  /** Where the combined minutes' sketches go (--database-url), before the commit that emits them. */
  db?: Database;
  /** Static membership of the combiner group (--instance-id). */
  groupInstanceId?: string;
  sessionTimeoutMs?: number;
}

/** Runs the combiner stage until the signal: final window records from the partials, exactly once. */
export async function runCombiner(options: CombinerOptions): Promise<number> {
  const { log } = options;
  const inputPartitions = (await log.offsets(options.input)).length;
  const topic = partialsTopic(options.group);
  const processor = new CombinerProcessor(topic, options.output, inputPartitions, options.logger, options.onWindow, options.db !== undefined);
  // --max-record-bytes is for the input's frames: a partial carrying a sketch may be larger.
  const maxRecordBytes = Math.max(options.maxRecordBytes, MAX_PARTIAL_BYTES);
  await runStreamTask({
    pipeline: 'unique-users-combine',
    log,
    commit: kafkaTransaction({ transactionTimeoutMs: SCALE_OUT_TRANSACTION_TIMEOUT_MS }),
    group: combinerGroup(options.group),
    topics: [topic],
    processor,
    deadLetterTopic: options.deadLetterTopic,
    logger: options.logger,
    signal: options.signal,
    untilEnd: false,
    commitIntervalMs: options.commitIntervalMs,
    idleMs: options.idleMs,
    maxRecordBytes,
    outputsReady: options.outputsReady,
    rejoinWhenProducerFenced: true,
    ...(options.db ? { checkpointDb: options.db } : {}),
    ...(options.groupInstanceId ? { groupInstanceId: options.groupInstanceId } : {}),
    ...(options.sessionTimeoutMs ? { sessionTimeoutMs: options.sessionTimeoutMs } : {}),
    now: options.now,
  });
  return processor.emitted;
}
