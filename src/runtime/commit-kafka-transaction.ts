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
 * - Resume points (a processor holding windows open over many records, without a database:
 *   unique-users): the offsets committed are the processor's resume points, the lowest
 *   offset that a window not yet emitted still needs, each with the processor's state there
 *   and the read position, in the offset commit's metadata — all in the same transaction as
 *   the outputs. The claim hands the state back and has the records between the resume point
 *   and the read position processed again (`replayed`): they rebuild the open windows, their
 *   side records are not sent again (committed before), and the processor emits only what
 *   its restored state says is not out yet.
 * - Group fencing (KIP-447): the offsets carry the member and generation of the claim the
 *   unit was processed under. After a rebalance the group coordinator refuses them from a
 *   member it has moved on from (paused past its session, or still catching up with the new
 *   assignment): that transaction is aborted and the member drops its uncommitted work and
 *   rejoins, whatever transactional id the new owner uses.
 * - Errors: a producer fenced by a newer one stops the member (FENCED, one line); a group
 *   that refuses the offsets fences the unit (FENCED `groupFenced`: aborted, the member
 *   rejoins); other failures are retried by the coordinator calls until --retry-for, then
 *   the transaction is aborted and the run fails: a restart redoes the unit from the
 *   committed state.
 */
import { TickflowError } from '../core/errors.ts';
import type { Database } from '../db/types.ts';
import { isGroupFenced, isProducerFenced } from '../log/kafka-transaction.ts';
import type { CommittedOffset, Producer, RecordToProduce, OffsetToCommit, TransactionalProducer } from '../log/types.ts';
import { groupPositions } from './commit-group-after-ack.ts';
import { newestRecords } from './commit-output-derived.ts';
import { PgTransactionCommitter } from './commit-pg-transaction.ts';
import type { Claimed, ClaimRequest, CommitOffsets, Committer, CommitterContext, CommitUnit } from './commit-strategy.ts';
import { NO_DATABASE } from './commit-strategy.ts';

/** Kafka's default `offset.metadata.max.bytes`: a larger metadata text is refused. */
const MAX_METADATA_CHARS = 4096;

export class KafkaTransactionCommitter<Checkpoint> implements Committer<Checkpoint> {
  readonly kind = 'kafka-transaction';
  readonly boundedWithoutGroup: boolean;
  readonly #context: CommitterContext<Checkpoint>;
  readonly #pg: PgTransactionCommitter<Checkpoint> | null;
  /** The processor gives resume points: offsets lowered to them, its state committed with them. */
  readonly #resumable: boolean;
  readonly #outputTopic: string | null;
  #current: TransactionalProducer | null = null;
  readonly #transactionOptions: { timeoutMs?: number };

