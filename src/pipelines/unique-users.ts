import { Buffer } from 'node:buffer';
import type { Logger } from 'pino';
import { ExactDistinct, HyperLogLog } from '../core/hyperloglog.ts';
import type { DistinctCounter } from '../core/hyperloglog.ts';
import { JsonRecordSplitter } from '../core/json-records.ts';
import type { JsonRecordFormat } from '../core/json-records.ts';
import { UniqueUsersPerMinute, minuteIso } from '../core/unique-users.ts';
import type { MinuteCount } from '../core/unique-users.ts';
import { UserFrameReader } from '../core/user-frame.ts';
import type { FrameProblem } from '../core/user-frame.ts';
import { FrameScanner, ScannedFrames } from './frame-scanner.ts';
import type { FrameView, ScanningBatch } from './frame-scanner.ts';
import { valueRange } from '../log/types.ts';
import { SendQueue } from '../log/send-queue.ts';
import type { Log, LogRecord, Producer, TopicPartitionOffset, ValueRange } from '../log/types.ts';
import { metrics } from '../observability/metrics.ts';
import { withDeadLetterFallback } from '../runtime/dead-letter-producer.ts';
import { TOO_LARGE, deadLetter } from '../runtime/dead-letters.ts';
import type { ByteSource } from './byte-source.ts';

/**
 * unique-users: frames from a topic (or stdin) → distinct root `uid` per minute of root
 * `ts` → one JSON record per minute on a topic (or stdout). Late frames go to a side topic
 * with how late they were; frames without a usable uid/ts, and frames over
 * maxRecordBytes (not parsed), go to the dead-letter topic with the reason. Both in the
 * one dead-letter format (runtime/dead-letters.ts). Three ways to read:
 *
 * - bounded (`untilEnd`): every partition from its earliest offset to the end offsets seen
 *   at start, no consumer group; the answer depends only on the data, so a re-run prints
 *   the same minutes.
 * - group (the service): a consumer-group member that commits, per partition, the lowest
 *   offset an unemitted minute still needs, and on start skips minutes that the output
 *   topic already holds, so a restart neither loses nor repeats a minute.
 * - stdin: one JSON Lines (or JSON array) stream as a single partition.
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
  idleTimeoutMs: number;
  approx: boolean;
  precision: number;
  /** Validate string contents too (slower); structure is always validated. */
  strict: boolean;
  /** Partitions for topics this pipeline creates. */
  partitions: number;
  /** With 2, a bounded read (`untilEnd`) reads frames' root fields on a second thread. */
  threads: number;
  format: JsonRecordFormat;
  /** Frames above this many bytes are dead-lettered as `too-large` unparsed (--max-record-bytes). */
  maxRecordBytes: number;
}

export interface UniqueUsersDeps {
  log: Log;
  logger: Logger;
  signal: AbortSignal;
  /** Where minute records go when output is "-". */
  stdout: NodeJS.WritableStream;
  /** The frames when input is "-". */
  stdin?: ByteSource;
  /** Wall clock (ms), injectable for tests. */
  now?: () => number;
  /** Called with each emitted minute (dashboards, tests). */
  onMinute?: (minute: MinuteCount) => void;
}

export interface UniqueUsersSummary {
  frames: number;
  counted: number;
  late: number;
  invalid: number;
  invalidReasons: Partial<Record<FrameProblem | typeof TOO_LARGE, number>>;
  /** Frames of minutes an earlier run already emitted (group mode, after a restart). */
  alreadyEmitted: number;
  minutes: number;
  seconds: number;
  framesPerSecond: number;
  approximate: boolean;
}

const PIPELINE = 'unique-users';

/** Where a frame came from: a record of the input topic, or stdin's line and 0-based index. */
type FrameSource = LogRecord | { line: number; index: number };

class FrameCounter {
  readonly summary: UniqueUsersSummary;
  readonly operator: UniqueUsersPerMinute;
  readonly #config: UniqueUsersConfig;
  readonly #deps: UniqueUsersDeps;
  readonly #reader: UserFrameReader;
  /** Late, dead-lettered and minute records, sent while the next frames are read. */
  readonly sends: SendQueue;
  readonly #trackOffsets: boolean;
  readonly #started = performance.now();

