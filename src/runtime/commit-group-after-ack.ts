/**
 * Commit strategy kafka-group-after-ack (commit-strategy.ts): the consumer group keeps the
 * offsets, and a commit stores them only after every output and side record emitted
 * before them is acknowledged by the brokers. At least once, nothing lost: a crash between
 * the acknowledgement and the commit re-reads those records, which emit the same outputs
 * again. No database, no fencing (a member that lost its partitions commits offsets it has
 * fully emitted: at worst the new owner re-reads).
 */
import type { GroupConsumer, Log, TopicPartitionOffset } from '../log/types.ts';
import type { Claimed, ClaimRequest, CommitOffsets, Committer, CommitterContext, CommitUnit } from './commit-strategy.ts';
import { NO_DATABASE } from './commit-strategy.ts';

export class GroupAfterAckCommitter<Checkpoint> implements Committer<Checkpoint> {
  readonly kind: 'kafka-group-after-ack' | 'output-derived' = 'kafka-group-after-ack';
  readonly boundedWithoutGroup = true;
  protected readonly context: CommitterContext<Checkpoint>;

  constructor(context: CommitterContext<Checkpoint>) {
    this.context = context;
  }

  async claim({ partitions, earliest, fromBeginning }: ClaimRequest): Promise<Claimed[]> {
    const claimed = await groupPositions(this.context.log, this.context.group, partitions, earliest, fromBeginning);
    await this.context.processor.assign(NO_DATABASE, claimed);
    return claimed;
  }

  offsets(processed: CommitOffsets): CommitOffsets {
    return processed;
  }

  async commit(unit: CommitUnit<Checkpoint>, consumer: GroupConsumer | null): Promise<number> {
    // Without a membership (stopping, rejoining) the group keeps its last offsets: those
    // records are read again (at least once).
    if (consumer === null) return 0;
    const offsets: TopicPartitionOffset[] = [];
    for (const [topic, { next }] of unit.offsets) for (const [partition, offset] of next) offsets.push({ topic, partition, offset });
    if (offsets.length > 0) await consumer.commit(offsets);
    return 0;
  }
}

/** Where assigned partitions resume from the group's committed offsets (earliest without one, or when retention removed it). */
export async function groupPositions(
  log: Log,
  group: string,
  partitions: ReadonlyMap<string, readonly number[]>,
  earliest: ReadonlyMap<string, ReadonlyMap<number, bigint>>,
  fromBeginning: boolean,
): Promise<Claimed[]> {
  const claimed: Claimed[] = [];
  for (const [topic, list] of partitions) {
    const committed = fromBeginning ? new Map<number, bigint>() : await log.committed(group, topic);
    const starts = earliest.get(topic)!;
    const offsets = new Map(list.map((p) => {
      const start = starts.get(p) ?? 0n;
      const stored = committed.get(p);
      return [p, stored !== undefined && stored > start ? stored : start] as const;
    }));
    claimed.push({ topic, partitions: list, offsets, generation: 0 });
  }
  return claimed;
}
