/**
 * Commit strategy output-derived (commit-strategy.ts), for a processor that holds windows
 * open across many records and emits each window once (unique-users' minutes):
 *
 * - commit: per partition, the lowest offset that state not yet emitted still needs
 *   (`processor.neededOffsets()`, taken with the outputs of the same unit), not the read
 *   position, once those outputs are acknowledged. A restart re-reads what is still open.
 * - claim: before every assignment, the newest record of each partition of the output
 *   topic goes to `processor.resume()`, which skips what an earlier run (or this one,
 *   before a rebalance) already emitted.
 *
 * So a restart after Ctrl-C, a crash or a rebalance neither loses nor repeats an output.
 * Side records (late, dead letters) are at least once: a re-read record is sent again.
 */
import { TickflowError } from '../core/errors.ts';
import type { Log, LogRecord } from '../log/types.ts';
import type { Claimed, ClaimRequest, CommitOffsets, CommitterContext } from './commit-strategy.ts';
import { NO_DATABASE } from './commit-strategy.ts';
import { GroupAfterAckCommitter, groupPositions } from './commit-group-after-ack.ts';

export class OutputDerivedCommitter<Checkpoint> extends GroupAfterAckCommitter<Checkpoint> {
  override readonly kind = 'output-derived';
  readonly #outputTopic: string | null;

  constructor(outputTopic: string | null, context: CommitterContext<Checkpoint>) {
    super(context);
    const { processor } = context;
    if (!processor.neededOffsets || !processor.resume) {
      throw new TickflowError('INTERNAL', `${context.pipeline}: the output-derived commit strategy needs a processor with neededOffsets() and resume()`);
    }
    this.#outputTopic = outputTopic;
  }

  override async claim({ partitions, earliest, fromBeginning }: ClaimRequest): Promise<Claimed[]> {
    const { log, group, processor, signal } = this.context;
    const claimed = await groupPositions(log, group, partitions, earliest, fromBeginning);
    processor.resume!(this.#outputTopic === null ? [] : await newestRecords(log, this.#outputTopic, signal));
    await processor.assign(NO_DATABASE, claimed);
    return claimed;
  }

  override offsets(processed: CommitOffsets): CommitOffsets {
    const lowered: CommitOffsets = new Map();
    for (const [topic, { generation, next }] of processed) lowered.set(topic, { generation, next: new Map(next) });
    for (const { topic, partition, offset } of this.context.processor.neededOffsets!()) {
      const next = lowered.get(topic)?.next;
      const at = next?.get(partition);
      if (next && at !== undefined && offset < at) next.set(partition, offset);
    }
    return lowered;
  }
}

/**
 * The last record of every partition of `topic` (none for an empty partition). A topic
 * written in transactions ends in commit markers and may hold aborted records, which a
 * read_committed read skips: the read starts a few offsets before the end and goes further
 * back until it finds a record.
 */
export async function newestRecords(log: Log, topic: string, signal: AbortSignal): Promise<LogRecord[]> {
  const newest: LogRecord[] = [];
  for (const p of await log.offsets(topic)) {
    let last: LogRecord | null = null;
    for (let back = 1n, end = p.latest; last === null && end > p.earliest; back *= 16n) {
      const start = end - back > p.earliest ? end - back : p.earliest;
      const from = new Map([[p.partition, start]]);
      const to = new Map([[p.partition, end]]);
      for await (const batch of log.readRange({ topic, partitions: [p.partition], from, to, signal })) if (batch.length > 0) last = batch.at(-1)!;
      end = start;
    }
    if (last !== null) newest.push(last);
  }
  return newest;
}
