import { addOffsetsToTxnV3, addPartitionsToTxnV3, endTxnV3, findCoordinatorV4, initProducerIdV4, txnOffsetCommitV3 } from '@platformatic/kafka';
import type { Connection, Producer as KafkaProducer } from '@platformatic/kafka';
import { setTimeout as sleep } from 'node:timers/promises';
import { TickflowError } from '../core/errors.ts';
import { withRetries } from '../observability/retry.ts';
import type { KafkaErrorContext } from './kafka-errors.ts';
import type { GroupMember, OffsetToCommit } from './types.ts';

/**
 * The coordinator side of a Kafka transaction, on the client library's raw API functions
 * (its own transaction support is tied to its own produce path; tickflow encodes its
 * batches itself, kafka-produce.ts):
 *
 *   InitProducerId(transactional id)  a producer id and a new epoch; an older producer of the
 *                                     same id is fenced from then on and its open transaction
 *                                     aborted (one prepared to commit is completed first)
 *   AddPartitionsToTxn                before the first batch to a partition in a transaction
 *   AddOffsetsToTxn + TxnOffsetCommit the consumed offsets, committed with the outputs
 *   EndTxn                            commit or abort: the markers make the transaction's
 *                                     records visible to read_committed readers, or never
 *
 * The offsets carry the consumer-group member that read the records: its generation, member
 * id and group instance id (KIP-447). The group coordinator refuses them from a member the
 * group has moved on from — a rebalance gave its partitions to others (ILLEGAL_GENERATION),
 * or it was removed while paused (UNKNOWN_MEMBER_ID, FENCED_INSTANCE_ID) — so a zombie of
 * the group can never commit, whatever transactional id it has.
 *
 * Errors: PRODUCER_FENCED and INVALID_PRODUCER_EPOCH end this producer (FENCED,
 * `producerFenced`: a newer one owns the id, or the coordinator aborted a transaction open
 * longer than its timeout); the group's refusals above are FENCED with `groupFenced` (the
 * member aborts and rejoins); TRANSACTIONAL_ID_AUTHORIZATION_FAILED is the principal's missing
 * ACL, said as such (kafka-errors.ts names the id and the ACL); CONCURRENT_TRANSACTIONS
 * (the previous transaction's markers still being written) is retried at once, a few ms
 * apart; coordinator moves and lost brokers are retried under `withRetries` after looking the
 * coordinator up again; anything else fails the transaction (the caller aborts and redoes).
 */

const KEY_GROUP = 0;
const KEY_TRANSACTION = 1;
/** How long a transaction may stay open before the coordinator aborts it (unless the producer asks otherwise). */
export const TRANSACTION_TIMEOUT_MS = 60_000;
const CONCURRENT_RETRY_MS = 20;
const CONCURRENT_TRIES = 500;

/** Codes by which the broker says that a newer producer owns the transactional id. */
const FENCING = new Set(['PRODUCER_FENCED', 'INVALID_PRODUCER_EPOCH']);
/** Codes by which the group coordinator refuses a transaction's offsets from a member the group has moved on from. */
const GROUP_FENCING = new Set(['ILLEGAL_GENERATION', 'UNKNOWN_MEMBER_ID', 'FENCED_INSTANCE_ID']);

export interface ProducerIdentity {
  producerId: bigint;
  producerEpoch: number;
}

export type Classify = (error: unknown, context: KafkaErrorContext) => Promise<TickflowError>;

/** The error of a producer whose transactional id a newer producer took over. */
export function producerFenced(transactionalId: string, kafkaCode: string): TickflowError {
  return new TickflowError('FENCED', `transactional id ${transactionalId}: a newer producer took it over (${kafkaCode}); this one stops`, { kafkaCode, producerFenced: true, transactionalId });
}

/** True for the error of a producer whose transactional id a newer producer took over. */
export function isProducerFenced(error: unknown): boolean {
  return error instanceof TickflowError && error.details.producerFenced === true;
}

/** The error of a transaction whose offsets the group refused: the member is not (or no longer) the one that owns the partitions. */
export function groupFenced(group: string, member: GroupMember, kafkaCode: string): TickflowError {
  return new TickflowError('FENCED', `group ${group} refused the offsets of member ${member.memberId} of generation ${member.generationId} (${kafkaCode}): the group has moved on; the transaction is aborted`, { kafkaCode, groupFenced: true, group, generationId: member.generationId });
}