  constructor(config: UniqueUsersConfig, deps: UniqueUsersDeps, producer: Producer, trackOffsets: boolean, ready: Promise<void>) {
    this.#config = config;
    this.#deps = deps;
    this.#trackOffsets = trackOffsets;
    this.sends = new SendQueue(producer, {
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
    this.#reader = new UserFrameReader({ decode: decodeUtf8, validateStrings: config.strict });
    const counter: () => DistinctCounter = config.approx ? () => new HyperLogLog(config.precision) : () => new ExactDistinct();
    this.operator = new UniqueUsersPerMinute({ allowedLatenessMs: config.allowedLatenessMs, idleTimeoutMs: config.idleTimeoutMs, counter });
    this.summary = { frames: 0, counted: 0, late: 0, invalid: 0, invalidReasons: {}, alreadyEmitted: 0, minutes: 0, seconds: 0, framesPerSecond: 0, approximate: config.approx };
  }

  /** The hot path: one frame's bytes [start, end) of `data`. */
  frame(partition: number, data: Uint8Array, start: number, end: number, source: FrameSource): void {
    if (end - start > this.#config.maxRecordBytes) {
      this.tooLarge(data, start, end, source);
      return;
    }
    const reader = this.#reader;
    this.count(partition, data, start, end, source, reader, reader.read(data, start, end));
  }

  /** A frame over maxRecordBytes: dead-lettered without being read. */
  tooLarge(data: Uint8Array, start: number, end: number, source: FrameSource): void {
    this.summary.frames++;
    this.#reject(data, start, end, source, TOO_LARGE, `value of ${end - start} bytes is over --max-record-bytes ${this.#config.maxRecordBytes}; not parsed`);
  }

  /** Counts a frame whose root fields were read (`ok`: it has a usable uid and ts). */
  count(partition: number, data: Uint8Array, start: number, end: number, source: FrameSource, reader: FrameView, ok: boolean): void {
    this.summary.frames++;
    if (!ok) {
      this.#reject(data, start, end, source, reader.problem!, reader.detail);
      return;
    }
    const offset = this.#trackOffsets && 'offset' in source ? source.offset : undefined;
    const verdict = this.operator.add(partition, reader.ts * 1000, reader.uidAscii ?? reader.uid, offset);
    if (verdict === null) {
      this.summary.counted++;
      return;
    }
    if (verdict.reason === 'already-emitted') {
      this.summary.alreadyEmitted++;
      return;
    }
    this.summary.late++;
    const lateBy = verdict.lateByMs / 1000;
    const allowed = this.#config.allowedLatenessMs / 1000;
    const eventMinute = minuteIso(Math.floor((reader.ts * 1000) / 60_000) * 60_000);
    const error = verdict.reason === 'beyond-lateness'
      ? `ts ${reader.ts} is ${lateBy} s behind its partition's newest ts, more than the allowed ${allowed} s`
      : `minute ${eventMinute} was already emitted`;
    this.sends.add(this.#config.lateTopic, [deadLetter(PIPELINE, {
      record: asRecord(source, data, start, end),
      reason: verdict.reason,
      error,
      headers: {
        'x-late-by-seconds': String(lateBy),
        'x-watermark': minuteIsoish(verdict.watermarkMs),
        'x-allowed-lateness-seconds': String(allowed),
        'x-event-minute': eventMinute,
        ...lineOf(source),
      },
    })]);
  }

  #reject(data: Uint8Array, start: number, end: number, source: FrameSource, reason: FrameProblem | typeof TOO_LARGE, error: string): void {
    this.summary.invalid++;
    this.summary.invalidReasons[reason] = (this.summary.invalidReasons[reason] ?? 0) + 1;
    this.sends.add(this.#config.deadLetterTopic, [deadLetter(PIPELINE, { record: asRecord(source, data, start, end), reason, error, headers: lineOf(source) })]);
  }

  /** After a batch: waits only if too many side and minute records are unacknowledged. */
  sendSideRecords(): Promise<void> {
    return this.sends.room();
  }

  /** Waits until every record handed over so far is acknowledged. */
  settle(): Promise<void> {
    return this.sends.drain();
  }

  finish(): UniqueUsersSummary {
    const seconds = (performance.now() - this.#started) / 1000;
    this.summary.seconds = Math.round(seconds * 1000) / 1000;
    this.summary.framesPerSecond = Math.round(this.summary.frames / seconds);
    return this.summary;
  }
}

