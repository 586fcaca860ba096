import { Buffer } from 'node:buffer';
import type { Logger } from 'pino';
import { BoundedDistinct, HyperLogLog } from '../core/hyperloglog.ts';
import type { AsciiText, DistinctCounter } from '../core/hyperloglog.ts';
import { GRANULARITIES, windowIso } from '../core/calendar-windows.ts';
import type { Granularity } from '../core/calendar-windows.ts';
import { JsonRecordSplitter } from '../core/json-records.ts';
import type { JsonRecordFormat } from '../core/json-records.ts';
import { describeSkew } from '../core/event-time-guard.ts';
import { UniqueUsersWindows } from '../core/unique-users.ts';
import type { ALREADY_EMITTED, JudgingEvent, LateFrame, PartitionResume, PartitionTime, WindowCount, WindowsState } from '../core/unique-users.ts';
import { StateChain, decodeWindowsChain } from '../core/unique-users-state.ts';
import { readStateChain, writeStateSnapshot } from '../db/unique-users-state-store.ts';
import type { StateSnapshotRow } from '../db/unique-users-state-store.ts';
import { randomBytes } from 'node:crypto';
import { UserFrameReader } from '../core/user-frame.ts';
import type { FrameProblem } from '../core/user-frame.ts';
import { FrameScanner, ScannedFrames } from './frame-scanner.ts';
import type { FrameView, ScanResult } from './frame-scanner.ts';
import { valueRange } from '../log/types.ts';
import { SendQueue } from '../log/send-queue.ts';
import type { Log, LogRecord, TopicPartition, TopicPartitionOffset, ValueRange } from '../log/types.ts';
import { metrics } from '../observability/metrics.ts';
import { DEFAULT_TRANSACTION_INTERVAL_MS, kafkaTransaction, outputDerived } from '../runtime/commit-strategy.ts';
import { withDeadLetterFallback } from '../runtime/dead-letter-producer.ts';
import { TOO_LARGE, deadLetter } from '../runtime/dead-letters.ts';
import type { ClaimStarts, EndContext, IdleContext, PartitionClaim, ProcessContext, Processor, ResumePoint } from '../runtime/processor.ts';
import { runStreamTask } from '../runtime/stream-task.ts';
import { isRetriableDbError } from '../runtime/commit-pg-transaction.ts';
import { withRetries } from '../observability/retry.ts';
import { minuteSketchRow } from '../core/user-sketches.ts';
import type { MinuteSketchRow } from '../core/user-sketches.ts';
import { saveUserMinutes, writeUserMinutes } from '../db/user-sketch-store.ts';
import type { Database, Queryable } from '../db/types.ts';
import type { ByteSource } from './byte-source.ts';
import { SCALE_OUT_TRANSACTION_TIMEOUT_MS, partialsTopic, runCombiner, withSketch } from './unique-users-combine.ts';
import { REPARTITION_HEADER, REPARTITION_KEY_HEADER, RepartitionProcessor, countGroup, repartitionTopic } from './unique-users-repartition.ts';
import type { InputTimeRecord } from './unique-users-repartition.ts';
import type { ProgressRecord } from './unique-users-combine.ts';

/**
 * unique-users: frames from a topic (or stdin) → distinct root `uid` per window of root
 * `ts` (minute, and with `granularities` hour, day, ISO week, month, year, all from the one
 * read of each frame) → one JSON record per window on a topic (or stdout). Late frames go to a side topic
 * with how late they were; frames without a usable uid/ts, and frames over
 * maxRecordBytes (not parsed), go to the dead-letter topic with the reason. Both in the
 * one dead-letter format (runtime/dead-letters.ts). Three ways to read:
 *
 * - bounded (`untilEnd`, on the runtime): every partition from its earliest offset to the
 *   end offsets seen at start, no consumer group; the answer depends only on the data, so
 *   a re-run prints the same minutes. With two threads the frames' root fields are read
 *   on a worker (the processor's `prepare`) while the loop fetches and counts.
 * - group (the service, on the runtime): commits, per partition, the lowest offset an
 *   unemitted window still needs, so a restart re-reads what is still open. Exactly once
 *   (the default on Kafka, commit strategy kafka-transaction): window records, late frames,
 *   dead letters and those offsets go in one Kafka transaction per commit interval, each
 *   offset with the partition's event time at it and the read position (`resumePoints`);
 *   a restart restores them and judges the re-read frames again exactly as before —
 *   windows closed by then are not emitted again, their side records are not sent again.
 *   At least once (output-derived): on every assignment it skips windows that the output
 *   topic already holds, so no window is lost or repeated, but side records of re-read
 *   frames are sent again. A partition idle for --idle-timeout (fetched, nothing new)
 *   stops holding minutes back; one that cannot be fetched is not idle.
 * - stdin: one JSON Lines (or JSON array) stream as a single partition, read here over
 *   the same counting core.
 *
 * With a database (`deps.db`, --database-url): each emitted minute's distinct counter
 * becomes its sketch row (core/user-sketches.ts) as it is emitted; the rows since the last
 * commit are the processor's checkpoint, written by the runtime (`checkpointDb`) in one
 * PostgreSQL transaction per commit, before the commit that makes those minutes visible
 * (stdin: before each chunk's minutes are handed on). A minute written again replaces itself.
 *
 * Durable state (a database and exactly once, the service): at most every
 * `stateIntervalMs` a commit also takes a snapshot of the open windows — their exact sets
 * or sketches, each partition's event time, at the read position — written in that
 * PostgreSQL transaction before the Kafka transaction whose offset metadata names it
 * (`snap`: its id and the partition's position in it). A restart loads the named snapshot,
 * seeds the windows with it and reads each partition from the snapshot's position — or from
 * its committed offset, when that is further on — instead of from the first frame of its
 * oldest open window; the frames up to the committed read position are judged again as
 * before. Whatever does not fit (another partition set, other settings, a snapshot gone)
 * resumes as without a database. docs/users.md, "Durable state".
 */

export interface UniqueUsersConfig {
  /** Topic to read, or "-" for stdin. */
  input: string;
  /** Topic to write, or "-" for stdout. */
  output: string;
  lateTopic: string;
  deadLetterTopic: string;
  group: string;
  untilEnd: boolean;
  allowedLatenessMs: number;
  /** The event-time guard's bound (--max-time-skew, docs/event-time.md): a ts farther from its partition's stream time is held. */
  maxTimeSkewMs: number;
  idleTimeoutMs: number;
  /** The time frames to count (--granularity), finest first. */
  granularities: readonly Granularity[];
  /** Days and coarser in this IANA time zone (--time-zone); null: UTC. */
  timeZone: string | null;
  approx: boolean;
  precision: number;
  /** Per window: an exact set over this many bytes switches to a HyperLogLog sketch (--max-exact-memory). */
  maxExactBytes: number;
  /** Validate string contents too (slower); structure is always validated. */
  strict: boolean;
  /** Partitions for topics this pipeline creates. */
  partitions: number;
  /** With 2, a bounded read (`untilEnd`) reads frames' root fields on a second thread. */
  threads: number;
  format: JsonRecordFormat;
  /** Frames above this many bytes are dead-lettered as `too-large` unparsed (--max-record-bytes). */
  maxRecordBytes: number;
  /** Windows, side records and offsets in one Kafka transaction per commit (default: true on Kafka with a topic output). */
  exactlyOnce?: boolean;
  /** Commit at most this often (default 1 s). */
  commitIntervalMs?: number;
  /** With a database, exactly once: a snapshot of the open windows at most this often (default 30 s; docs/users.md, "Durable state"). */
  stateIntervalMs?: number;
  /**
   * Several members of one group (--scale-out; docs/users.md, "How it scales"): each writes
   * its partitions' windows as partials to `<group>-partials`, and the member owning that
   * topic's partition combines them into one record per window on `output`. Exact counting
   * needs the input keyed by uid (or `repartition`): counts are summed; with `approx` the
   * partials carry their sketches, which merge whatever the keys. Exactly once.
   */
  scaleOut?: boolean;
  /**
   * With scaleOut: the input is not keyed by uid — each member judges its input partitions'
   * frames and passes them on keyed by uid to `<group>-repartition`, which the partials are
   * counted from (--repartition; unique-users-repartition.ts).
   */
  repartition?: boolean;
  /** Partitions of `<group>-repartition` when it has to be created (default: the input's). */
  repartitionPartitions?: number;
  /** Static membership of the groups this member joins (--instance-id, Kafka's group.instance.id). */
  instanceId?: string;
  /** How long the group waits for a silent member (--session-timeout; default 10 s). */
  sessionTimeoutMs?: number;
  /** Internal: this is the counting stage of a repartitioned count, reading the repartition topic. */
  repartitioned?: RepartitionedInput;
}

/** The counting stage of a repartitioned count: the input topic the frames came from and its partitions. */
export interface RepartitionedInput {
  topic: string;
  partitions: number;
}

/** An input partition's time as a partition of the repartition topic last had it (from its time records). */
interface InputTime {
  watermark: number;
  idle: boolean;
  /** The input read position it holds for: an older time record is left alone. */
  at: bigint;
}

