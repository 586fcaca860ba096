/**
 * Dead-lettered records by reason, per partition (table `rejection_counts`), added by a
 * pipeline in the transaction that stores its offsets, so they always describe the same
 * records as `pipeline_counts`. `monitor` reads them to report late and implausible shares.
 */
import type { Queryable } from './types.ts';

/** partition → reason → records. */
export type ReasonsByPartition = Map<number, Map<string, number>>;

/** Accumulates rejections by partition and reason until a commit takes them. */
export class ReasonCounts {
  #counts: ReasonsByPartition = new Map();

  count(partition: number, reason: string): void {
    let byReason = this.#counts.get(partition);
    if (!byReason) this.#counts.set(partition, (byReason = new Map()));
    byReason.set(reason, (byReason.get(reason) ?? 0) + 1);
  }

  get pending(): boolean {
    return this.#counts.size > 0;
  }

  /** Hands over the counts so far and starts empty. */
  take(): ReasonsByPartition {
    const taken = this.#counts;
    this.#counts = new Map();
    return taken;
  }

  clear(): void {
    this.#counts = new Map();
  }
}

/** Adds counts for several partitions of one topic, inside the caller's transaction. */
export async function addRejectionCounts(tx: Queryable, consumer: string, topic: string, counts: ReasonsByPartition): Promise<void> {
  const partitions: number[] = [];
  const reasons: string[] = [];
  const records: number[] = [];
  for (const [partition, byReason] of counts) {
    for (const [reason, n] of byReason) {
      partitions.push(partition);
      reasons.push(reason);
      records.push(n);
    }
  }
  if (partitions.length === 0) return;
  await tx.query(
    `INSERT INTO rejection_counts AS c (consumer, topic, partition, reason, records)
     SELECT $1, $2, p, r, n FROM unnest($3::int[], $4::text[], $5::bigint[]) AS t(p, r, n)
     ON CONFLICT (consumer, topic, partition, reason) DO UPDATE SET records = c.records + EXCLUDED.records, updated_at = now()`,
    [consumer, topic, partitions, reasons, records],
  );
}

export interface RejectionRow {
  consumer: string;
  topic: string;
  partition: number;
  reason: string;
  records: number;
}

/** Every count (for `monitor`). */
export async function listRejectionCounts(db: Queryable): Promise<RejectionRow[]> {
  const { rows } = await db.query<{ consumer: string; topic: string; partition: number; reason: string; records: string }>(
    'SELECT consumer, topic, partition, reason, records FROM rejection_counts ORDER BY consumer, topic, partition, reason',
  );
  return rows.map((r) => ({ ...r, records: Number(r.records) }));
}
