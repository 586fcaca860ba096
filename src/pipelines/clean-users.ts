import type { Logger } from 'pino';
import { CountryTally } from '../core/country-stats.ts';
import type { CountrySummary } from '../core/country-stats.ts';
import { resolveDateRange } from '../core/calendar-dates.ts';
import type { DateBound, DateOrder } from '../core/calendar-dates.ts';
import { cleanUserJson } from '../core/user-record.ts';
import type { CleanOptions, RejectReason } from '../core/user-record.ts';
import { TumblingWindows, Watermark, WindowAggregator } from '../core/window.ts';
import type { ClosedWindow } from '../core/window.ts';
import { valueText } from '../log/types.ts';
import type { Log, LogRecord } from '../log/types.ts';
import { DEFAULT_TRANSACTION_INTERVAL_MS, kafkaGroupAfterAck, kafkaTransaction } from '../runtime/commit-strategy.ts';
import { TOO_LARGE } from '../runtime/dead-letters.ts';
import type { EndContext, IdleContext, ProcessContext, Processor } from '../runtime/processor.ts';
import { runStreamTask } from '../runtime/stream-task.ts';

/**
 * clean-users: user records from a topic → conformed records on the output topic, or the
 * original bytes on the dead-letter topic with the reason (runtime/dead-letters.ts; a
 * value over maxRecordBytes is rejected as too-large by the runtime, unparsed) → per
 * tumbling window of record time (when the record was written to the log), the most and
 * least represented countries and the number of distinct users, printed and sent to the
 * stats topic. Every record read lands on exactly one of the output and dead-letter
 * topics, so in a bounded run produced = clean + dead-lettered.
 *
 * Exactly once (the default with Kafka, commit strategy kafka-transaction): the clean
 * records, dead letters and window reports of a commit interval and the consumed offsets go
 * in one Kafka transaction. At least once (`exactlyOnce: false`, kafka-group-after-ack):
 * offsets commit to the group once everything emitted before them is acknowledged.
 * `--until-end` reads up to the end offsets seen at start without the group.
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
  /** Dates outside this range are dead-lettered `implausible-date` (--plausible-dates; default 1900-01-01 .. now + 1 day). */
  plausibleDates: readonly [DateBound, DateBound];
  partitions: number;
  /** Values above this are dead-lettered as `too-large` unparsed (--max-record-bytes). */
  maxRecordBytes: number;
  /** Outputs, dead letters, reports and offsets in one Kafka transaction per commit (default: true on Kafka). */
  exactlyOnce?: boolean;
  /** Commit at most this often (default: 1 s exactly once, every batch at least once). */
  commitIntervalMs?: number;
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

/** Conforms each record, tallies countries per window of record time; holds no connection. */
class UserCleaner implements Processor<never> {
  readonly summary: CleanUsersSummary = { read: 0, clean: 0, deadLettered: 0, reasons: {}, windows: 0, lateForStats: 0, seconds: 0 };
  readonly #windows: WindowAggregator<string, CountryTally, { country: string; id: string | number }>;
  #options: CleanOptions;
  readonly #config: CleanUsersConfig;
  readonly #onWindow: (window: CountryWindow) => void;

  constructor(config: CleanUsersConfig, onWindow: (window: CountryWindow) => void) {
    this.#config = config;
    this.#onWindow = onWindow;
    this.#options = { dateOrder: config.dateOrder };
    this.#windows = new WindowAggregator({
      windows: new TumblingWindows(config.windowMs),
      watermark: new Watermark(config.allowedLatenessMs),
      init: () => new CountryTally(),
      add: (tally, user) => tally.add(user.country, user.id),
    });
  }

  async assign(): Promise<void> {
    // Nothing per partition: the windows span every partition and live as long as the run.
  }

  process(records: readonly LogRecord[], context: ProcessContext): void {
    // "now" in the plausible range is the batch's clock.
    this.#options = { ...this.#options, plausibleDates: resolveDateRange(this.#config.plausibleDates, context.now) };
    for (const record of records) {
      this.summary.read++;
      const result = cleanUserJson(valueText(record) ?? 'null', this.#options);
      if (!result.ok) {
        this.#count(result.reason);
        context.reject(record, result.reason, result.detail);
        continue;
      }
      this.summary.clean++;
      context.emit(this.#config.output, { key: String(result.user.id), value: JSON.stringify(result.user) });
      if (!this.#windows.add(Number(record.timestamp), ALL, result.user)) this.summary.lateForStats++;
    }
    this.#publish(this.#windows.close(), context);
  }

  /** The whole input quiet for --idle-timeout: report the open windows. */
  onIdle(context: IdleContext): void {
    if (context.allQuiet) this.#publish(this.#windows.flush(), context);
  }

  onEnd(context: EndContext): void {
    if (context.finished) this.#publish(this.#windows.flush(), context);
  }

  /** Records over --max-record-bytes, which the runtime dead-lettered unparsed. */
  countTooLarge(n: number): void {
    this.summary.read += n;
    for (let i = 0; i < n; i++) this.#count(TOO_LARGE);
  }

  checkpoint(): null {
    return null;
  }

  async write(): Promise<number> {
    return 0;
  }

  revoke(): void {
    // The windows are kept: the records not yet committed come again and count again in them (in both modes).
  }

  #count(reason: RejectReason | typeof TOO_LARGE): void {
    this.summary.deadLettered++;
    this.summary.reasons[reason] = (this.summary.reasons[reason] ?? 0) + 1;
  }

  #publish(closed: ClosedWindow<string, CountryTally>[], context: Pick<ProcessContext, 'emit'>): void {
    this.summary.windows += closed.length;
    for (const { window, value } of closed) {
      const report: CountryWindow = { window: { start: new Date(window.start).toISOString(), end: new Date(window.end).toISOString() }, ...value.summary() };
      this.#onWindow(report);
      context.emit(this.#config.statsTopic, { key: report.window.start, value: JSON.stringify(report) });
    }
  }
}

export async function runCleanUsers(config: CleanUsersConfig, deps: CleanUsersDeps): Promise<CleanUsersSummary> {
  const started = performance.now();
  const { log, logger, signal } = deps;
  await log.createTopics([config.output, config.deadLetterTopic, config.statsTopic].map((name) => ({ name, partitions: name === config.statsTopic ? 1 : config.partitions })));
  const cleaner = new UserCleaner(config, deps.onWindow);
  // The embedded log has no transactions: at least once there unless asked (which is refused).
  const exactlyOnce = config.exactlyOnce ?? log.transactionalProducer !== undefined;
  const report = await runStreamTask({
    pipeline: PIPELINE,
    log,
    commit: exactlyOnce ? kafkaTransaction() : kafkaGroupAfterAck(),
    commitIntervalMs: config.commitIntervalMs ?? (exactlyOnce ? DEFAULT_TRANSACTION_INTERVAL_MS : 0),
    group: config.group,
    topics: [config.input],
    processor: cleaner,
    deadLetterTopic: config.deadLetterTopic,
    logger,
    signal,
    untilEnd: config.untilEnd,
    idleMs: config.idleTimeoutMs,
    maxRecordBytes: config.maxRecordBytes,
    now: deps.now,
  });
  cleaner.countTooLarge(report.tooLarge);
  cleaner.summary.seconds = Math.round(performance.now() - started) / 1000;
  return cleaner.summary;
}
