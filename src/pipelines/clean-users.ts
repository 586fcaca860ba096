import type { Logger } from 'pino';
import { CountryTally } from '../core/country-stats.ts';
import type { CountrySummary } from '../core/country-stats.ts';
import type { DateOrder } from '../core/calendar-dates.ts';
import { cleanUserJson } from '../core/user-record.ts';
import type { CleanOptions, RejectReason } from '../core/user-record.ts';
import { TumblingWindows, Watermark, WindowAggregator } from '../core/window.ts';
import type { ClosedWindow } from '../core/window.ts';
import { SendQueue } from '../log/send-queue.ts';
import { valueText } from '../log/types.ts';
import type { GroupConsumer, Log, LogRecord, RecordToProduce, TopicPartitionOffset } from '../log/types.ts';
import { metrics } from '../observability/metrics.ts';
import { withDeadLetterFallback } from '../runtime/dead-letter-producer.ts';
import { TOO_LARGE, deadLetter, tooLarge, tooLargeRejection } from '../runtime/dead-letters.ts';
import type { Rejection } from '../runtime/dead-letters.ts';

/**
 * clean-users: user records from a topic → conformed records on the output topic, or the
 * original bytes on the dead-letter topic with the reason (runtime/dead-letters.ts; a
 * value over maxRecordBytes is rejected as too-large without being parsed) →
 * per tumbling window of record time (when the record was written to the log), the most
 * and least represented countries and the number of distinct users, printed and sent to
 * the stats topic. Every record read lands on exactly one of the output and dead-letter
 * topics, so in a bounded run produced = clean + dead-lettered.
 */

export interface CleanUsersConfig {
  input: string;
  output: string;
  deadLetterTopic: string;
  statsTopic: string;
  group: string;
  untilEnd: boolean;
  windowMs: number;
  allowedLatenessMs: number;
  idleTimeoutMs: number;
  dateOrder?: DateOrder;
  partitions: number;
  /** Values above this are dead-lettered as `too-large` unparsed (--max-record-bytes). */
  maxRecordBytes: number;
}

export interface CountryWindow extends CountrySummary {
  window: { start: string; end: string };
}

export interface CleanUsersSummary {
  read: number;
  clean: number;
  deadLettered: number;
  reasons: Partial<Record<RejectReason | typeof TOO_LARGE, number>>;
  windows: number;
  /** Records whose window had already been reported (counted in no window). */
  lateForStats: number;
  seconds: number;
}

export interface CleanUsersDeps {
  log: Log;
  logger: Logger;
  signal: AbortSignal;
  now?: () => number;
  onWindow: (window: CountryWindow) => void;
}

const PIPELINE = 'clean-users';
const ALL = 'all';

class UserCleaner {
  readonly summary: CleanUsersSummary = { read: 0, clean: 0, deadLettered: 0, reasons: {}, windows: 0, lateForStats: 0, seconds: 0 };
  readonly watermark: Watermark;
  readonly windows: WindowAggregator<string, CountryTally, { country: string; id: string | number }>;
  readonly #options: CleanOptions;
  readonly #config: CleanUsersConfig;
  clean: RecordToProduce[] = [];
  dead: RecordToProduce[] = [];

  constructor(config: CleanUsersConfig) {
    this.#config = config;
    this.#options = { dateOrder: config.dateOrder };
    this.watermark = new Watermark(config.allowedLatenessMs);
    this.windows = new WindowAggregator({
      windows: new TumblingWindows(config.windowMs),
      watermark: this.watermark,
      init: () => new CountryTally(),
      add: (tally, user) => tally.add(user.country, user.id),
    });
  }

