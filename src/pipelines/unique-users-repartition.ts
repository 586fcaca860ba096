import { Buffer } from 'node:buffer';
import type { Logger } from 'pino';
import type { AsciiText } from '../core/hyperloglog.ts';
import { valueRange } from '../log/types.ts';
import type { LogRecord, ValueRange } from '../log/types.ts';
import type { IdleContext, PartitionClaim, ProcessContext, Processor, ResumePoint } from '../runtime/processor.ts';
import { decodeResumeState, encodeResumeState, sideRecordsOf } from './unique-users.ts';
import type { FrameCounter } from './unique-users.ts';

/**
 * unique-users scaled out over input NOT keyed by uid (`--scale-out --repartition`,
 * docs/users.md, "How it scales"), the first stage: as Kafka Streams repartitions a stream
 * before an aggregation by another key.
 *
 * Every member of the group reads the input partitions it owns and judges each frame as a
 * single instance does — root uid and ts read by the frame reader (no full parse), the
 * event-time guard, the watermark of the frame's input partition, lateness — and passes it
 * on to the internal topic `<group>-repartition`, keyed by uid (so each user's frames land on
 * one partition, Kafka's default partitioner), in the same Kafka transaction as the input
 * offsets and its late and dead-letter records:
 *
 * - a frame judged on time: its bytes as they were, the uid as key, the input record's
 *   timestamp, and header `tickflow-repartition` = `f,<input partition>,<offset>,<ts>`
 *   (and `tickflow-repartition-key` = the input record's key, when it had one);
 * - a frame judged late (`beyond-lateness`, already sent to the late topic here): no value,
 *   the uid as key, header `l,<input partition>,<offset>,<ts>,<watermark ms>`, so that the
 *   counting stage counts it in the `late` of the windows it was late for;
 * - the time of each owned input partition (its watermark, whether it is idle, and the read
 *   position it holds for), to every partition of the topic, after the frames it covers,
 *   whenever it changed (at most every 200 ms while frames flow): header `t`, value JSON.
 *
 * The counting stage (unique-users.ts, `RepartitionedInput`) then counts each repartition
 * partition — keyed by uid now — into partials as the keyed `--scale-out` counts the input,
 * with each partition's time from those time records instead of from its frames.
 *
 * Exactly once like the single instance: the offsets commit with each input partition's
 * event time at the oldest frame its guard still holds; a restart judges the frames from
 * there to the last read position again exactly as before, and passes on only what it
 * decides after that position (what it decided before was passed on in a committed transaction).
 */

/** The header every record on the repartition topic carries: what it is and where it came from. */
export const REPARTITION_HEADER = 'tickflow-repartition';
/** The input record's key, when it had one. */
export const REPARTITION_KEY_HEADER = 'tickflow-repartition-key';

export function repartitionTopic(group: string): string {
  return `${group}-repartition`;
}

/** The consumer group of the counting stage (reads `<group>-repartition`). */
export function countGroup(group: string): string {
  return `${group}-count`;
}

/** A time record's value: an input partition's watermark (null: none yet), idle or not, and the read position it holds for. */
export interface InputTimeRecord {
  time: { partition: number; watermark: number | null; idle: boolean; at: string };
}

/** Time records go out at most this often per input partition while frames flow (always when idleness changes). */
const TIME_INTERVAL_MS = 200;

export class RepartitionProcessor implements Processor<null> {
  readonly #counter: FrameCounter;
  readonly #input: string;
  readonly #topic: string;
  readonly #partitions: number;
  readonly #logger: Logger;
  readonly #range: ValueRange = { data: Buffer.alloc(0), start: 0, end: 0 };
  /** Per input partition being replayed: where the records processed before the claim end. */
  readonly #replay = new Map<number, bigint>();
  /** Per input partition: the next offset to read (what its time records hold for). */
  readonly #next = new Map<number, bigint>();
  /** Per input partition: the time last sent, and when (wall clock). */
  readonly #sent = new Map<number, { watermark: number; idle: boolean; wall: number }>();
  #assigned: number[] = [];
  /** Deciding what was decided (and passed on) before the claim: nothing is passed on. */
  #silent = false;
  #context: Pick<ProcessContext, 'emit'> | null = null;

