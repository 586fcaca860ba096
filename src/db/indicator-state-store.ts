/**
 * Where `indicators` keeps its per-symbol state: table `indicator_state`, one row per
 * (consumer group, topic, partition, symbol), written in the transaction that also
 * saves the consumer's offsets.
 */
import type { IndicatorSnapshot } from '../core/indicators.ts';
import type { PriceLevelSnapshot } from '../core/price-level.ts';
import type { Queryable } from './types.ts';

/** A symbol's indicators and its price level; waiting prices name their record by offset (in held_records). */
export type KeptSymbol = IndicatorSnapshot & { readonly level?: PriceLevelSnapshot<string> };

export interface KeptState {
  partition: number;
  symbol: string;
  snapshot: KeptSymbol;
}

export async function loadIndicatorStates(db: Queryable, consumer: string, topic: string, partitions: readonly number[]): Promise<KeptState[]> {
  if (partitions.length === 0) return [];
  const { rows } = await db.query<{ partition: number; symbol: string; state: KeptSymbol }>(
    'SELECT partition, symbol, state FROM indicator_state WHERE consumer = $1 AND topic = $2 AND partition = ANY($3::int[])',
    [consumer, topic, partitions],
  );
  return rows.map((row) => ({ partition: row.partition, symbol: row.symbol, snapshot: row.state }));
}

/** Upserts the given states in one statement (inside the caller's transaction). */
export async function saveIndicatorStates(tx: Queryable, consumer: string, topic: string, states: readonly KeptState[]): Promise<void> {
  if (states.length === 0) return;
  await tx.query(
    `INSERT INTO indicator_state (consumer, topic, partition, symbol, state, updated_at)
     SELECT $1, $2, p, s, st, now() FROM unnest($3::int[], $4::text[], $5::jsonb[]) AS t(p, s, st)
     ON CONFLICT (consumer, topic, partition, symbol) DO UPDATE SET state = EXCLUDED.state, updated_at = EXCLUDED.updated_at`,
    [consumer, topic, states.map((s) => s.partition), states.map((s) => s.symbol), states.map((s) => JSON.stringify(s.snapshot))],
  );
}