function minuteIsoish(ms: number): string {
  return Number.isFinite(ms) ? new Date(ms).toISOString() : String(ms);
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

/** Writes minute records to stdout, or queues them for the output topic. */
function minuteSink(config: UniqueUsersConfig, deps: UniqueUsersDeps, counter: FrameCounter) {
  const encode = (m: MinuteCount) => JSON.stringify(config.approx ? { ...m, approximate: true } : m);
  return async (minutes: MinuteCount[]) => {
    if (minutes.length === 0) return;
    counter.summary.minutes += minutes.length;
    for (const m of minutes) deps.onMinute?.(m);
    if (config.output === '-') {
      deps.stdout.write(minutes.map((m) => `${encode(m)}\n`).join(''));
      metrics.recordsOut.inc({ pipeline: PIPELINE, sink: 'stdout' }, minutes.length);
    } else {
      counter.sends.add(config.output, minutes.map((m) => ({ key: m.minute, value: encode(m) })));
    }
  };
}

export async function runUniqueUsers(config: UniqueUsersConfig, deps: UniqueUsersDeps): Promise<UniqueUsersSummary> {
  const { log } = deps;
  const topics = [config.lateTopic, config.deadLetterTopic, ...(config.output === '-' ? [] : [config.output])];
  // Created while the first frames are read: only the first send waits for them.
  const ready = log.createTopics(topics.map((name) => ({ name, partitions: name === config.output ? 1 : config.partitions })));
  ready.catch(() => undefined);
  // A late or dead-letter topic that takes less than Kafka's default gets references instead.
  const producer = withDeadLetterFallback(log.producer(), [config.lateTopic, config.deadLetterTopic]);
  const counter = new FrameCounter(config, deps, producer, !config.untilEnd && config.input !== '-', ready);
  const emit = minuteSink(config, deps, counter);
  const now = deps.now ?? Date.now;
  const progress = setInterval(() => {
    const s = counter.summary;
    deps.logger.info({ frames: s.frames, late: s.late, invalid: s.invalid, openMinutes: counter.operator.openMinutes, watermark: minuteIsoish(counter.operator.watermarkMs) }, 'unique-users progress');
  }, 10_000);
  progress.unref();
  try {
    if (config.input === '-') await readStdin(config, deps, counter, emit, now);
    else if (config.untilEnd) await readBounded(config, deps, counter, emit, now);
    else await readGroup(config, deps, counter, emit, now);
    await counter.settle();
    await ready;
  } finally {
    clearInterval(progress);
    await producer.close();
  }
  return counter.finish();
}

type Emit = (minutes: MinuteCount[]) => Promise<void>;

async function readStdin(config: UniqueUsersConfig, deps: UniqueUsersDeps, counter: FrameCounter, emit: Emit, now: () => number): Promise<void> {
  if (!deps.stdin) throw new Error('stdin source missing');
  counter.operator.expect(0, now());
  const splitter = new JsonRecordSplitter(
    (data, start, end, line, index) => counter.frame(0, data, start, end, { line, index }),
    (problem, line) => deps.logger.warn({ line }, problem),
    { format: config.format },
  );
  for await (const chunk of deps.stdin.chunks()) {
    const before = counter.summary.frames;
    splitter.push(chunk);
    metrics.recordsIn.inc({ pipeline: PIPELINE, topic: 'stdin' }, counter.summary.frames - before);
    await emit(counter.operator.close(now()));
    await counter.sendSideRecords();
    if (deps.signal.aborted) break;
  }
  splitter.end();
  counter.operator.finish(0);
  await emit(counter.operator.close(now()));
  await emit(counter.operator.flush());
}

async function readBounded(config: UniqueUsersConfig, deps: UniqueUsersDeps, counter: FrameCounter, emit: Emit, now: () => number): Promise<void> {
  const { log } = deps;
  const offsets = await log.offsets(config.input);
  const ends = new Map(offsets.map((p) => [p.partition, p.latest]));
  for (const p of offsets) {
    counter.operator.expect(p.partition, now());
    if (p.latest <= p.earliest) counter.operator.finish(p.partition);
  }
  const range: ValueRange = { data: Buffer.alloc(0), start: 0, end: 0 };
  const afterBatch = async (batch: LogRecord[]) => {
    metrics.recordsIn.inc({ pipeline: PIPELINE, topic: config.input }, batch.length);
    await emit(counter.operator.close(now()));
    await counter.sendSideRecords();
  };
  const readHere = async (batch: LogRecord[]) => {
    let last: LogRecord | null = null;
    for (const record of batch) {
      if (last !== null && record.partition !== last.partition) finishIfDone(counter, last, ends);
      last = record;
      if (valueRange(record, range)) counter.frame(record.partition, range.data, range.start, range.end, record);
      else counter.frame(record.partition, EMPTY, 0, 0, record);
    }
    if (last !== null) finishIfDone(counter, last, ends);
    await afterBatch(batch);
  };
  // The root fields are read on a second thread while this one fetches and counts: up to
  // two batches wait in the worker while the oldest is counted here, in order.
  const scanner = config.threads > 1 ? new FrameScanner(config.strict, config.maxRecordBytes) : null;
  const countScanned = async (scanning: ScanningBatch) => {
    const result = await scanning.result;
    const view = new ScannedFrames(result);
    const { records, frames } = scanning;
    const bytes = view.bytes;
    let last: LogRecord | null = null;
    for (let i = 0; i < records.length; i++) {
      const record = records[i]!;
      if (last !== null && record.partition !== last.partition) finishIfDone(counter, last, ends);
      last = record;
      counter.count(record.partition, bytes, frames[2 * i]!, frames[2 * i + 1]!, record, view, view.at(i));
    }
    if (last !== null) finishIfDone(counter, last, ends);
    scanner?.release(result);
    await afterBatch(records);
  };
  const scanning: ScanningBatch[] = [];
  try {
    for await (const batch of log.readRange({ topic: config.input, to: ends, signal: deps.signal })) {
      const next = scanner?.submit(batch) ?? null;
      if (next) {
        scanning.push(next);
        while (scanning.length > 2) await countScanned(scanning.shift()!);
      } else {
        while (scanning.length > 0) await countScanned(scanning.shift()!);
        await readHere(batch);
      }
    }
    while (scanning.length > 0) await countScanned(scanning.shift()!);
  } finally {
    await scanner?.close();
  }
  for (const p of offsets) counter.operator.finish(p.partition);
  await emit([...counter.operator.close(now()), ...counter.operator.flush()]);
}

const EMPTY = new Uint8Array(0);

function finishIfDone(counter: FrameCounter, last: LogRecord, ends: Map<number, bigint>): void {
  const end = ends.get(last.partition);
  if (end !== undefined && last.offset + 1n >= end) counter.operator.finish(last.partition);
}

/** The newest minute the output topic already holds (what an earlier run emitted). */
async function lastEmittedMinute(log: Log, output: string, signal: AbortSignal): Promise<number | null> {
  const offsets = await log.offsets(output);
  let newest: number | null = null;
  for (const p of offsets) {
    if (p.latest <= p.earliest) continue;
    const from = new Map([[p.partition, p.latest - 1n]]);
    for await (const batch of log.readRange({ topic: output, partitions: [p.partition], from, signal })) {
      for (const record of batch) {
        try {
          const start = (JSON.parse(record.value?.toString('utf8') ?? 'null') as { start?: unknown })?.start;
          if (typeof start === 'number' && (newest === null || start > newest)) newest = start;
        } catch {
          // Not one of ours: ignore.
        }
      }
    }
  }
  return newest;
}

async function readGroup(config: UniqueUsersConfig, deps: UniqueUsersDeps, counter: FrameCounter, emit: Emit, now: () => number): Promise<void> {
  const { log, logger, signal } = deps;
  if (config.output !== '-') {
    const newest = await lastEmittedMinute(log, config.output, signal);
    if (newest !== null) {
      counter.operator.resumeAfter(newest * 1000);
      logger.info({ minute: minuteIso(newest * 1000) }, 'resuming after the last minute in the output topic');
    }
  }
  const assigned = new Set<number>();
  /** Next offset to read per partition (what has been handed to the operator). */
  const positions = new Map<number, bigint>();
  const consumer = log.subscribe({
    group: config.group,
    topics: [config.input],
    signal,
    onAssign: async (assignment) => {
      const now_ = now();
      const partitions = new Set(assignment.partitions.filter((tp) => tp.topic === config.input).map((tp) => tp.partition));
      for (const p of assigned) {
        if (partitions.has(p)) continue;
        counter.operator.release(p);
        positions.delete(p);
      }
      for (const p of partitions) counter.operator.expect(p, now_);
      assigned.clear();
      for (const p of partitions) assigned.add(p);
    },
  });
  let lastFrameAt = now();
  let lastCommitAt = 0;
  // Batches and the idle timer take turns: the operator and the producer are not shared concurrently.
  let turn: Promise<unknown> = Promise.resolve();
  const serial = <T>(work: () => Promise<T>): Promise<T> => {
    const next = turn.then(work);
    turn = next.catch(() => undefined);
    return next;
  };
  const commit = async (force = false) => {
    if (!force && now() - lastCommitAt < 1000) return;
    lastCommitAt = now();
    await counter.settle();
    const pending = counter.operator.pendingOffsets();
    const offsets: TopicPartitionOffset[] = [];
    for (const [partition, next] of positions) offsets.push({ topic: config.input, partition, offset: pending.get(partition) ?? next });
    if (offsets.length > 0) await consumer.commit(offsets);
  };
  const idle = setInterval(() => {
    void serial(async () => {
      const quiet = now() - lastFrameAt >= config.idleTimeoutMs;
      await emit(quiet ? counter.operator.flush() : counter.operator.close(now()));
      await commit(quiet);
    }).catch((error: unknown) => logger.error({ err: error }, 'idle flush failed'));
  }, Math.min(1000, config.idleTimeoutMs));
  const range: ValueRange = { data: Buffer.alloc(0), start: 0, end: 0 };
  try {
    for await (const { records } of consumer) {
      await serial(async () => {
        let last: LogRecord | null = null;
        for (const record of records) {
          if (last !== null && record.partition !== last.partition) positions.set(last.partition, last.offset + 1n);
          last = record;
          if (valueRange(record, range)) counter.frame(record.partition, range.data, range.start, range.end, record);
          else counter.frame(record.partition, EMPTY, 0, 0, record);
        }
        if (last !== null) positions.set(last.partition, last.offset + 1n);
        metrics.recordsIn.inc({ pipeline: PIPELINE, topic: config.input }, records.length);
        lastFrameAt = now();
        await emit(counter.operator.close(now()));
        if (Number.isFinite(counter.operator.watermarkMs)) metrics.watermarkLagSeconds.set({ pipeline: PIPELINE }, (now() - counter.operator.watermarkMs) / 1000);
        await counter.sendSideRecords();
        await commit();
      });
    }
  } finally {
    clearInterval(idle);
    await turn;
    // Shutting down: what is open stays uncommitted and is recomputed by the next run.
    await counter.settle().catch((error: unknown) => logger.error({ err: error }, 'side records not sent'));
    // The consumer may already have left the group (signal): the last periodic commit stands.
    await commit(true).catch((error: unknown) => logger.debug({ err: error }, 'final commit skipped'));
    await consumer.close();
  }
}
