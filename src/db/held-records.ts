/**
 * Records held back by a pipeline's guards (a price waiting for its symbol's level, an
 * event time ahead of its stream), table `held_records`: their offsets are committed, so
 * the records are kept byte for byte in the same transaction, to be counted or
 * dead-lettered after a restart exactly as without it.
 */
import type { LogRecord } from '../log/types.ts';
import type { Queryable } from './types.ts';

interface HeldRow {
  partition: number;
  offset: string;
  record_time: string;
  key: Buffer | null;
  value: Buffer | null;
  headers: Array<[string, string]>;
}

/** The held records of these partitions, by partition, in offset order. */
export async function loadHeldRecords(tx: Queryable, consumer: string, topic: string, partitions: readonly number[]): Promise<Map<number, LogRecord[]>> {
  const held = new Map<number, LogRecord[]>(partitions.map((p) => [p, []]));
  if (partitions.length === 0) return held;
  const { rows } = await tx.query<HeldRow>(
    `SELECT partition, "offset", record_time, key, value, headers FROM held_records
     WHERE consumer = $1 AND topic = $2 AND partition = ANY($3::int[]) ORDER BY partition, "offset"`,
    [consumer, topic, [...partitions]],
  );
  for (const row of rows) {
    held.get(row.partition)?.push({
      topic,
      partition: row.partition,
      offset: BigInt(row.offset),
      timestamp: BigInt(row.record_time),
      key: row.key,
      value: row.value,
      headers: row.headers.map(([name, value]) => [name, Buffer.from(value, 'base64')] as const),
    });
  }
  return held;
}

/** Replaces the held records of the given partitions with these (inside the caller's transaction). */
export async function replaceHeldRecords(tx: Queryable, consumer: string, topic: string, held: ReadonlyMap<number, readonly LogRecord[]>): Promise<void> {
  if (held.size === 0) return;
  await tx.query('DELETE FROM held_records WHERE consumer = $1 AND topic = $2 AND partition = ANY($3::int[])', [consumer, topic, [...held.keys()]]);
  const records = [...held.values()].flat();
  if (records.length === 0) return;
  await tx.query(
    `INSERT INTO held_records (consumer, topic, partition, "offset", record_time, key, value, headers)
     SELECT $1, $2, * FROM unnest($3::int[], $4::bigint[], $5::bigint[], $6::bytea[], $7::bytea[], $8::jsonb[])`,
    [
      consumer,
      topic,
      records.map((r) => r.partition),
      records.map((r) => String(r.offset)),
      records.map((r) => String(r.timestamp)),
      records.map((r) => r.key),
      records.map((r) => r.value),
      records.map((r) => JSON.stringify(r.headers.map(([name, value]) => [name, value.toString('base64')]))),
    ],
  );
}
