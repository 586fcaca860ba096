/**
 * Commit strategy kafka-transaction (commit-strategy.ts): a unit's outputs, dead letters and
 * consumed offsets (TxnOffsetCommit) in ONE Kafka transaction. Exactly once for
 * read_committed readers: after any crash the transaction either committed (outputs and
 * offsets both) or is aborted (neither), and a restart resumes at the committed offsets.
 *
 * - Transactional id: `<pipeline>-<group>-<topic>-<partitions>`, one per input partition set,
 *   stable across restarts. Every claim takes it over (InitProducerId): a new epoch fences a
 *   zombie holding the same id (its later writes are refused, its open transaction aborted).
 * - A unit's sends wait for the previous unit's commit (the task asks `producer()`), so a
 *   transaction holds exactly one unit's outputs.
 * - With a database (the processor keeps its state in PostgreSQL: indicators): the
 *   PostgreSQL transaction of pg-transaction — offsets fenced by the claim generation,
 *   accounting, the checkpoint — closes AROUND the Kafka commit: its writes first (a fenced
 *   member fails there and aborts the Kafka transaction), then the Kafka commit, then
 *   COMMIT. The rows it locks make a new owner's claim wait for it, and the claim reads the
 *   Kafka offsets after it. A crash between the Kafka commit and COMMIT leaves PostgreSQL one
 *   unit behind Kafka: the claim sees it (Kafka's committed offset above PostgreSQL's) and
 *   the task processes those records again silently (`published`), rebuilding the state
 *   without sending their outputs twice (the processor is deterministic).
 * - Errors: a producer fenced by a newer one stops the member (FENCED, one line); other
 *   failures are retried by the coordinator calls until --retry-for, then the transaction is
 *   aborted and the run fails: a restart redoes the unit from the committed state.
 */
import { TickflowError } from '../core/errors.ts';
import type { Database } from '../db/types.ts';
import { isProducerFenced } from '../log/kafka-transaction.ts';
import type { GroupConsumer, Producer, RecordToProduce, TopicPartitionOffset, TransactionalProducer } from '../log/types.ts';
import { groupPositions } from './commit-group-after-ack.ts';
import { PgTransactionCommitter } from './commit-pg-transaction.ts';
import type { Claimed, ClaimRequest, Committer, CommitterContext, CommitUnit } from './commit-strategy.ts';
import { NO_DATABASE } from './commit-strategy.ts';

export class KafkaTransactionCommitter<Checkpoint> implements Committer<Checkpoint> {
  readonly kind = 'kafka-transaction';
  readonly boundedWithoutGroup: boolean;
  readonly #context: CommitterContext<Checkpoint>;
  readonly #pg: PgTransactionCommitter<Checkpoint> | null;
  #current: TransactionalProducer | null = null;

  constructor(db: Database | null, context: CommitterContext<Checkpoint>) {
    if (!context.log.transactionalProducer) {
      const log = context.log.kind === 'memory' ? 'the embedded log' : `the ${context.log.kind} log`;
      throw new TickflowError('BAD_CONFIG', `${context.pipeline}: exactly once needs Kafka transactions, which ${log} does not have (connect to Kafka, or commit at least once)`);
    }
    this.#context = context;
    this.#pg = db === null ? null : new PgTransactionCommitter(db, context);
    this.boundedWithoutGroup = db === null;
  }

  /** The transactional id of a partition set: stable across restarts, one per set. */
  static transactionalId(pipeline: string, group: string, partitions: ReadonlyMap<string, readonly number[]>): string {
    const sets = [...partitions].sort(([a], [b]) => a.localeCompare(b)).map(([topic, list]) => `${topic}-${[...list].sort((a, b) => a - b).join('.')}`);
    return `tickflow-${pipeline}-${group}-${sets.join('-') || 'none'}`;
  }

  async claim(request: ClaimRequest): Promise<Claimed[]> {
    const { log, group, pipeline, processor } = this.#context;
    const id = KafkaTransactionCommitter.transactionalId(pipeline, group, request.partitions);
    if (this.#current?.transactionalId !== id) {
      await this.#current?.close().catch(() => undefined);
      this.#current = log.transactionalProducer!(id);
    }
    // A new epoch: fences a zombie of this id and ends its transaction (completes one it
    // prepared to commit, aborts one still open) before the offsets are read.
    await this.#current.init();
    if (!this.#pg) {
      const claimed = await groupPositions(log, group, request.partitions, request.earliest, request.fromBeginning);
      await processor.assign(NO_DATABASE, claimed);
      return claimed;
    }
    // PostgreSQL first: the claim waits for a previous owner's open commit, whose Kafka
    // offsets are then final.
    const claimed = await this.#pg.claim(request);
    if (request.fromBeginning) return claimed;
    return Promise.all(claimed.map(async (claim) => {
      const inKafka = await log.committed(group, claim.topic);
      const published = new Map<number, bigint>();
      for (const p of claim.partitions) {
        const at = inKafka.get(p);
        if (at !== undefined && at > claim.offsets.get(p)!) published.set(p, at);
      }
      return published.size > 0 ? { ...claim, published } : claim;
    }));
  }

  offsets(processed: Map<string, { generation: number; next: Map<number, bigint> }>) {
    return processed;
  }

  async commit(unit: CommitUnit<Checkpoint>, consumer: GroupConsumer | null): Promise<number> {
    const producer = this.#current;
    if (!producer) return 0; // nothing claimed, nothing sent
    const offsets: TopicPartitionOffset[] = [];
    // Without a database the group keeps the offsets: none for a bounded run without the group.
    const storesOffsets = this.#pg !== null || consumer !== null;
    if (storesOffsets) for (const [topic, { next }] of unit.offsets) for (const [partition, offset] of next) offsets.push({ topic, partition, offset });
    let committed = false;
    const commitKafka = async () => {
      if (committed) return; // a retried PostgreSQL transaction: the Kafka one is done
      await this.#commitKafka(producer, offsets);
      committed = true;
    };
    if (!this.#pg) {
      await commitKafka();
      return 0;
    }
    return this.#pg.commit(unit, null, commitKafka);
  }

  async #commitKafka(producer: TransactionalProducer, offsets: TopicPartitionOffset[]): Promise<void> {
    const { group, pipeline } = this.#context;
    try {
      await producer.commit(offsets.length > 0 ? { group, offsets } : undefined);
    } catch (error) {
      if (isProducerFenced(error)) throw error;
      await producer.abort();
      throw new TickflowError('LOG_ERROR', `${pipeline}: Kafka transaction ${producer.transactionalId} aborted (${error instanceof Error ? error.message : String(error)}); a restart redoes it from the committed offsets`, { transactionalId: producer.transactionalId }, { cause: error });
    }
  }

  producer(): Producer {
    const current = async () => {
      if (!this.#current) {
        // A bounded run without the group claims nothing: one id for the whole run.
        const { log, pipeline, group } = this.#context;
        this.#current = log.transactionalProducer!(KafkaTransactionCommitter.transactionalId(pipeline, group, new Map()));
        await this.#current.init();
      }
      return this.#current;
    };
    return {
      send: async (topic: string, records: readonly RecordToProduce[]) => (await current()).send(topic, records),
      close: async () => {
        await this.#current?.close();
        this.#current = null;
      },
    };
  }
}
