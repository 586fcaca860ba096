/**
 * `archive`: every message of some topics → one row each in Postgres, exactly once.
 *
 * A processor on the runtime (src/runtime): it keeps no state, and its checkpoint is the
 * records since the last commit, written into `archived_messages` in the transaction that
 * also stores the offsets. The primary key (topic, partition, offset) with ON CONFLICT DO
 * NOTHING makes replays (`--from-beginning`, a second group) harmless too.
 */
import type { Logger } from 'pino';
import { TickflowError } from '../core/errors.ts';
import { archiveRecords } from '../db/archive-store.ts';
import type { Database, Queryable } from '../db/types.ts';
import type { Log, LogRecord } from '../log/types.ts';
import type { Processor } from '../runtime/processor.ts';
import { runStreamTask } from '../runtime/stream-task.ts';

export interface ArchiveOptions {
  log: Log;
  db: Database;
  logger: Logger;
  signal: AbortSignal;
  topics: readonly string[];
  group: string;
  /** Start every partition at its earliest offset, whatever was stored (rows are not duplicated). */
  fromBeginning?: boolean;
  /** Return once the end offsets at start are archived (single member). */
  stopAtEnd?: boolean;
  /** Records larger than this go to the dead-letter topic by reference instead of a row. */
  maxRecordBytes?: number;
  deadLetterTopic?: string;
}

export interface ArchiveReport {
  read: number;
  /** New rows; read − inserted were already archived. */
  inserted: number;
}

/** Archiving is storing bytes: a record is refused only when PostgreSQL would struggle with it. */
export const ARCHIVE_MAX_RECORD_BYTES = 64 << 20;

/** Stateless: what to write is every record since the last checkpoint. */
class ArchiveProcessor implements Processor<LogRecord[]> {
  #pending: LogRecord[] = [];

  async assign(): Promise<void> {
    this.#pending = [];
  }

  process(records: readonly LogRecord[]): void {
    for (const record of records) this.#pending.push(record);
  }

  checkpoint(): LogRecord[] | null {
    if (this.#pending.length === 0) return null;
    const taken = this.#pending;
    this.#pending = [];
    return taken;
  }

  write(tx: Queryable, records: LogRecord[]): Promise<number> {
    return archiveRecords(tx, records);
  }

  revoke(): void {
    this.#pending = [];
  }
}

export async function runArchive(options: ArchiveOptions): Promise<ArchiveReport> {
  await awaitTopics(options);
  const deadLetterTopic = options.deadLetterTopic ?? 'archive-dead-letters';
  await options.log.createTopics([{ name: deadLetterTopic, partitions: 1 }]);
  const report = await runStreamTask({
    pipeline: 'archive',
    log: options.log,
    db: options.db,
    group: options.group,
    topics: options.topics,
    processor: new ArchiveProcessor(),
    sink: 'archived_messages',
    deadLetterTopic,
    maxRecordBytes: options.maxRecordBytes ?? ARCHIVE_MAX_RECORD_BYTES,
    logger: options.logger,
    signal: options.signal,
    fromBeginning: options.fromBeginning,
    untilEnd: options.stopAtEnd,
  });
  return { read: report.read, inserted: report.rows };
}

/** A service may start before its topics exist: wait for them (a batch run fails instead). */
async function awaitTopics({ log, topics, logger, signal, stopAtEnd }: ArchiveOptions): Promise<void> {
  let warned = false;
  while (!signal.aborted) {
    const existing = new Set(await log.listTopics());
    const missing = topics.filter((t) => !existing.has(t));
    if (missing.length === 0) return;
    if (stopAtEnd) throw new TickflowError('UNKNOWN_TOPIC', `topic ${missing.join(', ')} does not exist (create it first)`, { topics: missing });
    if (!warned) logger.warn({ topics: missing }, 'waiting for the topics to be created');
    warned = true;
    await new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, 1000);
      signal.addEventListener('abort', () => {
        clearTimeout(timer);
        resolve();
      }, { once: true });
    });
  }
}
