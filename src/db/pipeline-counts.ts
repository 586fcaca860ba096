/**
 * Per-partition accounting for sinks that keep their offsets in Postgres. A sink adds its
 * counts in the transaction that stores its offsets, so after any crash the counts and
 * the offsets agree, and `monitor` can check that every consumed record is accounted for:
 * next_offset − first_offset = accepted + invalid + late + dropped + skipped.
 */
import type { Queryable } from './types.ts';

export interface PartitionCounts {
  /** Offset of the first record this consumer ever read from the partition (kept from the first call). */
  firstOffset: bigint;
  accepted: number;
  invalid: number;
  late: number;
  /** Records deliberately discarded (e.g. filtered out); not an error. */
  dropped: number;
  /**
   * Offsets moved past that held no record for the reader: transaction markers, records of
   * aborted transactions, compacted ones (absent: none).
   */
  skipped?: number;
}

export interface CountsRow extends Omit<PartitionCounts, 'firstOffset' | 'skipped'> {
  skipped: number;
  consumer: string;
  topic: string;
  partition: number;
  firstOffset: bigint;
  /** The consumer's stored offset for the partition, read in the same snapshot; null if it keeps none. */
  nextOffset: bigint | null;
}

/** Adds counts for several partitions of one topic, inside the caller's transaction. */
export async function addCounts(tx: Queryable, consumer: string, topic: string, counts: ReadonlyMap<number, PartitionCounts>): Promise<void> {
  if (counts.size === 0) return;
  const partitions: number[] = [];
  const first: string[] = [];
  const accepted: number[] = [];
  const invalid: number[] = [];
  const late: number[] = [];
  const dropped: number[] = [];
  const skipped: number[] = [];
  for (const [partition, c] of counts) {
    partitions.push(partition);
    first.push(String(c.firstOffset));
    accepted.push(c.accepted);
    invalid.push(c.invalid);
    late.push(c.late);
    dropped.push(c.dropped);
    skipped.push(c.skipped ?? 0);
  }
  await tx.query(
    `INSERT INTO pipeline_counts AS c (consumer, topic, partition, first_offset, accepted, invalid, late, dropped, skipped)
     SELECT $1, $2, p, f, a, i, l, d, s
     FROM unnest($3::int[], $4::bigint[], $5::bigint[], $6::bigint[], $7::bigint[], $8::bigint[], $9::bigint[]) AS t(p, f, a, i, l, d, s)
     ON CONFLICT (consumer, topic, partition) DO UPDATE SET
       accepted = c.accepted + EXCLUDED.accepted,
       invalid = c.invalid + EXCLUDED.invalid,
       late = c.late + EXCLUDED.late,
       dropped = c.dropped + EXCLUDED.dropped,
       skipped = c.skipped + EXCLUDED.skipped,
       updated_at = now()`,
    [consumer, topic, partitions, first, accepted, invalid, late, dropped, skipped],
  );
}

/** Forgets the counts of some partitions (a consumer that rewinds starts its accounting over). */
export async function resetCounts(db: Queryable, consumer: string, topic: string, partitions: readonly number[]): Promise<void> {
  await db.query('DELETE FROM pipeline_counts WHERE consumer = $1 AND topic = $2 AND partition = ANY($3::int[])', [consumer, topic, [...partitions]]);
}

/**
 * Counts by consumer, topic and partition (for `monitor`), each with the stored offset it
 * must reconcile with. One statement, so one snapshot: the sink commits its counts and its
 * offset together, and reading them in two statements could put a commit between them
 * (counts that include a batch the offset read before it does not: a false "extra").
 */
export async function listCounts(db: Queryable): Promise<CountsRow[]> {
  const { rows } = await db.query<{
    consumer: string;
    topic: string;
    partition: number;
    first_offset: string;
    accepted: string;
    invalid: string;
    late: string;
    dropped: string;
    skipped: string;
    next_offset: string | null;
  }>(
    `SELECT c.consumer, c.topic, c.partition, c.first_offset, c.accepted, c.invalid, c.late, c.dropped, c.skipped, o.next_offset
     FROM pipeline_counts c
     LEFT JOIN stored_offsets o ON o.consumer = c.consumer AND o.topic = c.topic AND o.partition = c.partition
     ORDER BY c.consumer, c.topic, c.partition`,
  );
  return rows.map((r) => ({
    consumer: r.consumer,
    topic: r.topic,
    partition: r.partition,
    firstOffset: BigInt(r.first_offset),
    accepted: Number(r.accepted),
    invalid: Number(r.invalid),
    late: Number(r.late),
    dropped: Number(r.dropped),
    skipped: Number(r.skipped),
    nextOffset: r.next_offset === null ? null : BigInt(r.next_offset),
  }));
}

/** Accumulates counts for one batch, then hands them to addCounts. */
export class BatchCounts {
  readonly #byPartition = new Map<number, PartitionCounts>();

  #entry(partition: number, offset: bigint): PartitionCounts {
    let entry = this.#byPartition.get(partition);
    if (!entry) this.#byPartition.set(partition, (entry = { firstOffset: offset, accepted: 0, invalid: 0, late: 0, dropped: 0, skipped: 0 }));
    return entry;
  }

  /** Notes a record was read (fixes the partition's first offset) without counting an outcome. */
  observe(partition: number, offset: bigint): void {
    this.#entry(partition, offset);
  }

  count(partition: number, offset: bigint, outcome: 'accepted' | 'invalid' | 'late' | 'dropped'): void {
    this.#entry(partition, offset)[outcome]++;
  }

  /** Counts `n` records of one outcome at once (a run of records starting at `offset`). */
  add(partition: number, offset: bigint, outcome: 'accepted' | 'invalid' | 'late' | 'dropped', n: number): void {
    this.#entry(partition, offset)[outcome] += n;
  }

  /** Counts `n` offsets from `offset` on that held no record for the reader (transaction markers, aborted records). */
  skip(partition: number, offset: bigint, n: number): void {
    const entry = this.#entry(partition, offset);
    entry.skipped = (entry.skipped ?? 0) + n;
  }

  get partitions(): ReadonlyMap<number, PartitionCounts> {
    return this.#byPartition;
  }

  clear(): void {
    this.#byPartition.clear();
  }

  /** Hands over the counts so far and starts empty. */
  take(): Map<number, PartitionCounts> {
    const taken = new Map(this.#byPartition);
    this.#byPartition.clear();
    return taken;
  }
}
