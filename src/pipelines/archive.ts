/**
 * `archive`: every message of some topics → one row each in Postgres.
 *
 * Source: a consumer-group member whose position lives in Postgres. Sink: the
 * `archived_messages` table. Each batch's rows and the next offsets commit in one
 * transaction, so a crash at any moment leaves both or neither: the restart resumes
 * right after the last committed row. The primary key (topic, partition, offset) with
 * ON CONFLICT DO NOTHING makes replays (`--from-beginning`, a second group) harmless too.
 */
import type { Logger } from 'pino';
import { TickflowError } from '../core/errors.ts';
import { saveOffsets } from '../db/offset-store.ts';
import { BatchCounts, addCounts, resetCounts } from '../db/pipeline-counts.ts';
import type { Database } from '../db/types.ts';
import type { Log, LogRecord } from '../log/types.ts';
import { metrics } from '../observability/metrics.ts';
import { archiveRecords } from './archive-store.ts';
import { runStoredOffsetConsumer } from './stored-offset-consumer.ts';
import type { Claims, StoredOffsetSink } from './stored-offset-consumer.ts';

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
}

export interface ArchiveReport {
  read: number;
  /** New rows; read − inserted were already archived. */
  inserted: number;
}

const PIPELINE = 'archive';

export async function runArchive(options: ArchiveOptions): Promise<ArchiveReport> {
  await awaitTopics(options);
  const report: ArchiveReport = { read: 0, inserted: 0 };
  const sink: StoredOffsetSink = {
    assigned: async (claims: Claims) => {
      // Re-reading from the beginning starts the accounting over as well.
      if (!options.fromBeginning) return;
      for (const [topic, claim] of claims.topics) await resetCounts(options.db, options.group, topic, claim.partitions);
    },
    process: async (records: readonly LogRecord[], claims: Claims) => {
      const stopTimer = metrics.batchSeconds.startTimer({ pipeline: PIPELINE });
      const next = new Map<string, Map<number, bigint>>();
      const read = new Map<string, number>();
      const counts = new Map<string, BatchCounts>();
      for (const record of records) {
        let topicCounts = counts.get(record.topic);
        if (!topicCounts) counts.set(record.topic, (topicCounts = new BatchCounts()));
        topicCounts.count(record.partition, record.offset, 'accepted');
        let partitions = next.get(record.topic);
        if (!partitions) next.set(record.topic, (partitions = new Map()));
        partitions.set(record.partition, record.offset + 1n);
        read.set(record.topic, (read.get(record.topic) ?? 0) + 1);
      }
      const inserted = await options.db.transaction(async (tx) => {
        const rows = await archiveRecords(tx, records);
        for (const [topic, offsets] of next) {
          await saveOffsets(tx, options.group, topic, offsets, claims.topics.get(topic)!.generation);
          await addCounts(tx, options.group, topic, counts.get(topic)!.partitions);
        }
        return rows;
      });
      report.read += records.length;
      report.inserted += inserted;
      for (const [topic, count] of read) metrics.recordsIn.inc({ pipeline: PIPELINE, topic }, count);
      metrics.recordsOut.inc({ pipeline: PIPELINE, sink: 'archived_messages' }, inserted);
      stopTimer();
    },
  };
  await runStoredOffsetConsumer({
    log: options.log,
    db: options.db,
    group: options.group,
    topics: options.topics,
    sink,
    logger: options.logger,
    signal: options.signal,
    fromBeginning: options.fromBeginning,
    stopAtEnd: options.stopAtEnd,
  });
  return report;
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