  constructor(db: Database | null, outputTopic: string | null, context: CommitterContext<Checkpoint>, transactionTimeoutMs?: number) {
    if (!context.log.transactionalProducer) {
      const log = context.log.kind === 'memory' ? 'the embedded log' : `the ${context.log.kind} log`;
      throw new TickflowError('BAD_CONFIG', `${context.pipeline}: exactly once needs Kafka transactions, which ${log} does not have (connect to Kafka, or commit at least once)`);
    }
    this.#context = context;
    this.#pg = db === null ? null : new PgTransactionCommitter(db, context);
    this.boundedWithoutGroup = db === null;
    this.#resumable = db === null && context.processor.resumePoints !== undefined;
    if (this.#resumable && !context.log.committedWithMetadata) throw new TickflowError('INTERNAL', `${context.pipeline}: resume points need a log that keeps offset metadata`);
    this.#outputTopic = outputTopic;
    this.#transactionOptions = transactionTimeoutMs === undefined ? {} : { timeoutMs: transactionTimeoutMs };
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
      this.#current = log.transactionalProducer!(id, this.#transactionOptions);
    }
    // A new epoch: fences a zombie of this id and ends its transaction (completes one it
    // prepared to commit, aborts one still open) before the offsets are read.
    await this.#current.init();
    if (this.#resumable) return this.#claimResumePoints(request);
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

  /**
   * Resume points: each partition at its committed offset, with the processor's state there
   * and the read position of that commit (records between are replayed). Offsets committed
   * without them (by an at-least-once run) resume as output-derived did: the newest record of
   * the output topic tells the processor what is out.
   */
  async #claimResumePoints(request: ClaimRequest): Promise<Claimed[]> {
    const { log, group, processor, signal } = this.#context;
    const claimed: Claimed[] = [];
    let foreign = false;
    for (const [topic, list] of request.partitions) {
      const committed = request.fromBeginning ? new Map<number, CommittedOffset>() : await log.committedWithMetadata!(group, topic);
      const starts = request.earliest.get(topic)!;
      const offsets = new Map<number, bigint>();
      const states = new Map<number, unknown>();
      const replayed = new Map<number, bigint>();
      for (const p of list) {
        const start = starts.get(p) ?? 0n;
        const stored = committed.get(p);
        const offset = stored !== undefined && stored.offset > start ? stored.offset : start;
        offsets.set(p, offset);
        if (stored === undefined) continue;
        const point = parseResumePoint(stored.metadata);
        if (point === null) {
          foreign = true;
          continue;
        }
        if (point.state !== undefined) states.set(p, point.state);
        if (point.read > offset) replayed.set(p, point.read);
      }
      claimed.push({ topic, partitions: list, offsets, generation: 0, states, replayed });
    }
    if (foreign && processor.resume && this.#outputTopic !== null) processor.resume(await newestRecords(log, this.#outputTopic, signal));
    const starts = await processor.assign(NO_DATABASE, claimed);
    // The processor's own durable state holds the records before these: they are not read again.
    if (starts) {
      for (const claim of claimed) {
        for (const [p, start] of starts.get(claim.topic) ?? []) {
          const offsets = claim.offsets as Map<number, bigint>;
          if (!(start > offsets.get(p)!)) continue;
          offsets.set(p, start);
          const replayed = claim.replayed as Map<number, bigint>;
          if (!(replayed.get(p)! > start)) replayed.delete(p);
        }
      }
    }
    return claimed;
  }

  offsets(processed: CommitOffsets): CommitOffsets {
    if (!this.#resumable) return processed;
    const points = new Map<string, { offset?: bigint; state: unknown }>();
    const positions = new Map<string, Map<number, bigint>>();
    for (const [topic, { next, read }] of processed) positions.set(topic, new Map([...next].map(([p, position]) => [p, read?.get(p) ?? position])));
    for (const point of this.#context.processor.resumePoints!(positions)) points.set(`${point.topic}\u0000${point.partition}`, point);
    const lowered: CommitOffsets = new Map();
    for (const [topic, { generation, next, read }] of processed) {
      const offsets = new Map<number, bigint>();
      const metadata = new Map<number, string>();
      for (const [partition, position] of next) {
        const point = points.get(`${topic}\u0000${partition}`);
        offsets.set(partition, point?.offset !== undefined && point.offset < position ? point.offset : position);
        metadata.set(partition, resumePointText(this.#context.pipeline, read?.get(partition) ?? position, point?.state));
      }
      lowered.set(topic, { generation, next: offsets, metadata });
    }
    return lowered;
  }

  async commit(unit: CommitUnit<Checkpoint>): Promise<number> {
    const producer = this.#current;
    if (!producer) return 0; // nothing claimed, nothing sent
    const offsets: OffsetToCommit[] = [];
    // Without a database the group keeps the offsets: none for a bounded run without the group.
    const storesOffsets = this.#pg !== null || unit.member !== null;
    if (storesOffsets) {
      for (const [topic, { next, read, metadata }] of unit.offsets) {
        for (const [partition, position] of next) {
          // With a database Kafka's offsets say where published outputs end (PostgreSQL's where
          // the state is): a replay still under way does not move them back.
          const offset = this.#pg !== null ? (read?.get(partition) ?? position) : position;
          offsets.push({ topic, partition, offset, ...(metadata?.has(partition) ? { metadata: metadata.get(partition)! } : {}) });
        }
      }
    }
    let committed = false;
    const commitKafka = async () => {
      if (committed) return; // a retried PostgreSQL transaction: the Kafka one is done
      await this.#commitKafka(producer, offsets, unit.member);
      committed = true;
    };
    if (!this.#pg) {
      await commitKafka();
      return 0;
    }
    return this.#pg.commit(unit, null, commitKafka);
  }

  async #commitKafka(producer: TransactionalProducer, offsets: OffsetToCommit[], member: CommitUnit<Checkpoint>['member']): Promise<void> {
    const { group, pipeline } = this.#context;
    try {
      await producer.commit(offsets.length > 0 ? { group, offsets, member } : undefined);
    } catch (error) {
      if (isProducerFenced(error)) {
        // Never used again: a member that rejoins (several members, --scale-out) claims with a new one.
        if (this.#current === producer) this.#current = null;
        await producer.close().catch(() => undefined);
        throw error;
      }
      await producer.abort();
      if (isGroupFenced(error)) throw error; // the member rejoins; the new owner redoes the unit
      throw new TickflowError('LOG_ERROR', `${pipeline}: Kafka transaction ${producer.transactionalId} aborted (${error instanceof Error ? error.message : String(error)}); a restart redoes it from the committed offsets`, { transactionalId: producer.transactionalId }, { cause: error });
    }
  }

  producer(): Producer {
    const current = async () => {
      if (!this.#current) {
        // A bounded run without the group claims nothing: one id for the whole run.
        const { log, pipeline, group } = this.#context;
        this.#current = log.transactionalProducer!(KafkaTransactionCommitter.transactionalId(pipeline, group, new Map()), this.#transactionOptions);
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

/**
 * The offset commit metadata of a resume point: the read position and the processor's
 * state, JSON, marked as tickflow's so that metadata of other writers is told apart.
 */
function resumePointText(pipeline: string, read: bigint, state: unknown): string {
  const text = JSON.stringify(state === undefined ? { tickflow: 1, read: String(read) } : { tickflow: 1, read: String(read), state });
  if (text.length > MAX_METADATA_CHARS) throw new TickflowError('INTERNAL', `${pipeline}: the state of a resume point takes ${text.length} characters, more than Kafka keeps with an offset (${MAX_METADATA_CHARS})`);
  return text;
}

function parseResumePoint(metadata: string | null): { read: bigint; state?: unknown } | null {
  if (metadata === null || !metadata.startsWith('{')) return null;
  try {
    const parsed = JSON.parse(metadata) as { tickflow?: unknown; read?: unknown; state?: unknown };
    if (parsed.tickflow !== 1 || typeof parsed.read !== 'string' || !/^\d+$/.test(parsed.read)) return null;
    return 'state' in parsed ? { read: BigInt(parsed.read), state: parsed.state } : { read: BigInt(parsed.read) };
  } catch {
    return null;
  }
}
