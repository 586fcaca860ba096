import { Consumer, ListOffsetTimestamps } from '@platformatic/kafka';
import type { ConsumerOptions, GroupAssignment } from '@platformatic/kafka';
import type { TickflowError } from '../core/errors.ts';
import { withRetries } from '../observability/retry.ts';
import type { FetchObserver, FetchOutcome, FetchPosition } from './kafka-fetch.ts';
import { Wakeup } from './wakeup.ts';
import type { Assignment, GroupConsumer, RecordBatch, SubscribeOptions, TopicPartitionOffset } from './types.ts';

const IDLE_WAIT_MS = 200;

export interface GroupMemberDeps {
  /** Connection settings of the member's client (brokers, TLS, SASL, timeouts). */
  clientOptions: Omit<ConsumerOptions<Buffer, Buffer, Buffer, Buffer>, 'groupId'>;
  /** One fetch round under the fault policy (KafkaLog). */
  fetchRound(client: Consumer, positions: FetchPosition[], action: string, signal?: AbortSignal, observe?: FetchObserver): Promise<FetchOutcome>;
  /** Classifies a group call's error, telling a missing subscribed topic (KafkaLog). */
  classify(error: unknown, action: string, topics: readonly string[]): Promise<TickflowError>;
  onClose(): void;
}

/**
 * A consumer-group member on the library's Consumer: we join, fetch and commit; the library
 * heartbeats and rejoins after a rebalance. Faults are ridden through:
 *
 * - joins, offset lookups and commits run under `withRetries` (until --retry-for);
 * - when the library's own rejoin (after a failed heartbeat) gives up, it emits 'error':
 *   we join again, with backoff;
 * - the library keeps the group coordinator it found until a call fails with a network error;
 *   once the coordinator broker has left the cluster metadata its calls fail with "stale
 *   metadata" instead and it never looks for the new coordinator. We then replace the client
 *   (same member id and generation, so the group sees the same member) and join again.
 *
 * A rebalance is not an error: the next assignment arrives through 'consumer:group:join'.
 */
