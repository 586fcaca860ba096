/**
 * Snapshots of unique-users' open windows (table unique_users_state; docs/users.md,
 * "Durable state"). A snapshot is written in the PostgreSQL transaction the runtime runs
 * before the Kafka transaction that names it (checkpointDb); writing it again (a retried
 * transaction) replaces it. A snapshot may be a delta on the one its writer wrote before
 * (`parent`): it is read back with its parents down to a full one (`readStateChain`). The
 * chain of the snapshot written before stays, since a crash before this one's Kafka commit
 * leaves the committed offsets naming that one; older snapshots of the same partition set
 * go in the same transaction.
 */
import { Buffer } from 'node:buffer';
import type { Queryable } from './types.ts';

export interface StateSnapshotRow {
  group: string;
  topic: string;
  id: string;
  /** Per input partition, the next offset whose frame the state does not hold. */
  positions: ReadonlyMap<number, bigint>;
  windows: number;
  state: Uint8Array;
  /** The snapshot this one is a delta on (null: a full one). */
  parent: string | null;
  /** The first snapshot of the chain this writer wrote (or resumed from) last: it and later ones are kept, older ones of the same partitions deleted. */
  keepFrom: string | null;
}

export async function writeStateSnapshot(tx: Queryable, row: StateSnapshotRow): Promise<void> {
  const partitions = [...row.positions.keys()].sort((a, b) => a - b);
  await tx.query(
    `INSERT INTO unique_users_state (consumer_group, topic, snapshot_id, partitions, positions, windows, state, parent_id)
     VALUES ($1, $2, $3, $4::int[], $5::bigint[], $6, $7, $8)
     ON CONFLICT (consumer_group, topic, snapshot_id) DO UPDATE SET
       partitions = EXCLUDED.partitions, positions = EXCLUDED.positions, windows = EXCLUDED.windows, state = EXCLUDED.state, parent_id = EXCLUDED.parent_id, taken_at = now()`,
    [row.group, row.topic, row.id, partitions, partitions.map((p) => String(row.positions.get(p)!)), row.windows, Buffer.from(row.state.buffer, row.state.byteOffset, row.state.byteLength), row.parent],
  );
  if (row.keepFrom === null) return;
  await tx.query(
    `DELETE FROM unique_users_state
      WHERE consumer_group = $1 AND topic = $2 AND partitions = $3::int[]
        AND seq < (SELECT seq FROM unique_users_state WHERE consumer_group = $1 AND topic = $2 AND snapshot_id = $4)`,
    [row.group, row.topic, partitions, row.keepFrom],
  );
}

export interface StoredStateSnapshot {
  id: string;
  positions: Map<number, bigint>;
  windows: number;
  state: Uint8Array;
  /** The snapshot it is a delta on (null: full). */
  parent: string | null;
}

/** The snapshot of that id, or null when there is none. */
export async function readStateSnapshot(db: Queryable, group: string, topic: string, id: string): Promise<StoredStateSnapshot | null> {
  const { rows } = await db.query<{ partitions: number[]; positions: string[]; windows: number; state: Uint8Array; parent_id: string | null }>(
    'SELECT partitions, positions::text[] AS positions, windows, state, parent_id FROM unique_users_state WHERE consumer_group = $1 AND topic = $2 AND snapshot_id = $3',
    [group, topic, id],
  );
  const row = rows[0];
  if (row === undefined) return null;
  return { id, positions: new Map(row.partitions.map((p, i) => [p, BigInt(row.positions[i])])), windows: row.windows, state: row.state, parent: row.parent_id };
}

/**
 * The snapshot of that id and the ones it builds on, oldest (a full one) first; null when
 * it is not there, or a parent is missing.
 */
export async function readStateChain(db: Queryable, group: string, topic: string, id: string): Promise<StoredStateSnapshot[] | null> {
  const chain: StoredStateSnapshot[] = [];
  for (let next: string | null = id; next !== null;) {
    const link = await readStateSnapshot(db, group, topic, next);
    if (link === null || chain.some((c) => c.id === link.id)) return null;
    chain.push(link);
    next = link.parent;
  }
  return chain.reverse();
}
