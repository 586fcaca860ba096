/**
 * Commit strategy pg-transaction: rows + state + offsets + accounting in ONE PostgreSQL
 * transaction (commit-strategy.ts). Exactly once into PostgreSQL: after any crash,
 * rebalance or outage a member resumes exactly where that transaction left off.
 *
 * - claim: a fresh fencing generation for the partitions in `stored_offsets`, their stored
 *   offsets and the processor's state, read in the same transaction;
 * - commit: the offsets first (a newer owner makes it fail FENCED and roll back), then the
 *   counts and the processor's checkpoint; a retry after a lost COMMIT answer first looks
 *   for the commit's id, so nothing is written twice.
 */
import { isTickflowError } from '../core/errors.ts';
import { claimInTransaction, commitLanded, saveOffsets } from '../db/offset-store.ts';
import { addCounts, resetCounts } from '../db/pipeline-counts.ts';
import type { Database, Queryable } from '../db/types.ts';
import { withRetries } from '../observability/retry.ts';
import type { Claimed, ClaimRequest, CommitOffsets, Committer, CommitterContext, CommitUnit } from './commit-strategy.ts';

export class PgTransactionCommitter<Checkpoint> implements Committer<Checkpoint> {
  readonly kind = 'pg-transaction';
  readonly boundedWithoutGroup = false;
  readonly #db: Database;
  readonly #context: CommitterContext<Checkpoint>;

  constructor(db: Database, context: CommitterContext<Checkpoint>) {
    this.#db = db;
    this.#context = context;
  }

  async claim({ partitions, earliest, fromBeginning }: ClaimRequest): Promise<Claimed[]> {
    const { group, processor, signal } = this.#context;
    return withRetries('postgres', `claim partitions of ${[...partitions.keys()].join(',') || 'nothing'} for ${group}`, () =>
      this.#db.transaction(async (tx) => {
        const claimed: Claimed[] = [];
        for (const [topic, list] of partitions) {
          const starts = earliest.get(topic)!;
          const claim = await claimInTransaction(tx, group, topic, list, starts);
          if (fromBeginning) await resetCounts(tx, group, topic, list);
          const offsets = new Map(list.map((p) => [p, fromBeginning ? (starts.get(p) ?? 0n) : (claim.offsets.get(p) ?? starts.get(p) ?? 0n)]));
          claimed.push({ topic, partitions: list, offsets, generation: claim.generation });
        }
        await processor.assign(tx, claimed);
        return claimed;
      }), { signal, isRetriable: isRetriableDbError });
  }

  offsets(processed: CommitOffsets): CommitOffsets {
    return processed;
  }

  /** `last`: run inside the transaction after everything else, before COMMIT (a Kafka commit). */
  async commit(unit: CommitUnit<Checkpoint>, _consumer?: unknown, last?: () => Promise<void>): Promise<number> {
    const { group, processor, pipeline, signal } = this.#context;
    const what = [...unit.offsets.keys()].join(',') || 'state';
    let attempts = 0;
    return withRetries('postgres', `commit ${pipeline} offsets of ${what}`, () =>
      this.#db.transaction(async (tx: Queryable) => {
        // A retry after a lost answer: the first attempt may have committed.
        if (attempts++ > 0 && (await commitLanded(tx, group, unit.id))) return 0;
        // Offsets first: a fenced commit fails before writing anything else.
        for (const [topic, { generation, next }] of unit.offsets) await saveOffsets(tx, group, topic, next, generation, unit.id);
        for (const [topic, counts] of unit.counts) await addCounts(tx, group, topic, counts);
        const rows = unit.checkpoint === null ? 0 : await processor.write(tx, unit.checkpoint);
        await last?.();
        return rows;
      }), { signal, isRetriable: isRetriableDbError });
  }
}

/** A rolled-back transaction is safe to run again when the database went away or lost a race. */
export function isRetriableDbError(error: unknown): boolean {
  if (!isTickflowError(error)) return false;
  if (error.retriable) return true;
  return error.code === 'DB_ERROR' && ['40001', '40P01'].includes(String(error.details.code));
}