/** The default --state-interval. */
export const DEFAULT_STATE_INTERVAL_MS = 30_000;

export interface UniqueUsersDeps {
  log: Log;
  logger: Logger;
  signal: AbortSignal;
  /** Where window records go when output is "-". */
  stdout: NodeJS.WritableStream;
  /** The frames when input is "-". */
  stdin?: ByteSource;
  /** Wall clock (ms), injectable for tests. */
  now?: () => number;
  /** Called with each emitted window record (dashboards, tests). */
  onWindow?: (window: WindowCount) => void;
  /**
   * Where each emitted minute's sketch row goes (--database-url; docs/users.md, "Ranges on
   * demand"): written per commit, before the commit that makes those minutes visible.
   * Absent: no sketches are made.
   */
  db?: Database;
}

export interface UniqueUsersSummary {
  frames: number;
  counted: number;
  late: number;
  invalid: number;
  invalidReasons: Partial<Record<FrameProblem | typeof TOO_LARGE, number>>;
  /** Frames whose ts the stream never confirmed (`implausible-time`, to the late topic). */
  implausible: number;
  /** Frames of windows an earlier run already emitted or closed (group mode, after a restart). */
  alreadyEmitted: number;
  /** Minute records emitted. */
  minutes: number;
  /** Records emitted per granularity. */
  windows: Partial<Record<Granularity, number>>;
  /** Records whose count is a HyperLogLog estimate (all with --approx; exact sets over --max-exact-memory otherwise). */
  approximateWindows: number;
  seconds: number;
  framesPerSecond: number;
  approximate: boolean;
}

const PIPELINE = 'unique-users';

/** Where a frame came from: a record of the input topic, or stdin's line and 0-based index. */
type FrameSource = LogRecord | { line: number; index: number };

/** Where the counting core puts its side records. */
interface SideRecords {
  late(source: FrameSource, data: Uint8Array, start: number, end: number, reason: string, error: string, headers: Record<string, string>): void;
  invalid(source: FrameSource, data: Uint8Array, start: number, end: number, reason: FrameProblem | typeof TOO_LARGE, error: string): void;
}

/** A frame the event-time guard holds: its bytes copied out of the fetched (or read) buffers. */
interface HeldRef {
  source: FrameSource;
  data: Buffer;
  /** Its root ts, unix seconds. */
  ts: number;
  /** Its root uid (for a frame passed on to the repartition topic when released). */
  uid: string;
}

/**
 * Where the judging stage of a repartitioned count passes frames on (unique-users-repartition.ts):
 * each frame judged on time, and each judged late with the watermark it was late against.
 */
export interface JudgedFrames {
  accepted(source: LogRecord, data: Uint8Array, start: number, end: number, uid: string | AsciiText, ts: number): void;
  late(source: LogRecord, uid: string | AsciiText, ts: number, watermarkMs: number): void;
}

const IMPLAUSIBLE_TIME = 'implausible-time';

/** The counting core: frames in, verdicts counted, late and invalid frames to `side`. */
export class FrameCounter {
  readonly summary: UniqueUsersSummary;
  operator: UniqueUsersWindows<HeldRef>;
  side: SideRecords | null = null;
  /** The judging stage of a repartitioned count: where judged frames go (null: counted here). */
  judged: JudgedFrames | null = null;
  /** With a database: the sketch rows of the minutes emitted since they were last taken. */
  rows: MinuteSketchRow[] | null;
  readonly #config: UniqueUsersConfig;
  readonly #reader: UserFrameReader;
  readonly #trackOffsets: boolean;
  readonly #started = performance.now();

  readonly #mode: 'judge' | 'judged' | null;
  /** Scaled out with a database: each partial minute carries its minute sketch, for the combiner to merge and store. */
  readonly #partialMinuteSketches: boolean;

  constructor(config: UniqueUsersConfig, trackOffsets: boolean, sketches: boolean, mode: 'judge' | 'judged' | null = null) {
    this.#config = config;
    this.#mode = mode;
    this.#trackOffsets = trackOffsets;
    // Scaled out, a member's minutes are partials: the combiner stores the whole minute's sketch.
    this.rows = sketches && config.scaleOut !== true ? [] : null;
    this.#partialMinuteSketches = sketches && config.scaleOut === true;
    this.#reader = new UserFrameReader({ decode: decodeUtf8, validateStrings: config.strict });
    this.operator = this.#newOperator();
    this.summary = { frames: 0, counted: 0, late: 0, invalid: 0, invalidReasons: {}, implausible: 0, alreadyEmitted: 0, minutes: 0, windows: {}, approximateWindows: 0, seconds: 0, framesPerSecond: 0, approximate: config.approx };
  }

  /** Forgets every open minute and partition (a revoked assignment), and the rows of minutes not committed. */
  reset(): void {
    this.operator = this.#newOperator();
    if (this.rows !== null) this.rows = [];
  }

  /** The sketch rows of the minutes emitted since the last call (null: none, or no database). */
  takeRows(): MinuteSketchRow[] | null {
    const rows = this.rows;
    if (rows === null || rows.length === 0) return null;
    this.rows = [];
    return rows;
  }

  /** A fresh distinct counter for a window, as configured. */
  newCounter(): DistinctCounter {
    const config = this.#config;
    return config.approx ? new HyperLogLog(config.precision) : new BoundedDistinct(config.maxExactBytes, config.precision);
  }

  #newOperator(): UniqueUsersWindows<HeldRef> {
    const config = this.#config;
    const counter = () => this.newCounter();
    // With a database, each minute's counter becomes its sketch row as the minute is emitted;
    // scaled out, a window counted in a sketch carries it in its partial, for the combiner to merge.
    const partials = config.scaleOut === true;
    const minuteSketches = this.#partialMinuteSketches;
    const emitted = this.rows === null && !partials ? undefined : (record: WindowCount, distinct: DistinctCounter) => {
      if (this.rows !== null && record.granularity === 'minute') this.rows.push(minuteSketchRow(record, distinct));
      if (partials) withSketch(record, distinct, minuteSketches && record.granularity === 'minute' ? minuteSketchRow(record, distinct).sketch : null);
    };
    const mode = this.#mode;
    // Frames judged upstream are not guarded again.
    const maxTimeSkewMs = mode === 'judged' ? undefined : config.maxTimeSkewMs;
    return new UniqueUsersWindows<HeldRef>({ allowedLatenessMs: config.allowedLatenessMs, maxTimeSkewMs, granularities: config.granularities, timeZone: config.timeZone, counter, emitted, mode }, {
      released: (ref, _eventTimeMs, verdict) => this.#verdict(ref.source, ref.data, 0, ref.data.length, ref.ts, ref.uid, verdict),
      implausible: (ref, eventTimeMs, skewMs, streamTimeMs) => this.#implausible(ref, eventTimeMs, skewMs, streamTimeMs),
    });
  }

  /** The hot path: one frame's bytes [start, end) of `data`. */
  frame(partition: number, data: Uint8Array, start: number, end: number, source: FrameSource): void {
    if (end - start > this.#config.maxRecordBytes) {
      this.tooLarge(1);
      const error = `value of ${end - start} bytes is over --max-record-bytes ${this.#config.maxRecordBytes}; not parsed`;
      this.side!.invalid(source, data, start, end, TOO_LARGE, error);
      return;
    }
    const reader = this.#reader;
    this.count(partition, data, start, end, source, reader, reader.read(data, start, end));
  }

  /** Frames over maxRecordBytes, dead-lettered without being read. */
  tooLarge(n: number): void {
    this.summary.frames += n;
    this.summary.invalid += n;
    if (n > 0) this.summary.invalidReasons[TOO_LARGE] = (this.summary.invalidReasons[TOO_LARGE] ?? 0) + n;
  }

  /** Counts a frame whose root fields were read (`ok`: it has a usable uid and ts). */
  count(partition: number, data: Uint8Array, start: number, end: number, source: FrameSource, reader: FrameView, ok: boolean): void {
    this.summary.frames++;
    if (!ok) {
      const reason = reader.problem!;
      this.summary.invalid++;
      this.summary.invalidReasons[reason] = (this.summary.invalidReasons[reason] ?? 0) + 1;
      this.side!.invalid(source, data, start, end, reason, reader.detail);
      return;
    }
    const offset = this.#trackOffsets && 'offset' in source ? source.offset : undefined;
    const ts = reader.ts;
    const uid = reader.uidAscii ?? reader.uid;
    const verdict = this.operator.add(partition, ts * 1000, uid, offset);
    if (verdict === null) {
      this.summary.counted++;
      this.judged?.accepted(source as LogRecord, data, start, end, uid, ts);
      return;
    }
    if (verdict.reason === 'held') {
      // Rare (a ts far from its partition's stream time): the frame's bytes outlive the batch.
      this.operator.hold(partition, ts * 1000, reader.uid, offset, heldRef(source, data, start, end, ts, reader.uid));
      return;
    }
    this.#verdict(source, data, start, end, ts, uid, verdict);
  }

  /**
   * The counting stage of a repartitioned count: a frame judged on time upstream, its uid and
   * ts as passed on, `source` its record on the input topic (for a late record when its window
   * was closed here meanwhile). Counted, or late as `window-closed`.
   */
  countJudged(partition: number, offset: bigint, uid: string | AsciiText, ts: number, source: () => LogRecord): void {
    this.summary.frames++;
    const verdict = this.operator.add(partition, ts * 1000, uid, offset);
    if (verdict === null) this.summary.counted++;
    else if (verdict.reason !== 'held') this.#verdict(source(), EMPTY, 0, 0, ts, uid, verdict);
  }

  /** A counted frame's verdict: counted, already emitted, or late (to the late topic with how late). */
  #verdict(source: FrameSource, data: Uint8Array, start: number, end: number, ts: number, uid: string | AsciiText, verdict: LateFrame | typeof ALREADY_EMITTED | null): void {
    if (verdict === null) {
      this.summary.counted++;
      this.judged?.accepted(source as LogRecord, data, start, end, uid, ts);
      return;
    }
    if (verdict.reason === 'already-emitted') {
      this.summary.alreadyEmitted++;
      return;
    }
    this.summary.late++;
    const lateBy = verdict.lateByMs / 1000;
    const allowed = this.#config.allowedLatenessMs / 1000;
    const eventMinute = windowIso(Math.floor((ts * 1000) / 60_000) * 60_000);
    const error = verdict.reason === 'beyond-lateness'
      ? `ts ${ts} is ${lateBy} s behind its partition's stream time, more than the allowed ${allowed} s`
      : `minute ${eventMinute} was already emitted`;
    this.side!.late(source, data, start, end, verdict.reason, error, {
      'x-late-by-seconds': String(lateBy),
      'x-watermark': minuteIsoish(verdict.watermarkMs),
      'x-allowed-lateness-seconds': String(allowed),
      'x-event-minute': eventMinute,
      ...lineOf(source),
    });
    if (verdict.reason === 'beyond-lateness') this.judged?.late(source as LogRecord, uid, ts, verdict.watermarkMs);
  }

  /** A held frame the stream never confirmed: to the late topic as `implausible-time`, with how far off it was. */
  #implausible(ref: HeldRef, eventTimeMs: number, skewMs: number | null, streamTimeMs: number | null): void {
    this.summary.implausible++;
    const headers: Record<string, string> = { 'x-event-time': minuteIsoish(eventTimeMs), ...lineOf(ref.source) };
    if (skewMs !== null) headers['x-time-skew-ms'] = String(skewMs);
    if (streamTimeMs !== null) headers['x-stream-time'] = minuteIsoish(streamTimeMs);
    const error = skewMs === null || streamTimeMs === null
      ? `ts ${ref.ts} (${minuteIsoish(eventTimeMs)}): its partition's first frames never agreed on a time near it`
      : `ts ${ref.ts} (${minuteIsoish(eventTimeMs)}) is ${describeSkew(skewMs)} its partition's stream time ${minuteIsoish(streamTimeMs)}, and the stream did not confirm it`;
    this.side!.late(ref.source, ref.data, 0, ref.data.length, IMPLAUSIBLE_TIME, error, headers);
  }

  finish(): UniqueUsersSummary {
    const seconds = (performance.now() - this.#started) / 1000;
    this.summary.seconds = Math.round(seconds * 1000) / 1000;
    this.summary.framesPerSecond = Math.round(this.summary.frames / seconds);
    return this.summary;
  }
}