/** True for the error of a transaction whose offsets the group refused (a stale member). */
export function isGroupFenced(error: unknown): boolean {
  return error instanceof TickflowError && error.details.groupFenced === true;
}

export class TransactionCoordinator {
  readonly transactionalId: string;
  /** The transaction timeout asked for in InitProducerId: the coordinator aborts a transaction open longer. */
  readonly timeoutMs: number;
  readonly #client: KafkaProducer;
  readonly #classify: Classify;
  #coordinator: Connection | null = null;
  #groupCoordinators = new Map<string, Connection>();
  #identity: ProducerIdentity | null = null;
  /** Partitions added to the open transaction, as `topic\0partition`. */
  #added = new Set<string>();
  #offsetsAdded = false;

  constructor(client: KafkaProducer, transactionalId: string, classify: Classify, timeoutMs: number = TRANSACTION_TIMEOUT_MS) {
    this.#client = client;
    this.transactionalId = transactionalId;
    this.timeoutMs = timeoutMs;
    this.#classify = classify;
  }

  /** The current producer id and epoch (InitProducerId on first use). */
  async identity(): Promise<ProducerIdentity> {
    this.#identity ??= await this.#init();
    return this.#identity;
  }

  /** Whether anything was written in the open transaction (partitions or offsets added). */
  get open(): boolean {
    return this.#added.size > 0 || this.#offsetsAdded;
  }