  record(record: LogRecord): void {
    this.summary.read++;
    if (tooLarge(record, this.#config.maxRecordBytes)) {
      this.reject(tooLargeRejection(record, this.#config.maxRecordBytes), TOO_LARGE);
      return;
    }
    const text = valueText(record);
    const result = cleanUserJson(text ?? 'null', this.#options);
    if (!result.ok) {
      this.reject({ record, reason: result.reason, error: result.detail }, result.reason);
      return;
    }
    this.summary.clean++;
    this.clean.push({ key: String(result.user.id), value: JSON.stringify(result.user) });
    if (!this.windows.add(Number(record.timestamp), ALL, result.user)) this.summary.lateForStats++;
  }

  reject(rejection: Rejection, reason: RejectReason | typeof TOO_LARGE): void {
    this.summary.deadLettered++;
    this.summary.reasons[reason] = (this.summary.reasons[reason] ?? 0) + 1;
    this.dead.push(deadLetter(PIPELINE, rejection));
  }

  describe(closed: ClosedWindow<string, CountryTally>[]): CountryWindow[] {
    this.summary.windows += closed.length;
    return closed.map(({ window, value }) => ({ window: { start: new Date(window.start).toISOString(), end: new Date(window.end).toISOString() }, ...value.summary() }));
  }

  takeSends(): Array<[string, RecordToProduce[]]> {
    const sends: Array<[string, RecordToProduce[]]> = [];
    if (this.clean.length > 0) sends.push([this.#config.output, this.clean]);
    if (this.dead.length > 0) sends.push([this.#config.deadLetterTopic, this.dead]);
    this.clean = [];
    this.dead = [];
    return sends;
  }
}

export async function runCleanUsers(config: CleanUsersConfig, deps: CleanUsersDeps): Promise<CleanUsersSummary> {
  const started = performance.now();
  const { log, logger, signal } = deps;
  const now = deps.now ?? Date.now;
  await log.createTopics([config.output, config.deadLetterTopic, config.statsTopic].map((name) => ({ name, partitions: name === config.statsTopic ? 1 : config.partitions })));
  // A dead-letter topic that takes less than Kafka's default gets references instead.
  const producer = withDeadLetterFallback(log.producer(), [config.deadLetterTopic]);
  const cleaner = new UserCleaner(config);
  // Clean records, dead letters and window reports go out while the next batch is cleaned.
  const sends = new SendQueue(producer, {
    onSent: (topic, count) => {
      if (topic === config.statsTopic) return;
      metrics.recordsOut.inc({ pipeline: PIPELINE, sink: topic }, count);
      if (topic === config.deadLetterTopic) metrics.deadLettered.inc({ pipeline: PIPELINE, topic }, count);
    },
  });

  const publishWindows = (closed: ClosedWindow<string, CountryTally>[]) => {
    const windows = cleaner.describe(closed);
    for (const w of windows) deps.onWindow(w);
    sends.add(config.statsTopic, windows.map((w) => ({ key: w.window.start, value: JSON.stringify(w) })));
  };
  const handle = async (records: readonly LogRecord[]) => {
    for (const record of records) cleaner.record(record);
    metrics.recordsIn.inc({ pipeline: PIPELINE, topic: config.input }, records.length);
    for (const [topic, batch] of cleaner.takeSends()) sends.add(topic, batch);
    publishWindows(cleaner.windows.close());
    await sends.room();
  };

  try {
    if (config.untilEnd) {
      const offsets = await log.offsets(config.input);
      for await (const batch of log.readRange({ topic: config.input, to: new Map(offsets.map((p) => [p.partition, p.latest])), signal })) await handle(batch);
      publishWindows(cleaner.windows.flush());
    } else {
      await consumeGroup(config, deps, handle, () => sends.drain(), async (idle) => {
        if (idle) publishWindows(cleaner.windows.flush());
        await sends.drain();
      }, now, logger);
    }
    await sends.drain();
  } finally {
    await producer.close();
  }
  for (const [reason, n] of Object.entries(cleaner.summary.reasons)) metrics.invalid.inc({ pipeline: PIPELINE, reason }, n);
  cleaner.summary.seconds = Math.round(performance.now() - started) / 1000;
  return cleaner.summary;
}

/**
 * The service: a group member that commits after the batch's records are acknowledged
 * (at least once: a crash between send and commit repeats those records downstream).
 */
async function consumeGroup(
  config: CleanUsersConfig,
  deps: CleanUsersDeps,
  handle: (records: readonly LogRecord[]) => Promise<void>,
  settle: () => Promise<void>,
  onTick: (idle: boolean) => Promise<void>,
  now: () => number,
  logger: Logger,
): Promise<void> {
  const consumer: GroupConsumer = deps.log.subscribe({ group: config.group, topics: [config.input], signal: deps.signal });
  let lastRecordAt = now();
  let turn: Promise<unknown> = Promise.resolve();
  const serial = (work: () => Promise<void>) => {
    const next = turn.then(work);
    turn = next.catch(() => undefined);
    return next;
  };
  const timer = setInterval(() => {
    void serial(() => onTick(now() - lastRecordAt >= config.idleTimeoutMs)).catch((error: unknown) => logger.error({ err: error }, 'idle flush failed'));
  }, Math.min(1000, config.idleTimeoutMs));
  try {
    for await (const { records } of consumer) {
      await serial(async () => {
        await handle(records);
        await settle();
        const next = new Map<number, bigint>();
        for (const r of records) next.set(r.partition, r.offset + 1n);
        const offsets: TopicPartitionOffset[] = [...next].map(([partition, offset]) => ({ topic: config.input, partition, offset }));
        await consumer.commit(offsets);
        lastRecordAt = now();
      });
    }
  } finally {
    clearInterval(timer);
    await turn;
    await consumer.close();
  }
}