function minuteIsoish(ms: number): string {
  return Number.isFinite(ms) && Math.abs(ms) <= 8.64e15 ? new Date(ms).toISOString() : String(ms);
}

/** A held frame's reference: its record (or stdin position) and a copy of its bytes. */
function heldRef(source: FrameSource, data: Uint8Array, start: number, end: number, ts: number, uid: string): HeldRef {
  const bytes = copy(data, start, end);
  // A fetched record points into its fetch response (getters): keep copies, not the response.
  const own: FrameSource = 'line' in source ? source : {
    topic: source.topic,
    partition: source.partition,
    offset: source.offset,
    timestamp: source.timestamp,
    key: source.key && Buffer.from(source.key),
    value: bytes,
    headers: source.headers.map(([name, value]) => [name, Buffer.from(value)] as const),
  };
  return { source: own, data: bytes, ts, uid };
}

/** A held frame's reference as bytes (durable state): its record's fields and bytes, JSON. */
function encodeHeldRef(ref: HeldRef): Uint8Array {
  const source = ref.source;
  if ('line' in source) return Buffer.from(JSON.stringify({ line: source.line, index: source.index, data: ref.data.toString('base64'), ts: ref.ts, uid: ref.uid }));
  return Buffer.from(JSON.stringify({
    topic: source.topic, partition: source.partition, offset: String(source.offset), timestamp: String(source.timestamp),
    key: source.key === null ? null : Buffer.from(source.key).toString('base64'),
    headers: source.headers.map(([name, value]) => [name, Buffer.from(value).toString('base64')]),
    data: ref.data.toString('base64'), ts: ref.ts, uid: ref.uid,
  }));
}

function decodeHeldRef(bytes: Uint8Array): HeldRef {
  const v = JSON.parse(Buffer.from(bytes).toString('utf8')) as { line?: number; index?: number; topic?: string; partition?: number; offset?: string; timestamp?: string; key?: string | null; headers?: Array<[string, string]>; data: string; ts: number; uid?: string };
  const data = Buffer.from(v.data, 'base64');
  if (v.line !== undefined) return { source: { line: v.line, index: v.index! }, data, ts: v.ts, uid: v.uid ?? '' };
  const source: LogRecord = {
    topic: v.topic!, partition: v.partition!, offset: BigInt(v.offset!), timestamp: BigInt(v.timestamp!),
    key: v.key == null ? null : Buffer.from(v.key, 'base64'), value: data,
    headers: (v.headers ?? []).map(([name, value]) => [name, Buffer.from(value, 'base64')] as const),
  };
  return { source, data, ts: v.ts, uid: v.uid ?? '' };
}

/**
 * The record a frame came from. A frame of stdin becomes a record of topic "-" (as
 * `--input -` names it), partition 0, offset its 0-based index in the stream.
 */
function asRecord(source: FrameSource, data: Uint8Array, start: number, end: number): LogRecord {
  if (!('line' in source)) return source;
  return { topic: '-', partition: 0, offset: BigInt(source.index), timestamp: 0n, key: null, value: copy(data, start, end), headers: [] };
}

/** Where in stdin a frame began, as an extra fact. */
function lineOf(source: FrameSource): Record<string, string> | undefined {
  return 'line' in source ? { 'x-source-line': String(source.line) } : undefined;
}

function copy(data: Uint8Array, start: number, end: number): Buffer {
  return Buffer.from(data.subarray(start, end));
}

function decodeUtf8(data: Uint8Array, start: number, end: number): string {
  return (data instanceof Buffer ? data : Buffer.from(data.buffer, data.byteOffset, data.byteLength)).toString('utf8', start, end);
}

/**
 * Window records to stdout, or as records for the output topic: a minute keyed by its ISO
 * start as always, a coarser window by granularity and start (`hour/2016-07-11T13:00:00Z`).
 */
function windowSink(config: UniqueUsersConfig, deps: UniqueUsersDeps, counter: FrameCounter) {
  const key = (w: WindowCount) => (w.granularity === 'minute' ? w.window : `${w.granularity}/${w.window}`);
  return (windows: WindowCount[], send: (topic: string, records: { key: string; value: string }[]) => void) => {
    if (windows.length === 0) return;
    const summary = counter.summary;
    for (const w of windows) {
      summary.windows[w.granularity] = (summary.windows[w.granularity] ?? 0) + 1;
      if (w.approximate) summary.approximateWindows++;
      deps.onWindow?.(w);
    }
    summary.minutes = summary.windows.minute ?? 0;
    if (config.output === '-') {
      deps.stdout.write(windows.map((w) => `${JSON.stringify(w)}\n`).join(''));
      metrics.recordsOut.inc({ pipeline: PIPELINE, sink: 'stdout' }, windows.length);
    } else {
      send(config.output, windows.map((w) => ({ key: key(w), value: JSON.stringify(w) })));
    }
  };
}

type WindowSink = ReturnType<typeof windowSink>;

/** What `prepare` hands to `process`: the worker's answer for the batch's frames. */
interface ScannedBatch {
  frames: Int32Array;
  result: ScanResult;
}

/**
 * unique-users as a Processor: only the logic. The runtime reads (a bounded range or the
 * group), guards sizes, sends side records and minutes, and commits; with the
 * output-derived strategy it asks `neededOffsets()` what to commit and hands `resume()` the
 * newest minute records before every assignment; with kafka-transaction it commits
 * `resumePoints()` and hands their state back to `assign`.
 */
