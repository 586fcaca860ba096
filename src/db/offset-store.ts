/**
 * Consumed offsets kept in Postgres, for sinks that are exactly-once by committing their
 * output rows and their position in ONE transaction: on restart or rebalance they resume
 * from `loadOffsets`, never from the broker's committed offsets.
 *
 * Fencing: every write carries a generation (a fencing token — the consumer group's
 * generation id, or the one `claimPartitions` hands out). A row written by a newer
 * generation can never be overwritten by an older one; the older writer gets FENCED,
 * its transaction rolls back with its output, and it must stop and rejoin.
 */
import { TickflowError } from '../core/errors.ts';
import type { Database, Queryable } from './types.ts';

export interface StoredOffset {
  consumer: string;
  topic: string;
  partition: number;
  nextOffset: bigint;
  generation: number;
  updatedAt: Date;
}

interface OffsetRow {
  partition: number;
  next_offset: string; // int8 arrives as a string (see types.ts)
  generation: number;
}

/** The next offset to read, per partition that has one stored. */
export async function loadOffsets(db: Queryable, consumer: string, topic: string): Promise<Map<number, bigint>> {
  const { rows } = await db.query<OffsetRow>(
    'SELECT partition, next_offset FROM stored_offsets WHERE consumer = $1 AND topic = $2',
    [consumer, topic],
  );
  return new Map(rows.map((row) => [row.partition, BigInt(row.next_offset)]));
}

/**
 * Upserts the offsets inside the caller's transaction, in one statement: the
 * `WHERE generation <= EXCLUDED.generation` guard and the affected-row count do the
 * fencing check with no read-then-write window. Throws FENCED if any partition is
 * held by a newer generation (the caller's transaction must then roll back).
 */
export async function saveOffsets(tx: Queryable, consumer: string, topic: string, offsets: Map<number, bigint>, generation: number, commitId: string | null = null): Promise<void> {
  if (offsets.size === 0) return;
  const partitions = [...offsets.keys()];
  const nextOffsets = [...offsets.values()].map(String); // pg cannot bind a bigint; text casts exactly
  const { rowCount } = await tx.query(
    `INSERT INTO stored_offsets AS s (consumer, topic, partition, next_offset, generation, updated_at, commit_id)
     SELECT $1, $2, p, o, $5, now(), $6 FROM unnest($3::int[], $4::bigint[]) AS t(p, o)
     ON CONFLICT (consumer, topic, partition) DO UPDATE
       SET next_offset = EXCLUDED.next_offset, generation = EXCLUDED.generation, updated_at = EXCLUDED.updated_at, commit_id = EXCLUDED.commit_id
       WHERE s.generation <= EXCLUDED.generation`,
    [consumer, topic, partitions, nextOffsets, generation, commitId],
  );
  if (rowCount === offsets.size) return;
  const { rows } = await tx.query<OffsetRow>(
    `SELECT partition, generation FROM stored_offsets
     WHERE consumer = $1 AND topic = $2 AND partition = ANY($3::int[]) AND generation > $4`,
    [consumer, topic, partitions, generation],
  );
  const newer = rows.map((row) => `${row.partition} (generation ${row.generation})`).join(', ');
  throw new TickflowError(
    'FENCED',
    `consumer ${consumer} on ${topic} is fenced at generation ${generation}: partitions ${newer} belong to a newer instance; stop and rejoin`,
    { consumer, topic, generation, fencedBy: rows.map((row) => ({ partition: row.partition, generation: row.generation })) },
  );
}

/**
 * For callers without a trustworthy group generation (the embedded log, a group whose
 * generation restarts from 0): takes over `partitions` with a fresh generation, higher
 * than any stored for this consumer and topic, and returns it with their offsets. From
 * then on an older owner's `saveOffsets` on those partitions is FENCED. Partitions with
 * no stored row get one in the same transaction, at `initial` (where the new owner will
 * start, e.g. the log start), so an older owner's first save on them is fenced too.
 * Without `initial` such partitions stay unstored until the first save.
 */
export async function claimPartitions(
  db: Database,
  consumer: string,
  topic: string,
  partitions: number[],
  initial?: ReadonlyMap<number, bigint>,
): Promise<{ generation: number; offsets: Map<number, bigint> }> {
  return db.transaction((tx) => claimInTransaction(tx, consumer, topic, partitions, initial));
}

/**
 * The claim itself, inside the caller's transaction, so a runtime can load the state it
 * keeps for the same partitions in that transaction: offsets and state then describe
 * the same moment.
 */
export async function claimInTransaction(
  tx: Queryable,
  consumer: string,
  topic: string,
  partitions: readonly number[],
  initial?: ReadonlyMap<number, bigint>,
): Promise<{ generation: number; offsets: Map<number, bigint> }> {
  // Serialise claims on this consumer/topic so two claimers can never get the same token.
  await tx.query('SELECT pg_advisory_xact_lock(hashtext($1), hashtext($2))', [consumer, topic]);
  const { rows } = await tx.query<{ generation: number }>(
    'SELECT coalesce(max(generation), 0) + 1 AS generation FROM stored_offsets WHERE consumer = $1 AND topic = $2',
    [consumer, topic],
  );
  const generation = rows[0].generation;
  // A row being written by a previous owner's open transaction makes this wait for it, so
  // what is read below includes everything it committed and nothing after.
  await tx.query(
    'UPDATE stored_offsets SET generation = $4 WHERE consumer = $1 AND topic = $2 AND partition = ANY($3::int[])',
    [consumer, topic, [...partitions], generation],
  );
  const missing = partitions.filter((p) => initial?.has(p));
  if (missing.length > 0) {
    await tx.query(
      `INSERT INTO stored_offsets (consumer, topic, partition, next_offset, generation)
       SELECT $1, $2, p, o, $5 FROM unnest($3::int[], $4::bigint[]) AS t(p, o)
       ON CONFLICT (consumer, topic, partition) DO NOTHING`,
      [consumer, topic, missing, missing.map((p) => String(initial!.get(p))), generation],
    );
  }
  const offsets = await loadOffsets(tx, consumer, topic);
  for (const partition of offsets.keys()) if (!partitions.includes(partition)) offsets.delete(partition);
  return { generation, offsets };
}

/** Whether a commit with this id has landed (its offsets rows carry it until the next commit). */
export async function commitLanded(tx: Queryable, consumer: string, commitId: string): Promise<boolean> {
  const { rows } = await tx.query('SELECT 1 FROM stored_offsets WHERE consumer = $1 AND commit_id = $2 LIMIT 1', [consumer, commitId]);
  return rows.length > 0;
}

/** Every stored position, for `monitor` and lag reports. */
export async function listStoredOffsets(db: Queryable): Promise<StoredOffset[]> {
  const { rows } = await db.query<OffsetRow & { consumer: string; topic: string; updated_at: Date }>(
    'SELECT consumer, topic, partition, next_offset, generation, updated_at FROM stored_offsets ORDER BY consumer, topic, partition',
  );
  return rows.map((row) => ({
    consumer: row.consumer,
    topic: row.topic,
    partition: row.partition,
    nextOffset: BigInt(row.next_offset),
    generation: row.generation,
    updatedAt: row.updated_at,
  }));
}