  /** A new epoch: fences every older producer of this id and aborts its open transaction. */
  async #init(): Promise<ProducerIdentity> {
    const response = await this.#call('initialise the transactional producer', async () => {
      const connection = await this.#coordinatorConnection();
      return initProducerIdV4.api.async(connection, this.transactionalId, this.timeoutMs, -1n, -1);
    });
    this.#added.clear();
    this.#offsetsAdded = false;
    return { producerId: response.producerId, producerEpoch: response.producerEpoch };
  }

  /** Adds the partitions not yet in the open transaction (before the first batch to each). */
  async addPartitions(topic: string, partitions: readonly number[]): Promise<void> {
    const fresh = partitions.filter((p) => !this.#added.has(`${topic}\u0000${p}`));
    if (fresh.length === 0) return;
    const { producerId, producerEpoch } = await this.identity();
    await this.#call(`add ${topic} partitions ${fresh.join(',')} to the transaction`, async () => {
      const connection = await this.#coordinatorConnection();
      return addPartitionsToTxnV3.api.async(connection, [{ transactionalId: this.transactionalId, producerId, producerEpoch, verifyOnly: false, topics: [{ name: topic, partitions: fresh }] }]);
    });
    for (const p of fresh) this.#added.add(`${topic}\u0000${p}`);
  }

  /**
   * Commits (or aborts) the open transaction; with `offsets`, those of `group` commit with it,
   * accepted only from `member` in its generation when one is given.
   */
  async end(commit: boolean, offsets: { group: string; offsets: readonly OffsetToCommit[]; member?: GroupMember | null } | null = null): Promise<void> {
    const { producerId, producerEpoch } = await this.identity();
    if (commit && offsets && offsets.offsets.length > 0) {
      const { group } = offsets;
      const member = offsets.member ?? null;
      if (!this.#offsetsAdded) {
        await this.#call(`add the offsets of group ${group} to the transaction`, async () => {
          const connection = await this.#coordinatorConnection();
          return addOffsetsToTxnV3.api.async(connection, this.transactionalId, producerId, producerEpoch, group);
        });
        this.#offsetsAdded = true;
      }
      const byTopic = new Map<string, Array<{ partitionIndex: number; committedOffset: bigint; committedLeaderEpoch: number; committedMetadata: string | null }>>();
      for (const o of offsets.offsets) {
        let list = byTopic.get(o.topic);
        if (!list) byTopic.set(o.topic, (list = []));
        list.push({ partitionIndex: o.partition, committedOffset: o.offset, committedLeaderEpoch: -1, committedMetadata: o.metadata ?? null });
      }
      const topics = [...byTopic].map(([name, partitions]) => ({ name, partitions }));
      // With the member, the coordinator checks its generation (KIP-447); without one (a
      // bounded run outside the group) generation -1 and no member id: only the producer epoch fences.
      await this.#call(`commit the offsets of group ${group} in the transaction`, async () => {
        const connection = await this.#groupCoordinator(group);
        return txnOffsetCommitV3.api.async(connection, this.transactionalId, group, producerId, producerEpoch, member?.generationId ?? -1, member?.memberId ?? '', member?.groupInstanceId ?? null, topics);
      }, () => this.#groupCoordinators.delete(group), (code) => (member !== null && GROUP_FENCING.has(code) ? groupFenced(group, member, code) : null));
    }
    if (!this.open) return; // nothing was written: there is no transaction to end
    await this.#call(`${commit ? 'commit' : 'abort'} the transaction`, async () => {
      const connection = await this.#coordinatorConnection();
      return endTxnV3.api.async(connection, this.transactionalId, producerId, producerEpoch, commit);
    });
    this.#added.clear();
    this.#offsetsAdded = false;
  }

  /**
   * Abandons the open transaction after a failure whose outcome is unknown: the next use
   * takes a new epoch, which makes the coordinator abort it.
   */
  reset(): void {
    this.#identity = null;
    this.#added.clear();
    this.#offsetsAdded = false;
  }

  /** `final`: an error for codes that end the call at once (no retry), or null. */
  async #call<T>(action: string, operation: () => Promise<T>, onRetry?: () => void, final?: (code: string) => TickflowError | null): Promise<T> {
    const context: KafkaErrorContext = { action, transactionalId: this.transactionalId };
    return withRetries('kafka', `${action} (${this.transactionalId})`, async () => {
      for (let attempt = 0; ; attempt++) {
        let classified: TickflowError;
        try {
          return await operation();
        } catch (error) {
          classified = await this.#classify(error, context);
        }
        // Not allowed (an ACL missing for the transactional id or the group): say so, not "fenced".
        if (classified.details.security !== undefined) throw classified;
        const code = classified.details.kafkaCode;
        if (typeof code === 'string' && FENCING.has(code)) throw producerFenced(this.transactionalId, code);
        const ended = typeof code === 'string' ? final?.(code) : null;
        if (ended) throw ended;
        if (code === 'CONCURRENT_TRANSACTIONS' && attempt < CONCURRENT_TRIES) {
          await sleep(CONCURRENT_RETRY_MS);
          continue;
        }
        if (code === 'NOT_COORDINATOR' || code === 'COORDINATOR_NOT_AVAILABLE' || code === 'COORDINATOR_LOAD_IN_PROGRESS' || classified.details.libraryCode === 'PLT_KFK_NETWORK') {
          this.#coordinator = null;
          onRetry?.();
        }
        throw classified;
      }
    }, { beforeRetry: () => this.#client.clearMetadata() });
  }

  async #coordinatorConnection(): Promise<Connection> {
    this.#coordinator ??= await this.#find(KEY_TRANSACTION, this.transactionalId);
    return this.#coordinator;
  }

  async #groupCoordinator(group: string): Promise<Connection> {
    let connection = this.#groupCoordinators.get(group);
    if (!connection) this.#groupCoordinators.set(group, (connection = await this.#find(KEY_GROUP, group)));
    return connection;
  }

  /** FindCoordinator on any broker, then a connection to the coordinator it names. */
  async #find(keyType: number, key: string): Promise<Connection> {
    const metadata = await this.#client.metadata({ topics: [] });
    const broker = [...metadata.brokers.values()][0];
    if (!broker) throw new TickflowError('LOG_UNAVAILABLE', 'no broker known to look up a coordinator', { staleMetadata: true });
    const response = await findCoordinatorV4.api.async(await this.#client.connections.get(broker), keyType, [key]);
    const found = response.coordinators.find((c) => c.key === key) ?? response.coordinators[0];
    if (!found || found.nodeId < 0) throw new TickflowError('LOG_UNAVAILABLE', `no coordinator for ${key} yet`, { kafkaCode: 'COORDINATOR_NOT_AVAILABLE' });
    return this.#client.connections.get({ host: found.host, port: found.port });
  }
}