class UniqueUsersProcessor implements Processor<UniqueUsersCheckpoint, ScannedBatch> {
  readonly #config: UniqueUsersConfig;
  readonly #counter: FrameCounter;
  readonly #emit: WindowSink;
  readonly #scanner: FrameScanner | null;
  readonly #logger: Logger;
  readonly #range: ValueRange = { data: Buffer.alloc(0), start: 0, end: 0 };
  /** Durable state (null: none): where snapshots are kept, and the wall clock that spaces them. */
  readonly #durable: DurableSettings | null;
  /** The snapshot the commits name now: its id, positions and when it was taken (wall clock). */
  #named: { id: string; positions: ReadonlyMap<number, bigint>; at: number } | null = null;
  /** The snapshots written (or resumed from) since the claim: the next one is a delta on the last while the chain is short. */
  readonly #chain = new StateChain();
  /** A snapshot taken with the offsets of the commit being taken: its checkpoint writes it. */
  #pendingState: StateSnapshotRow | null = null;
  /** Scaled out: the input partitions assigned, the progress last written for them, and whether all are quiet. */
  #assigned: number[] = [];
  #progressSent: string | null = null;
  #quiet = false;
  /** Repartitioned (the counting stage): where the frames came from (null: counting the input itself). */
  readonly #repartitioned: RepartitionedInput | null;
  /** Repartitioned: per partition of the repartition topic, each input partition's time as it last had it. */
  readonly #inputs = new Map<number, Map<number, InputTime>>();
  /** Repartitioned: per partition being replayed, where the records processed before the claim end. */
  readonly #replaying = new Map<number, bigint>();
  readonly #uid: { bytes: Uint8Array; start: number; end: number } = { bytes: EMPTY, start: 0, end: 0 };

  constructor(config: UniqueUsersConfig, counter: FrameCounter, emit: WindowSink, scanner: FrameScanner | null, logger: Logger, durable: { db: Database; now: () => number; signal: AbortSignal } | null = null) {
    this.#config = config;
    this.#counter = counter;
    this.#emit = emit;
    this.#scanner = scanner;
    this.#logger = logger;
    this.#durable = durable && { ...durable, intervalMs: config.stateIntervalMs ?? DEFAULT_STATE_INTERVAL_MS, settings: stateSettings(config) };
    this.#repartitioned = config.repartitioned ?? null;
  }

