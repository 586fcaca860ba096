/**
 * Where pipelines keep the event-time guard of each partition they read (table
 * `event_time_guards`): the guard's snapshot as JSON, its held records named by offset
 * (the records themselves are in `held_records`), written in the transaction that also
 * saves the partition's offsets.
 */
import type { EventTimeGuardSnapshot } from '../core/event-time-guard.ts';
import type { Queryable } from './types.ts';

/** A guard's snapshot whose held items are the offsets of their records (decimal strings). */
export type KeptGuard = EventTimeGuardSnapshot<string>;

export async function loadEventTimeGuards(tx: Queryable, consumer: string, topic: string, partitions: readonly number[]): Promise<Map<number, KeptGuard>> {
  const guards = new Map<number, KeptGuard>();
  if (partitions.length === 0) return guards;
  const { rows } = await tx.query<{ partition: number; state: KeptGuard }>(
    'SELECT partition, state FROM event_time_guards WHERE consumer = $1 AND topic = $2 AND partition = ANY($3::int[])',
    [consumer, topic, [...partitions]],
  );
  for (const row of rows) guards.set(row.partition, row.state);
  return guards;
}

/** Upserts the guards of the given partitions (inside the caller's transaction). */
export async function saveEventTimeGuards(tx: Queryable, consumer: string, topic: string, guards: ReadonlyMap<number, KeptGuard>): Promise<void> {
  if (guards.size === 0) return;
  await tx.query(
    `INSERT INTO event_time_guards (consumer, topic, partition, state, updated_at)
     SELECT $1, $2, p, st, now() FROM unnest($3::int[], $4::jsonb[]) AS t(p, st)
     ON CONFLICT (consumer, topic, partition) DO UPDATE SET state = EXCLUDED.state, updated_at = EXCLUDED.updated_at`,
    [consumer, topic, [...guards.keys()], [...guards.values()].map((g) => JSON.stringify(g))],
  );
}