  constructor(input: string, topic: string, partitions: number, counter: FrameCounter, logger: Logger) {
    this.#input = input;
    this.#topic = topic;
    this.#partitions = partitions;
    this.#counter = counter;
    this.#logger = logger;
    counter.judged = {
      accepted: (source, data, start, end, uid, ts) => {
        if (this.#silent) return;
        const headers: Record<string, string | Buffer> = { [REPARTITION_HEADER]: `f,${source.partition},${source.offset},${ts}` };
        if (source.key !== null) headers[REPARTITION_KEY_HEADER] = source.key;
        const value = Buffer.from(data.buffer, data.byteOffset + start, end - start);
        this.#context!.emit(this.#topic, { key: uidBytes(uid), value, headers, timestamp: source.timestamp });
      },
      late: (source, uid, ts, watermarkMs) => {
        if (this.#silent) return;
        this.#context!.emit(this.#topic, { key: uidBytes(uid), value: null, headers: { [REPARTITION_HEADER]: `l,${source.partition},${source.offset},${ts},${watermarkMs}` }, timestamp: source.timestamp });
      },
    };
  }

  async assign(_tx: unknown, claims: readonly PartitionClaim[]): Promise<void> {
    this.revoke();
    const operator = this.#counter.operator;
    const restored: string[] = [];
    for (const claim of claims) {
      for (const partition of claim.partitions) {
        this.#assigned.push(partition);
        this.#next.set(partition, claim.offsets.get(partition)!);
        const raw = claim.states?.get(partition);
        const replayUntil = claim.replayed?.get(partition) ?? null;
        const state = raw === undefined ? null : decodeResumeState(raw);
        if (raw !== undefined && state === null) this.#logger.warn({ partition }, 'the state committed with this partition\'s offset is not one this version reads: its time starts over');
        if (state === null && replayUntil === null) continue;
        operator.restore(partition, { from: claim.offsets.get(partition)!, time: state?.time ?? null, events: state?.events ?? [], idle: state?.idle ?? false, replayUntil });
        if (replayUntil !== null) this.#replay.set(partition, replayUntil);
        restored.push(replayUntil === null ? `${partition}` : `${partition}@${claim.offsets.get(partition)}..${replayUntil}`);
      }
    }
    this.#assigned.sort((a, b) => a - b);
    if (restored.length > 0) this.#logger.info({ partitions: restored }, 'repartition: resuming from the committed event time; frames up to the last read position are judged again, not passed on again');
    for (const partition of this.#assigned) operator.expect(partition);
  }

  process(records: readonly LogRecord[], context: ProcessContext): void {
    const counter = this.#counter;
    counter.side = sideRecordsOf(context);
    this.#context = context;
    const range = this.#range;
    const replay = this.#replay;
    for (const record of records) {
      const partition = record.partition;
      const offset = record.offset;
      if (replay.size > 0) {
        const until = replay.get(partition);
        this.#silent = until !== undefined && offset < until;
        // Past the replay: what was decided before the claim after its last record is applied (and was passed on).
        if (until !== undefined && !this.#silent) this.#endReplay(partition);
      }
      if (valueRange(record, range)) counter.frame(partition, range.data, range.start, range.end, record);
      else counter.frame(partition, EMPTY, 0, 0, record);
      this.#next.set(partition, offset + 1n);
    }
    this.#silent = false;
    this.#sendTimes(context, false);
  }

  #endReplay(partition: number): void {
    const silent = this.#silent;
    this.#silent = true;
    this.#counter.operator.endReplay(partition);
    this.#replay.delete(partition);
    this.#silent = silent;
  }

  onReplayed(partition: { partition: number }, context: Pick<ProcessContext, 'now' | 'emit' | 'reject'>): void {
    this.#counter.side = sideRecordsOf(context);
    this.#context = context;
    this.#endReplay(partition.partition);
    this.#sendTimes(context, true);
  }

  /** Quiet partitions stop holding the watermark back; all quiet: what the guards hold is decided (and passed on), as a single instance does. */
  onIdle(context: IdleContext): void {
    this.#counter.side = sideRecordsOf(context);
    this.#context = context;
    const operator = this.#counter.operator;
    for (const { partition, caughtUp } of context.quiet) if (caughtUp && !this.#replay.has(partition)) operator.idle(partition);
    if (context.allQuiet && this.#replay.size === 0) operator.decideHeld();
    if (this.#sendTimes(context, true)) context.commitSoon();
  }

  /** Each owned input partition's time, to every partition of the repartition topic, when it changed. */
  #sendTimes(context: Pick<ProcessContext, 'emit' | 'now'>, always: boolean): boolean {
    const operator = this.#counter.operator;
    let sent = false;
    for (const partition of this.#assigned) {
      if (this.#replay.has(partition)) continue; // its time now is one it had before
      const time = operator.timeOf(partition);
      if (time === null) continue;
      const last = this.#sent.get(partition);
      if (last === undefined ? time.watermarkMs === Number.NEGATIVE_INFINITY && !time.idle : last.watermark === time.watermarkMs && last.idle === time.idle) continue;
      if (!always && last !== undefined && last.idle === time.idle && context.now - last.wall < TIME_INTERVAL_MS) continue;
      this.#sent.set(partition, { watermark: time.watermarkMs, idle: time.idle, wall: context.now });
      const record: InputTimeRecord = { time: { partition, watermark: Number.isFinite(time.watermarkMs) ? time.watermarkMs : null, idle: time.idle, at: String(this.#next.get(partition) ?? 0n) } };
      const value = JSON.stringify(record);
      for (let q = 0; q < this.#partitions; q++) context.emit(this.#topic, { key: `time/${partition}`, value, partition: q, headers: { [REPARTITION_HEADER]: 't' } });
      sent = true;
    }
    return sent;
  }

  resumePoints(): ResumePoint[] {
    const points = this.#counter.operator.resumePoints();
    return [...points].map(([partition, point]) => ({
      topic: this.#input, partition, ...(point.offset === undefined ? {} : { offset: point.offset }), state: encodeResumeState(point, null),
    }));
  }

  checkpoint(): null {
    return null;
  }

  async write(): Promise<number> {
    return 0;
  }

  revoke(): void {
    this.#counter.reset();
    this.#replay.clear();
    this.#next.clear();
    this.#sent.clear();
    this.#assigned = [];
    this.#silent = false;
  }
}

const EMPTY = new Uint8Array(0);

/** The uid as the key: its bytes in the frame when it is plain ASCII (a view, as the value is), else its UTF-8. */
function uidBytes(uid: string | AsciiText): Buffer {
  if (typeof uid === 'string') return Buffer.from(uid, 'utf8');
  const { bytes, start, end } = uid;
  return Buffer.from(bytes.buffer, bytes.byteOffset + start, end - start);
}