  /**
   * Scaled out: after the partials, the partitions owned and the time through which their
   * windows are out (and whether all are quiet), whenever that changed — in the same
   * transaction, after the partials it covers.
   */
  #sendProgress(context: Pick<ProcessContext, 'emit'> & Partial<Pick<ProcessContext, 'commitSoon'>>): void {
    if (this.#assigned.length === 0) return;
    const closed = this.#counter.operator.watermarkMs;
    const record: ProgressRecord = { progress: { partitions: this.#assigned, closedThrough: Number.isFinite(closed) ? closed : null, quiet: this.#quiet } };
    const value = JSON.stringify(record);
    if (value === this.#progressSent) return;
    this.#progressSent = value;
    context.emit(this.#config.output, { key: `progress/${this.#assigned.join('.')}`, value });
    context.commitSoon?.();
  }

  resume(lastOutputs: readonly LogRecord[]): void {
    // The newest record: by end, then coarsest (records of windows ending together go out finest first).
    let newest: { end: number; granularity: Granularity } | null = null;
    for (const record of lastOutputs) {
      try {
        const { start, end, granularity } = (JSON.parse(record.value?.toString('utf8') ?? 'null') ?? {}) as { start?: unknown; end?: unknown; granularity?: unknown };
        if (typeof start !== 'number') continue;
        // Records written before time frames existed are minutes without an end.
        const g = (GRANULARITIES as readonly unknown[]).includes(granularity) ? (granularity as Granularity) : 'minute';
        const e = typeof end === 'number' ? end : start + 60;
        if (newest === null || e > newest.end || (e === newest.end && GRANULARITIES.indexOf(g) > GRANULARITIES.indexOf(newest.granularity))) newest = { end: e, granularity: g };
      } catch {
        // Not one of ours: ignore.
      }
    }
    if (newest === null) return;
    this.#counter.operator.resumeAfter(newest.end * 1000, newest.granularity);
    this.#logger.info({ granularity: newest.granularity, end: windowIso(newest.end * 1000) }, 'resuming after the last window in the output topic');
  }

  async assign(_tx: unknown, claims: readonly PartitionClaim[]): Promise<void | ClaimStarts> {
    this.#named = null;
    this.#chain.reset();
    this.#pendingState = null;
    this.#assigned = claims.flatMap((claim) => claim.partitions).sort((a, b) => a - b);
    this.#progressSent = null;
    this.#quiet = false;
    this.#inputs.clear();
    this.#replaying.clear();
    if (this.#durable) {
      const starts = await this.#resumeDurable(this.#durable, claims);
      if (starts !== null) return starts;
      // What #resumeDurable may have restored before it gave up is started over.
      this.#counter.reset();
    }
    const operator = this.#counter.operator;
    let closed = Number.NEGATIVE_INFINITY;
    // Scaled out, partitions come from members that closed windows at different times: the
    // windows are closed through the earliest, so a partition taken over still counts into
    // the windows its previous owner had not emitted (those closed for the others' partitions
    // are closed for their frames by each partition's own restored time).
    let earliest = Number.POSITIVE_INFINITY;
    const restored: string[] = [];
    for (const claim of claims) {
      for (const partition of claim.partitions) {
        const raw = claim.states?.get(partition);
        const replayUntil = claim.replayed?.get(partition) ?? null;
        const state = raw === undefined ? null : decodeResumeState(raw);
        if (raw !== undefined && state === null) this.#logger.warn({ partition }, 'the state committed with this partition\'s offset is not one this version reads: its time starts over');
        if (this.#repartitioned) {
          // Its input partitions' times as at the read position: the time records replayed are older.
          if (state?.inputs) this.#inputs.set(partition, state.inputs);
          if (replayUntil !== null) this.#replaying.set(partition, replayUntil);
        }
        if (state === null && replayUntil === null) continue;
        operator.restore(partition, { from: claim.offsets.get(partition)!, time: state?.time ?? null, events: state?.events ?? [], idle: state?.idle ?? false, replayUntil });
        if (state?.closed != null && state.closed > closed) closed = state.closed;
        if (state?.closed != null && state.closed < earliest) earliest = state.closed;
        restored.push(replayUntil === null ? `${partition}` : `${partition}@${claim.offsets.get(partition)}..${replayUntil}`);
      }
    }
    if (this.#config.scaleOut && Number.isFinite(earliest)) {
      closed = earliest;
      // Each partition's frames skip the windows its previous owner emitted.
      for (const claim of claims) {
        for (const partition of claim.partitions) {
          const raw = claim.states?.get(partition);
          const state = raw === undefined ? null : decodeResumeState(raw);
          if (state?.closed != null) operator.restoreEmitted(partition, state.closed);
        }
      }
    }
    operator.restoreClosed(closed);
    if (restored.length > 0) this.#logger.info({ partitions: restored, closedThrough: minuteIsoish(closed) }, 'resuming from the committed event time; frames up to the last read position are judged again');
    for (const claim of claims) for (const partition of claim.partitions) operator.expect(partition);
    if (this.#repartitioned) for (const partition of this.#assigned) this.#setTime(partition);
  }

  prepare(records: readonly LogRecord[]): Promise<ScannedBatch> | null {
    const scanning = this.#scanner?.submit(records as LogRecord[]) ?? null;
    return scanning === null ? null : scanning.result.then((result) => ({ frames: scanning.frames, result }));
  }

  process(records: readonly LogRecord[], context: ProcessContext, prepared?: ScannedBatch): void {
    const counter = this.#counter;
    counter.side = sideRecordsOf(context);
    if (records.length > 0) this.#quiet = false;
    if (this.#repartitioned) {
      this.#processRepartitioned(records, context);
      return;
    }
    if (prepared) {
      const view = new ScannedFrames(prepared.result);
      const { frames } = prepared;
      const bytes = view.bytes;
      for (let i = 0; i < records.length; i++) {
        const record = records[i]!;
        counter.count(record.partition, bytes, frames[2 * i]!, frames[2 * i + 1]!, record, view, view.at(i));
      }
      this.#scanner!.release(prepared.result);
    } else {
      const range = this.#range;
      for (const record of records) {
        if (valueRange(record, range)) counter.frame(record.partition, range.data, range.start, range.end, record);
        else counter.frame(record.partition, EMPTY, 0, 0, record);
      }
    }
    this.#emitWindows(counter.operator.close(), context);
    if (Number.isFinite(counter.operator.watermarkMs)) metrics.watermarkLagSeconds.set({ pipeline: PIPELINE }, (context.now - counter.operator.watermarkMs) / 1000);
  }

  /**
   * Repartitioned, the counting stage: frames judged upstream (counted, or `window-closed`
   * when their window was closed here meanwhile), late ones (counted in their windows'
   * `late`), and the input partitions' times — each partition of the repartition topic holds
   * the watermark back to the lowest of its input partitions' (all idle: the highest), as a
   * single instance holds its windows to the lowest of its partitions'. While a partition is
   * replayed after a claim its time stays as committed at the read position, and no window
   * closes until every replay is through.
   */
  #processRepartitioned(records: readonly LogRecord[], context: ProcessContext): void {
    const counter = this.#counter;
    const operator = counter.operator;
    const input = this.#repartitioned!;
    const uid = this.#uid;
    const touched = new Set<number>();
    for (const record of records) {
      const q = record.partition;
      touched.add(q);
      let replaying = false;
      if (this.#replaying.size > 0) {
        const until = this.#replaying.get(q);
        replaying = until !== undefined && record.offset < until;
        if (until !== undefined && !replaying) {
          this.#replaying.delete(q);
          operator.endReplay(q);
        }
      }
      const header = headerText(record, REPARTITION_HEADER);
      if (header === null) continue; // not one of ours
      if (header === 't') {
        if (!replaying) this.#inputTime(q, record);
        continue;
      }
      const parts = header.split(',');
      const partition = Number(parts[1]);
      const ts = Number(parts[3]);
      if (!replaying) {
        // A frame of an input partition that was idle: it holds the watermark back again (its next time record says how far).
        const time = this.#inputs.get(q)?.get(partition);
        if (time !== undefined && time.idle) time.idle = false;
      }
      if (parts[0] === 'l') {
        operator.addLate(q, ts * 1000, Number(parts[4]), record.offset);
        continue;
      }
      const key = record.key ?? EMPTY;
      let ascii = key.length > 0;
      for (let i = 0; i < key.length && ascii; i++) if (key[i]! > 0x7f) ascii = false;
      let id: string | AsciiText;
      if (ascii) {
        uid.bytes = key;
        uid.start = 0;
        uid.end = key.length;
        id = uid;
      } else {
        id = Buffer.from(key).toString('utf8');
      }
      counter.countJudged(q, record.offset, id, ts, () => inputRecord(input.topic, partition, BigInt(parts[2]!), record));
    }
    for (const q of touched) this.#setTime(q);
    if (this.#replaying.size === 0) this.#emitWindows(operator.close(), context);
    if (Number.isFinite(operator.watermarkMs)) metrics.watermarkLagSeconds.set({ pipeline: PIPELINE }, (context.now - operator.watermarkMs) / 1000);
  }

  /** A time record of an input partition, on partition `q` of the repartition topic (an older one than known is left alone). */
  #inputTime(q: number, record: LogRecord): void {
    let value: Partial<InputTimeRecord> | null;
    try {
      value = JSON.parse(record.value?.toString('utf8') ?? 'null') as Partial<InputTimeRecord> | null;
    } catch {
      return;
    }
    const time = value?.time;
    if (!time || typeof time.partition !== 'number' || typeof time.at !== 'string' || !/^\d+$/.test(time.at)) return;
    let times = this.#inputs.get(q);
    if (times === undefined) this.#inputs.set(q, (times = new Map()));
    const at = BigInt(time.at);
    const known = times.get(time.partition);
    if (known !== undefined && at < known.at) return;
    times.set(time.partition, { watermark: time.watermark ?? Number.NEGATIVE_INFINITY, idle: time.idle === true, at });
  }

  /**
   * Partition `q`'s watermark from its input partitions' times: the lowest of those not idle
   * (all idle: the highest, and `q` is idle); an input partition it has no time for yet holds
   * it back entirely.
   */
  #setTime(q: number): void {
    const times = this.#inputs.get(q);
    const operator = this.#counter.operator;
    let min = Number.POSITIVE_INFINITY;
    let max = Number.NEGATIVE_INFINITY;
    let holding = false;
    for (let p = 0; p < this.#repartitioned!.partitions; p++) {
      const time = times?.get(p);
      if (time === undefined) {
        operator.setTime(q, Number.NEGATIVE_INFINITY, false);
        return;
      }
      if (time.watermark > max) max = time.watermark;
      if (!time.idle) {
        holding = true;
        if (time.watermark < min) min = time.watermark;
      }
    }
    operator.setTime(q, holding ? min : max, !holding);
  }

  /** Partitions fetched without frames for --idle-timeout stop holding minutes back; all of them quiet: decide held frames, flush. */
  onIdle(context: IdleContext): void {
    this.#counter.side = sideRecordsOf(context);
    const operator = this.#counter.operator;
    if (this.#repartitioned) {
      // A partition of the repartition topic is idle when its input partitions are (their time records say so), not when it is quiet itself.
      if (this.#replaying.size > 0) return;
      const idle = this.#assigned.every((q) => operator.timeOf(q)?.idle === true);
      if (context.allQuiet && idle) this.#quiet = true;
      this.#emitWindows(context.allQuiet && idle ? [...operator.close(), ...operator.flushMinutes()] : operator.close(), context);
      return;
    }
    // Only a partition at its end is idle: one with records waiting (behind a stall of the
    // pipeline's own, such as an output send being retried) still holds its minutes open.
    for (const { partition, caughtUp } of context.quiet) if (caughtUp) operator.idle(partition);
    // All quiet: held frames are decided (counted or implausible), then every open minute goes out (coarser windows wait for their end).
    if (context.allQuiet) operator.decideHeld();
    if (context.allQuiet) this.#quiet = true;
    this.#emitWindows(context.allQuiet ? [...operator.close(), ...operator.flushMinutes()] : operator.close(), context);
  }

  onEnd(context: EndContext): void {
    this.#counter.side = sideRecordsOf(context);
    const operator = this.#counter.operator;
    for (const { partition } of context.ended) operator.finish(partition);
    this.#emitWindows(context.finished ? [...operator.close(), ...operator.flush()] : operator.close(), context);
  }

  neededOffsets(): TopicPartitionOffset[] {
    return [...this.#counter.operator.pendingOffsets()].map(([partition, offset]) => ({ topic: this.#config.input, partition, offset }));
  }

  resumePoints(positions: ReadonlyMap<string, ReadonlyMap<number, bigint>>): ResumePoint[] {
    const operator = this.#counter.operator;
    const closed = Number.isFinite(operator.watermarkMs) ? operator.watermarkMs : null;
    const points = operator.resumePoints();
    const read = positions.get(this.#config.input);
    if (this.#durable && read) this.#snapshotIfDue(this.#durable, read, points);
    const named = this.#named;
    return [...points].map(([partition, point]) => {
      const at = named?.positions.get(partition);
      const state = encodeResumeState(point, closed, named && at !== undefined ? [named.id, String(at)] : undefined);
      const inputs = this.#inputs.get(partition);
      // Repartitioned: the time of every input partition as this partition had it at the read position.
      if (this.#repartitioned) state.inputs = inputs === undefined ? [] : [...inputs].map(([p, t]) => [p, Number.isFinite(t.watermark) ? t.watermark : null, t.idle ? 1 : 0, String(t.at)]);
      return { topic: this.#config.input, partition, ...(point.offset === undefined ? {} : { offset: point.offset }), state };
    });
  }

  /**
   * Takes a snapshot of the open windows with this commit's offsets when one is due: none
   * named yet, the partitions changed, --state-interval passed since the last, or the
   * decisions after its position no longer fit a resume point. Not while frames are replayed
   * after a restart (those commits keep naming the last one), nor when nothing was read since.
   */
  #snapshotIfDue(durable: DurableSettings, read: ReadonlyMap<number, bigint>, points: ReadonlyMap<number, PartitionResume>): void {
    const named = this.#named;
    const now = durable.now();
    const samePartitions = named !== null && named.positions.size === read.size && [...read.keys()].every((p) => named.positions.has(p));
    if (samePartitions && [...read].every(([p, offset]) => named.positions.get(p) === offset)) return;
    const overflowing = named !== null && [...points].some(([p, point]) => point.cut !== undefined && point.cut > (named.positions.get(p) ?? -1n));
    if (samePartitions && now - named.at < durable.intervalMs && !overflowing) return;
    const state = this.#counter.operator.snapshot();
    if (state === null) return;
    const id = `${now.toString(36)}-${randomBytes(6).toString('hex')}`;
    const { bytes, parent, keepFrom } = this.#chain.take(id, state, durable.settings, encodeHeldRef);
    const positions = new Map(read);
    this.#pendingState = { group: this.#config.group, topic: this.#config.input, id, positions, windows: state.windows.length, state: bytes, parent, keepFrom };
    this.#named = { id, positions, at: now };
    this.#logger.debug({ snapshot: id, delta: parent !== null, windows: state.windows.length, bytes: bytes.length, positions: [...positions].map(([p, o]) => `${p}@${o}`) }, 'durable state taken');
  }

  /**
   * Resumes from the snapshot the committed offsets name, when every claimed partition
   * names the same one, it holds exactly these partitions under these settings, and the
   * decisions after it are all in the resume points. Returns where the partitions start
   * (null: it does not apply; the caller resumes without it).
   */
  async #resumeDurable(durable: DurableSettings, claims: readonly PartitionClaim[]): Promise<ClaimStarts | null> {
    const claim = claims.find((c) => c.topic === this.#config.input);
    if (claims.length !== 1 || claim === undefined || claim.partitions.length === 0) return null;
    // A partition that never had a frame commits no state: it resumes at its committed offset.
    const states = new Map<number, DecodedResumeState>();
    for (const partition of claim.partitions) {
      const raw = claim.states?.get(partition);
      if (raw === undefined) continue;
      const state = decodeResumeState(raw);
      if (state === null || state.snap === null) return null;
      states.set(partition, state);
    }
    if (states.size === 0) return null;
    const id = [...states.values()][0].snap!.id;
    const giveUp = (why: string) => {
      this.#logger.warn({ snapshot: id }, `durable state not used: ${why}; resuming from the committed offsets`);
      return null;
    };
    if ([...states.values()].some((s) => s.snap!.id !== id)) return giveUp('the partitions name different snapshots');
    const chain = await withRetries('postgres', `read ${PIPELINE} durable state`, () => readStateChain(durable.db, this.#config.group, this.#config.input, id), { signal: durable.signal, isRetriable: isRetriableDbError });
    if (chain === null) return giveUp('the snapshot (or one it builds on) is not in the database');
    const stored = chain.at(-1)!;
    if (stored.positions.size !== claim.partitions.length || claim.partitions.some((p) => !stored.positions.has(p) || (states.has(p) && stored.positions.get(p) !== states.get(p)!.snap!.at))) return giveUp('it holds another set of partitions');
    for (const partition of claim.partitions) {
      if (!states.has(partition) && claim.offsets.get(partition)! < stored.positions.get(partition)!) return giveUp(`partition ${partition} committed no state`);
    }
    let decoded: { settings: string; state: WindowsState<HeldRef> };
    try {
      decoded = decodeWindowsChain(chain.map((link) => ({ id: link.id, bytes: link.state })), () => this.#counter.newCounter(), decodeHeldRef);
    } catch (error) {
      return giveUp(`it cannot be read (${(error as Error).message})`);
    }
    if (decoded.settings !== durable.settings) return giveUp('it was taken with other settings (granularities, time zone, counting, lateness)');
    const operator = this.#counter.operator;
    const starts = new Map<number, bigint>();
    const resume: string[] = [];
    let closed = Number.NEGATIVE_INFINITY;
    for (const partition of claim.partitions) {
      const state = states.get(partition);
      const committed = claim.offsets.get(partition)!;
      if (state === undefined) {
        resume.push(`${partition}@${committed}..${committed} (committed ${committed}, snapshot ${stored.positions.get(partition)})`);
        continue;
      }
      const read = claim.replayed?.get(partition) ?? committed;
      const at = state.snap!.at;
      if (state.closed != null && state.closed > closed) closed = state.closed;
      if (committed >= at) {
        // Its committed offset is no further back than the snapshot: it resumes there, as without one.
        operator.restore(partition, { from: committed, time: state.time, events: state.events, idle: state.idle, replayUntil: read > committed ? read : null });
        resume.push(`${partition}@${committed}..${read} (committed ${committed}, snapshot ${at})`);
        continue;
      }
      if (state.cut !== null && state.cut > at) return giveUp(`more decisions were made on partition ${partition} after it than a resume point keeps`);
      operator.restore(partition, { from: at, time: decoded.state.partitions.get(partition) ?? null, events: state.events, idle: state.idle, replayUntil: read > at ? read : null, appliedThrough: at, held: decoded.state.held.get(partition) ?? [] });
      starts.set(partition, at);
      resume.push(`${partition}@${at}..${read} (committed ${committed}, snapshot ${at})`);
    }
    operator.restoreClosed(closed);
    try {
      operator.seed(decoded.state);
    } catch (error) {
      return giveUp((error as Error).message);
    }
    for (const partition of claim.partitions) operator.expect(partition);
    this.#named = { id, positions: stored.positions, at: durable.now() };
    // The next snapshot may be a delta on this one: the sets hold exactly what the chain stored.
    this.#chain.resumed(chain.map((link) => ({ id: link.id, bytes: link.state })), decoded.state);
    this.#logger.info({ snapshot: id, chain: chain.length, windows: decoded.state.windows.length, bytes: chain.reduce((n, link) => n + link.state.length, 0), partitions: resume, closedThrough: minuteIsoish(closed) }, 'resuming from durable state: each partition from the snapshot\'s position (or its committed offset, when further on) up to the last read position judged again');
    return new Map([[claim.topic, starts]]);
  }

  onReplayed(partition: TopicPartition, context: Pick<ProcessContext, 'now' | 'emit' | 'reject'>): void {
    this.#counter.side = sideRecordsOf(context);
    this.#counter.operator.endReplay(partition.partition);
    if (this.#repartitioned) {
      this.#replaying.delete(partition.partition);
      this.#setTime(partition.partition);
      if (this.#replaying.size > 0) return;
    }
    this.#emitWindows(this.#counter.operator.close(), context);
  }

  /** The sketch rows of the minutes emitted since the last commit was taken, and a snapshot taken with its offsets (with a database; taken with their records). */
  checkpoint(): UniqueUsersCheckpoint | null {
    const rows = this.#counter.takeRows();
    const state = this.#pendingState;
    this.#pendingState = null;
    return rows === null && state === null ? null : { rows, state };
  }

  /** Written (checkpointDb) before the commit that makes the minutes visible and names the snapshot; written again, each replaces itself. */
  async write(tx: Queryable, checkpoint: UniqueUsersCheckpoint): Promise<number> {
    if (checkpoint.rows !== null) await writeUserMinutes(tx, checkpoint.rows);
    if (checkpoint.state !== null) await writeStateSnapshot(tx, checkpoint.state);
    return checkpoint.rows?.length ?? 0;
  }

  revoke(): void {
    // Open windows are recomputed from the committed offsets (and durable state); emitted ones are skipped by resume().
    this.#counter.reset();
    this.#named = null;
    this.#chain.reset();
    this.#pendingState = null;
    this.#assigned = [];
    this.#progressSent = null;
    this.#quiet = false;
    this.#inputs.clear();
    this.#replaying.clear();
  }

  #emitWindows(windows: WindowCount[], context: Pick<ProcessContext, 'emit'> & Partial<Pick<ProcessContext, 'commitSoon'>>): void {
    this.#emit(windows, (topic, records) => {
      for (const record of records) context.emit(topic, record);
    });
    if (this.#config.scaleOut) this.#sendProgress(context);
    // Minutes printed to stdout leave the runtime nothing to send: their sketch rows still need a commit (an idle flush reads no records).
    if (this.#config.output === '-' && (this.#counter.rows?.length ?? 0) > 0) context.commitSoon?.();
  }
}

const EMPTY = new Uint8Array(0);

/** The text of a record's header (the last of that name), or null. */
function headerText(record: LogRecord, name: string): string | null {
  const headers = record.headers;
  for (let i = headers.length - 1; i >= 0; i--) if (headers[i]![0] === name) return headers[i]![1].toString('latin1');
  return null;
}

/** A frame's record on the input topic, rebuilt from its record on the repartition topic (for a late record of the counting stage). */
function inputRecord(topic: string, partition: number, offset: bigint, record: LogRecord): LogRecord {
  const key = record.headers.find(([name]) => name === REPARTITION_KEY_HEADER)?.[1] ?? null;
  return { topic, partition, offset, timestamp: record.timestamp, key, value: record.value, headers: [] };
}

interface DurableSettings {
  db: Database;
  now: () => number;
  signal: AbortSignal;
  intervalMs: number;
  settings: string;
}

/** What a commit writes before its Kafka transaction (checkpointDb): minute sketch rows, a snapshot of the open windows. */
interface UniqueUsersCheckpoint {
  rows: MinuteSketchRow[] | null;
  state: StateSnapshotRow | null;
}

/** What durable state is only valid under: a snapshot taken with other settings is not resumed from. */
function stateSettings(config: UniqueUsersConfig): string {
  const { granularities, timeZone, approx, precision, maxExactBytes, allowedLatenessMs, maxTimeSkewMs } = config;
  return JSON.stringify({ granularities, timeZone, approx, precision, maxExactBytes, allowedLatenessMs, maxTimeSkewMs });
}

/** What a resume point of unique-users commits with the offset (in the offset's metadata). */
interface ResumeState {
  /** The partition's event time just before the frame at the offset. */
  time: PartitionTime;
  /** Windows ending at or before this (ms) were closed: emitted if they were open. */
  closed: number | null;
  /** What changed the judging between frames after the offset: [position, kind] or [position, 'closed', closed-through ms]. */
  events: Array<[string, 'settle' | 'drain'] | [string, 'closed', number]>;
  /** Idle at the read position (absent: not). */
  idle?: true;
  /** Decisions after the offset were left out: the position of the newest left out. */
  cut?: string;
  /** Durable state: the snapshot the commit names, and the partition's position in it. */
  snap?: [string, string];
  /** Repartitioned (the counting stage): each input partition's time at the read position, [partition, watermark, idle 0/1, at]. */
  inputs?: Array<[number, number | null, number, string]>;
}

/** A resume point's state as committed (`snap`: the snapshot the commit names and the partition's position in it). */
export function encodeResumeState(point: PartitionResume, closed: number | null, snap?: [string, string]): ResumeState {
  const events = point.events.map((e): ResumeState['events'][number] => (e.kind === 'closed' ? [String(e.at), e.kind, e.value] : [String(e.at), e.kind]));
  return {
    time: point.time, closed, events, ...(point.idle ? { idle: true } : {}),
    ...(point.cut === undefined ? {} : { cut: String(point.cut) }),
    ...(snap ? { snap } : {}),
  };
}

interface DecodedResumeState {
  time: PartitionTime;
  closed: number | null;
  events: JudgingEvent[];
  idle: boolean;
  cut: bigint | null;
  snap: { id: string; at: bigint } | null;
  inputs: Map<number, InputTime> | null;
}

/** A committed resume state read back, or null when it is not one (another version's, or damaged). */
export function decodeResumeState(raw: unknown): DecodedResumeState | null {
  const value = raw as Partial<ResumeState> | null;
  if (value === null || typeof value !== 'object') return null;
  const time = value.time as Partial<PartitionTime> | undefined;
  const number = (x: unknown) => x === null || typeof x === 'number';
  if (!time || !number(time.stream) || !number(time.closed ?? null)) return null;
  const guard = time.guard;
  if (guard !== null && (typeof guard !== 'object' || guard === undefined || !number(guard.streamTime) || !number(guard.judgedAt) || !Array.isArray(guard.recent) || !guard.recent.every((t) => typeof t === 'number'))) return null;
  if (!number(value.closed ?? null) || !Array.isArray(value.events)) return null;
  const events: JudgingEvent[] = [];
  for (const e of value.events as unknown[][]) {
    if (!Array.isArray(e) || typeof e[0] !== 'string' || !/^\d+$/.test(e[0])) return null;
    if (e[1] === 'settle' || e[1] === 'drain') events.push({ at: BigInt(e[0]), kind: e[1] });
    else if (e[1] === 'closed' && typeof e[2] === 'number') events.push({ at: BigInt(e[0]), kind: 'closed', value: e[2] });
    else return null;
  }
  const digits = (x: unknown): x is string => typeof x === 'string' && /^\d+$/.test(x);
  const cut = digits(value.cut) ? BigInt(value.cut) : null;
  const snap = Array.isArray(value.snap) && typeof value.snap[0] === 'string' && digits(value.snap[1]) ? { id: value.snap[0], at: BigInt(value.snap[1]) } : null;
  let inputs: Map<number, InputTime> | null = null;
  if (Array.isArray(value.inputs)) {
    inputs = new Map();
    for (const e of value.inputs as unknown[][]) {
      if (!Array.isArray(e) || typeof e[0] !== 'number' || !number(e[1]) || !digits(e[3])) return null;
      inputs.set(e[0], { watermark: (e[1] as number | null) ?? Number.NEGATIVE_INFINITY, idle: e[2] === 1, at: BigInt(e[3]) });
    }
  }
  return { time: { stream: time.stream ?? null, guard: guard ?? null, closed: time.closed ?? null }, closed: value.closed ?? null, events, idle: value.idle === true, cut, snap, inputs };
}

/** Side records through the runtime: late frames to the late topic, the others to dead letters. */
export function sideRecordsOf(context: Pick<ProcessContext, 'reject'>): SideRecords {
  return {
    late: (source, _data, _start, _end, reason, error, headers) => context.reject(source as LogRecord, reason, error, { outcome: 'late', headers }),
    invalid: (source, _data, _start, _end, reason, error) => context.reject(source as LogRecord, reason, error),
  };
}

export async function runUniqueUsers(config: UniqueUsersConfig, deps: UniqueUsersDeps): Promise<UniqueUsersSummary> {
  if (config.scaleOut) return runScaledOut(config, deps);
  const { log } = deps;
  const topics = [config.lateTopic, config.deadLetterTopic, ...(config.output === '-' ? [] : [config.output])];
  // Created while the first frames are read: only the first send waits for them.
  const ready = log.createTopics(topics.map((name) => ({ name, partitions: name === config.output ? 1 : config.partitions })));
  ready.catch(() => undefined);
  const counter = new FrameCounter(config, !config.untilEnd && config.input !== '-', deps.db !== undefined);
  const emit = windowSink(config, deps, counter);
  const progress = setInterval(() => {
    const s = counter.summary;
    deps.logger.info({ frames: s.frames, late: s.late, invalid: s.invalid, implausible: s.implausible, held: counter.operator.held, openWindows: counter.operator.openWindows, watermark: minuteIsoish(counter.operator.watermarkMs) }, 'unique-users progress');
  }, 10_000);
  progress.unref();
  try {
    if (config.input === '-') await readStdin(config, deps, counter, emit, ready);
    else await onRuntime(config, deps, counter, emit, ready);
    await ready;
  } finally {
    clearInterval(progress);
  }
  return counter.finish();
}

/**
 * --scale-out: this member counts the input partitions it owns into partials on
 * `<group>-partials`, and, while it owns that topic's partition, combines them into the
 * final records on the output topic (unique-users-combine.ts; docs/users.md, "How it scales").
 */
async function runScaledOut(config: UniqueUsersConfig, deps: UniqueUsersDeps): Promise<UniqueUsersSummary> {
  const { log } = deps;
  if (config.input === '-' || config.output === '-' || config.untilEnd) throw new Error('--scale-out needs a service reading and writing Kafka topics (no --until-end, no -)');
  if (config.approx && config.repartition) throw new Error('--scale-out --approx needs no --repartition: partial sketches merge whatever the keys');
  if (deps.db) {
    deps.logger.info({ database: deps.db.description, durableState: !config.repartition }, config.repartition
      ? 'unique-users (scaled out): the combined minutes\' sketches go to the database; --repartition keeps no durable state (a member re-reads its repartition partitions from their oldest open window)'
      : 'unique-users (scaled out): the combined minutes\' sketches and this member\'s durable state go to the database');
  }
  if (!log.transactionalProducer || config.exactlyOnce === false) throw new Error('--scale-out needs exactly once on Kafka (Kafka transactions)');
  const partials = partialsTopic(config.group);
  // Not keyed by uid: the frames are judged and re-keyed by uid to <group>-repartition first, and the partials counted from there
  // (an input topic that does not exist is refused here: its partitions set the repartition topic's).
  const inputPartitions = config.repartition ? (await log.offsets(config.input)).length : 0;
  if (inputPartitions > MAX_REPARTITIONED_INPUT_PARTITIONS) throw new Error(`--repartition takes an input of at most ${MAX_REPARTITIONED_INPUT_PARTITIONS} partitions (each counting partition commits every input partition's time with its offset), got ${inputPartitions}`);
  const repartition = repartitionTopic(config.group);
  const repartitionPartitions = config.repartitionPartitions ?? inputPartitions;
  // The internal topics: partials on one partition (one combiner at a time, every partial and progress record in one order),
  // frames re-keyed by uid on as many as the input has; replicated as the cluster allows.
  const ready = log.createTopics([
    { name: partials, partitions: 1 },
    ...(config.repartition ? [{ name: repartition, partitions: repartitionPartitions }] : []),
    { name: config.output, partitions: 1 },
    ...[config.lateTopic, config.deadLetterTopic].map((name) => ({ name, partitions: config.partitions })),
  ]);
  await ready;
  // A topic made before (by another member, or an earlier run) keeps its partitions.
  const countPartitions = config.repartition ? (await log.offsets(repartition)).length : 0;
  const stage: UniqueUsersConfig = config.repartition
    ? { ...config, input: repartition, group: countGroup(config.group), output: partials, exactlyOnce: true, repartitioned: { topic: config.input, partitions: inputPartitions } }
    : { ...config, output: partials, exactlyOnce: true };
  const counter = new FrameCounter(stage, true, deps.db !== undefined, config.repartition ? 'judged' : null);
  const emit = windowSink(stage, { ...deps, onWindow: undefined }, counter);
  // Repartitioned: the frames read from the input are judged here (and their late, dead-letter and implausible-time records sent).
  const judge = config.repartition ? new FrameCounter(config, true, false, 'judge') : null;
  const progress = setInterval(() => {
    const s = (judge ?? counter).summary;
    deps.logger.info({ frames: s.frames, late: s.late, invalid: s.invalid, openWindows: counter.operator.openWindows, watermark: minuteIsoish(counter.operator.watermarkMs) }, 'unique-users progress (scaled out)');
  }, 10_000);
  progress.unref();
  const commitIntervalMs = config.commitIntervalMs ?? DEFAULT_TRANSACTION_INTERVAL_MS;
  // One stage failing stops the other.
  const stop = new AbortController();
  const combined: Partial<Record<Granularity, number>> = {};
  const signal = AbortSignal.any([deps.signal, stop.signal]);
  const stageDeps = { ...deps, signal };
  try {
    const results = await Promise.allSettled([
      ...(judge ? [runRepartition(config, stageDeps, judge, repartition, countPartitions, ready).finally(() => stop.abort())] : []),
      onRuntime(stage, judge ? { ...stageDeps, logger: deps.logger.child({ stage: 'count' }) } : stageDeps, counter, emit, ready).finally(() => stop.abort()),
      runCombiner({
        log, logger: deps.logger.child({ stage: 'combine' }), signal, group: config.group, input: config.repartition ? repartition : config.input, output: config.output,
        deadLetterTopic: config.deadLetterTopic, commitIntervalMs, idleMs: config.idleTimeoutMs, maxRecordBytes: config.maxRecordBytes,
        ...membership(config), ...(deps.db ? { db: deps.db } : {}),
        outputsReady: ready, now: deps.now, onWindow: (w) => {
          combined[w.granularity] = (combined[w.granularity] ?? 0) + 1;
          deps.onWindow?.(w);
        },
      }).finally(() => stop.abort()),
    ]);
    for (const result of results) if (result.status === 'rejected') throw result.reason;
  } finally {
    clearInterval(progress);
  }
  // The summary's windows are the final records this member emitted (its partials are not).
  const summary = counter.finish();
  if (judge) {
    // Repartitioned: the frames are those read from the input and judged here; late also those whose window closed in the count.
    const judged = judge.finish();
    judged.late += summary.late;
    judged.counted = summary.counted;
    judged.alreadyEmitted = summary.alreadyEmitted;
    judged.windows = combined;
    judged.minutes = combined.minute ?? 0;
    return judged;
  }
  summary.windows = combined;
  summary.minutes = combined.minute ?? 0;
  return summary;
}

/** Repartitioned input partitions: each commits every input partition's time with its offsets (offset metadata is bounded). */
const MAX_REPARTITIONED_INPUT_PARTITIONS = 48;

/** The judging stage of a repartitioned count: the input's frames judged and passed on keyed by uid (unique-users-repartition.ts). */
async function runRepartition(config: UniqueUsersConfig, deps: UniqueUsersDeps, judge: FrameCounter, topic: string, partitions: number, ready: Promise<void>): Promise<void> {
  const logger = deps.logger.child({ stage: 'repartition' });
  const report = await runStreamTask({
    pipeline: 'unique-users-repartition',
    log: deps.log,
    commit: kafkaTransaction({ transactionTimeoutMs: SCALE_OUT_TRANSACTION_TIMEOUT_MS }),
    group: config.group,
    topics: [config.input],
    processor: new RepartitionProcessor(config.input, topic, partitions, judge, logger),
    deadLetterTopic: config.deadLetterTopic,
    lateTopic: config.lateTopic,
    logger,
    signal: deps.signal,
    untilEnd: false,
    commitIntervalMs: config.commitIntervalMs ?? DEFAULT_TRANSACTION_INTERVAL_MS,
    idleMs: config.idleTimeoutMs,
    maxRecordBytes: config.maxRecordBytes,
    outputsReady: ready,
    rejoinWhenProducerFenced: true,
    ...membership(config),
    now: deps.now,
  });
  judge.tooLarge(report.tooLarge);
}

/** A member's static membership (--instance-id) and session timeout, for each group it joins. */
function membership(config: UniqueUsersConfig): { groupInstanceId?: string; sessionTimeoutMs?: number } {
  return {
    ...(config.instanceId ? { groupInstanceId: config.instanceId } : {}),
    ...(config.sessionTimeoutMs ? { sessionTimeoutMs: config.sessionTimeoutMs } : {}),
  };
}

async function onRuntime(config: UniqueUsersConfig, deps: UniqueUsersDeps, counter: FrameCounter, emit: WindowSink, ready: Promise<void>): Promise<void> {
  // The service reads the output topic before its first assignment: it must exist.
  if (!config.untilEnd) await ready;
  // The root fields are read on a second thread while this one fetches and counts.
  const scanner = config.untilEnd && config.threads > 1 ? new FrameScanner(config.strict, config.maxRecordBytes) : null;
  try {
    // The embedded log has no transactions, and stdout none to speak of: at least once there.
    const exactlyOnce = config.exactlyOnce ?? (deps.log.transactionalProducer !== undefined && config.output !== '-');
    const report = await runStreamTask({
      pipeline: PIPELINE,
      log: deps.log,
      commit: exactlyOnce
        ? kafkaTransaction({ outputTopic: config.output, ...(config.scaleOut ? { transactionTimeoutMs: SCALE_OUT_TRANSACTION_TIMEOUT_MS } : {}) })
        : outputDerived(config.output === '-' ? null : config.output),
      // Minute sketches, per commit, before the commit that makes their minutes visible.
      ...(deps.db ? { checkpointDb: deps.db } : {}),
      group: config.group,
      topics: [config.input],
      // Durable state needs the exactly-once commits (resume points) and a service reading a topic
      // (not the counting stage of --repartition, whose resume restores its input partitions' times from the commits alone).
      processor: new UniqueUsersProcessor(config, counter, emit, scanner, deps.logger, deps.db && exactlyOnce && !config.untilEnd && !config.repartitioned ? { db: deps.db, now: deps.now ?? Date.now, signal: deps.signal } : null),
      deadLetterTopic: config.deadLetterTopic,
      lateTopic: config.lateTopic,
      logger: deps.logger,
      signal: deps.signal,
      untilEnd: config.untilEnd,
      commitIntervalMs: config.commitIntervalMs ?? DEFAULT_TRANSACTION_INTERVAL_MS,
      idleMs: config.idleTimeoutMs,
      maxRecordBytes: config.maxRecordBytes,
      outputsReady: ready,
      ...(config.scaleOut ? { rejoinWhenProducerFenced: true } : {}),
      ...(config.untilEnd ? {} : membership(config)),
      now: deps.now,
    });
    counter.tooLarge(report.tooLarge);
  } finally {
    await scanner?.close();
  }
}

/** Sketch rows in a transaction of their own, retried while PostgreSQL is away (as the runtime's checkpointDb). */
function saveWithRetries(db: Database, rows: readonly MinuteSketchRow[], signal: AbortSignal): Promise<void> {
  return withRetries('postgres', `write ${PIPELINE} minute sketches`, () => saveUserMinutes(db, rows), { signal, isRetriable: isRetriableDbError });
}

/** stdin: one stream as partition 0, minutes to stdout or the output topic, side records through a send queue. */
async function readStdin(config: UniqueUsersConfig, deps: UniqueUsersDeps, counter: FrameCounter, emit: WindowSink, ready: Promise<void>): Promise<void> {
  if (!deps.stdin) throw new Error('stdin source missing');
  // A late or dead-letter topic that takes less than Kafka's default gets references instead.
  const producer = withDeadLetterFallback(deps.log.producer(), [config.lateTopic, config.deadLetterTopic]);
  const sends = new SendQueue(producer, {
    ready,
    onSent: (topic, count) => {
      if (topic === config.lateTopic) {
        metrics.late.inc({ pipeline: PIPELINE }, count);
        metrics.deadLettered.inc({ pipeline: PIPELINE, topic }, count);
      } else if (topic === config.deadLetterTopic) {
        metrics.deadLettered.inc({ pipeline: PIPELINE, topic }, count);
      } else {
        metrics.recordsOut.inc({ pipeline: PIPELINE, sink: topic }, count);
      }
    },
  });
  counter.side = {
    late: (source, data, start, end, reason, error, headers) => sends.add(config.lateTopic, [deadLetter(PIPELINE, { record: asRecord(source, data, start, end), reason, error, headers })]),
    invalid: (source, data, start, end, reason, error) => sends.add(config.deadLetterTopic, [deadLetter(PIPELINE, { record: asRecord(source, data, start, end), reason, error, headers: lineOf(source) })]),
  };
  const send = (topic: string, records: { key: string; value: string }[]) => sends.add(topic, records);
  // With a database, the minutes' sketch rows are written before their records go out.
  const out = async (windows: WindowCount[]) => {
    const rows = counter.takeRows();
    if (rows !== null) await saveWithRetries(deps.db!, rows, deps.signal);
    emit(windows, send);
  };
  try {
    const operator = counter.operator;
    operator.expect(0);
    const splitter = new JsonRecordSplitter(
      (data, start, end, line, index) => counter.frame(0, data, start, end, { line, index }),
      (problem, line) => deps.logger.warn({ line }, problem),
      { format: config.format },
    );
    for await (const chunk of deps.stdin.chunks()) {
      const before = counter.summary.frames;
      splitter.push(chunk);
      metrics.recordsIn.inc({ pipeline: PIPELINE, topic: 'stdin' }, counter.summary.frames - before);
      await out(operator.close());
      await sends.room();
      if (deps.signal.aborted) break;
    }
    splitter.end();
    operator.finish(0);
    await out([...operator.close(), ...operator.flush()]);
    await sends.drain();
  } finally {
    await producer.close();
  }
}