export function groupMember(options: SubscribeOptions, deps: GroupMemberDeps): GroupConsumer {
  const signal = options.signal;
  const wakeup = new Wakeup();
  let version = 0;
  let assignment: Assignment = { generation: 0, partitions: [] };
  /** Membership must be won by a join of ours: at the start, and after the library gave up rejoining. */
  let mustJoin = true;
  /** The client's coordinator left the cluster: a new client must find the new one. */
  let coordinatorLost = false;
  let closed = false;
  /** Partitions whose last fetch attempt failed, as `topic/partition`. */
  const unreachable = new Set<string>();
  const observe: FetchObserver = (positions, outcome) => {
    const failed = outcome === null ? positions : outcome.failed;
    for (const p of positions) unreachable.delete(`${p.topic}/${p.partition}`);
    for (const p of failed) unreachable.add(`${p.topic}/${p.partition}`);
  };

  const createClient = (): Consumer => {
    const client = new Consumer({
      ...deps.clientOptions,
      groupId: options.group,
      sessionTimeout: options.sessionTimeoutMs ?? 10_000,
      heartbeatInterval: options.heartbeatIntervalMs ?? 1000,
      rebalanceTimeout: Math.max(options.sessionTimeoutMs ?? 10_000, 15_000),
      autocommit: false,
      ...(options.groupInstanceId ? { groupInstanceId: options.groupInstanceId } : {}),
    });
    client.topics.trackAll(...options.topics);
    client.on('error', () => {
      if (client !== consumer) return;
      mustJoin = true;
      wakeup.notify();
    });
    client.on('consumer:heartbeat:error', () => {
      if (client !== consumer) return;
      void coordinatorGone(client).then((gone) => {
        if (gone && client === consumer) {
          coordinatorLost = true;
          wakeup.notify();
        }
      });
    });
    client.on('consumer:group:join', () => {
      if (client !== consumer) return;
      const member = { generationId: client.generationId, memberId: client.memberId ?? '', groupInstanceId: client.groupInstanceId ?? null };
      assignment = { generation: client.generationId, partitions: flatten(client.assignments ?? []), member };
      version++;
      wakeup.notify();
    });
    return client;
  };
  let consumer = createClient();

  /** Clients replaced and still closing: close() waits for them too. */
  const retiring = new Set<Promise<void>>();

  /**
   * Swaps in a fresh client for the same member; the old one closes without leaving the group.
   * Never once the member is closing: nothing would close the new client.
   */
  const replaceClient = () => {
    if (closed) return;
    const old = consumer;
    consumer = createClient();
    consumer.memberId = old.memberId;
    consumer.generationId = old.generationId;
    // Without a member id, leaving sends nothing (it must not take our membership along) but
    // stops the old client's heartbeats, so that it can close.
    old.memberId = null;
    const retired: Promise<void> = (async () => {
      await Promise.resolve(old.leaveGroup()).catch(() => undefined);
      await old.close().catch(() => undefined);
    })().finally(() => retiring.delete(retired));
    retiring.add(retired);
    coordinatorLost = false;
    mustJoin = true;
  };

  let closing: Promise<void> | null = null;
  const close = () => {
    closed = true;
    wakeup.notify();
    closing ??= (async () => {
      deps.onClose();
      // A static member does not leave: its partitions wait for it (the session timeout), as
      // Kafka's own clients do. Without a member id the library's close sends no leave either.
      if (options.groupInstanceId) consumer.memberId = null;
      if (consumer.memberId || options.groupInstanceId) await Promise.resolve(consumer.leaveGroup()).catch(() => undefined);
      await consumer.close().catch(() => undefined);
      await Promise.all(retiring);
    })();
    return closing;
  };

  /** A group call under the fault policy; operations read `consumer` anew on every attempt. */
  const retrying = <T>(action: string, operation: () => Promise<T>) =>
    withRetries(
      'kafka',
      action,
      async () => {
        try {
          return await operation();
        } catch (error) {
          const classified = await deps.classify(error, action, options.topics);
          if (classified.retriable && (await coordinatorGone(consumer))) replaceClient();
          throw classified;
        }
      },
      { ...(signal ? { signal } : {}), beforeRetry: () => consumer.clearMetadata() },
    );

  const startPositions = async (current: Assignment): Promise<FetchPosition[]> => {
    const stored = (await options.onAssign?.(current)) ?? [];
    const missing = current.partitions.filter((tp) => !stored.some((s) => s.topic === tp.topic && s.partition === tp.partition));
    const [committed, fallback] = missing.length === 0
      ? [new Map<string, bigint[]>(), new Map<string, bigint[]>()]
      : await retrying(`look up offsets of group ${options.group}`, () =>
        Promise.all([
          consumer.listCommittedOffsets({ topics: byTopic(missing) }),
          consumer.listOffsets({
            topics: [...new Set(missing.map((tp) => tp.topic))],
            timestamp: options.fallback === 'latest' ? ListOffsetTimestamps.LATEST : ListOffsetTimestamps.EARLIEST,
          }),
        ]),
      );
    const positions: FetchPosition[] = [];
    for (const tp of current.partitions) {
      const fromStore = stored.find((s) => s.topic === tp.topic && s.partition === tp.partition)?.offset;
      const fromGroup = committed.get(tp.topic)?.[tp.partition];
      const next = fromStore ?? (fromGroup !== undefined && fromGroup >= 0n ? fromGroup : fallback.get(tp.topic)?.[tp.partition] ?? 0n);
      positions.push({ topic: tp.topic, partition: tp.partition, next });
    }
    return positions;
  };

  async function* batches(): AsyncGenerator<RecordBatch> {
    try {
      let seen = -1;
      let positions: FetchPosition[] = [];
      while (!closed && !signal?.aborted) {
        if (coordinatorLost) replaceClient();
        if (mustJoin) {
          mustJoin = false;
          await retrying(`join group ${options.group}`, () => consumer.joinGroup({}));
          continue;
        }
        if (version !== seen) {
          seen = version;
          positions = await startPositions(assignment);
          if (version !== seen) continue;
        }
        if (positions.length === 0) {
          await wakeup.wait(IDLE_WAIT_MS, signal);
          continue;
        }
        const generation = assignment.generation;
        const before = positions.map((p) => p.next);
        const outcome = await deps.fetchRound(consumer, positions, `fetch for group ${options.group}`, signal, observe);
        if (version !== seen || closed) continue; // rebalanced meanwhile: these partitions may be gone
        for (const p of outcome.outOfRange) p.next = 0n; // retention removed them: restart at the log start
        // A fetch that only moved past transaction markers or aborted records is reported too:
        // a reader waiting for the end of a partition learns that it got there.
        const moved = positions.some((p, i) => p.next > before[i]);
        if (outcome.records.length > 0 || moved) {
          yield { generation, records: outcome.records, positions: positions.map((p) => ({ topic: p.topic, partition: p.partition, offset: p.next })) };
        }
        if (outcome.failure && !outcome.failure.retriable) throw outcome.failure;
      }
    } catch (error) {
      if (closed || signal?.aborted) return; // stopped while waiting for Kafka: not a failure
      throw error;
    } finally {
      await close();
    }
  }

  const iterator = batches();
  return {
    assignment: () => assignment,
    unreachable: () => assignment.partitions.filter((tp) => unreachable.has(`${tp.topic}/${tp.partition}`)),
    commit: async (offsets: readonly TopicPartitionOffset[]) => {
      await retrying(`commit offsets of group ${options.group}`, () => consumer.commit({ offsets: offsets.map((o) => ({ ...o, leaderEpoch: -1 })) }));
    },
    close,
    [Symbol.asyncIterator]: () => iterator,
  };
}

/** Whether the client's group coordinator is missing from fresh cluster metadata. */
async function coordinatorGone(client: Consumer): Promise<boolean> {
  const coordinator = client.coordinatorId;
  if (coordinator === null) return false;
  try {
    const metadata = await client.metadata({ topics: [], forceUpdate: true });
    return !metadata.brokers.has(coordinator) && client.coordinatorId === coordinator;
  } catch {
    return false; // the cluster cannot be asked now: the next failure asks again
  }
}

function flatten(assignments: GroupAssignment[]) {
  return assignments
    .flatMap((a) => a.partitions.map((partition) => ({ topic: a.topic, partition })))
    .sort((a, b) => a.topic.localeCompare(b.topic) || a.partition - b.partition);
}

function byTopic(partitions: { topic: string; partition: number }[]): GroupAssignment[] {
  const grouped = new Map<string, number[]>();
  for (const tp of partitions) grouped.set(tp.topic, [...(grouped.get(tp.topic) ?? []), tp.partition]);
  return [...grouped].map(([topic, list]) => ({ topic, partitions: list }));
}
