import { describeTransactionsV0, listTransactionsV0 } from '@platformatic/kafka';
import type { Admin, Connection } from '@platformatic/kafka';
import { KafkaCode } from './kafka-errors.ts';
import type { OpenTransaction } from './types.ts';

/**
 * The transactions open on a cluster, for monitoring: every broker is the transaction
 * coordinator of some transactional ids, so each is asked (ListTransactions, states Ongoing,
 * PrepareCommit and PrepareAbort) for its own, and then describes them (DescribeTransactions:
 * start time, timeout, partitions). A transaction that ended between the two calls is left
 * out. A principal sees only the ids it may Describe (ACLs).
 */

const OPEN_STATES: ('Ongoing' | 'PrepareCommit' | 'PrepareAbort')[] = ['Ongoing', 'PrepareCommit', 'PrepareAbort'];

type Description = Awaited<ReturnType<typeof describeTransactionsV0.api.async>>['transactionStates'][number];

export async function listOpenTransactions(client: Admin): Promise<OpenTransaction[]> {
  const metadata = await client.metadata({ topics: [] });
  const perBroker = await Promise.all(
    [...metadata.brokers.values()].map(async (broker) => {
      const connection = await client.connections.get(broker);
      const listed = await listTransactionsV0.api.async(connection, OPEN_STATES, [], -1n, null);
      const ids = listed.transactionStates.map((t) => t.transactionalId);
      return ids.length === 0 ? [] : describe(connection, ids);
    }),
  );
  return perBroker
    .flat()
    .filter((t) => OPEN_STATES.includes(t.transactionState as (typeof OPEN_STATES)[number]))
    .map((t) => ({
      transactionalId: t.transactionalId,
      state: t.transactionState,
      producerId: t.producerId,
      producerEpoch: t.producerEpoch,
      startedAt: t.transactionStartTimeMs >= 0n ? Number(t.transactionStartTimeMs) : null,
      timeoutMs: t.transactionTimeoutMs,
      partitions: t.topics.flatMap((topic) => [...topic.partitions].sort((a, b) => a - b).map((partition) => ({ topic: topic.topic, partition }))),
    }))
    .sort((a, b) => a.transactionalId.localeCompare(b.transactionalId));
}

/** DescribeTransactions; ids that are gone by now (ended and expired) answer with an error and are skipped. */
async function describe(connection: Connection, ids: string[]): Promise<Description[]> {
  try {
    return (await describeTransactionsV0.api.async(connection, ids)).transactionStates;
  } catch (error) {
    const response = (error as { response?: { transactionStates?: Description[] } }).response;
    const found = response?.transactionStates?.filter((t) => t.errorCode === 0);
    // Only when every failure is an id gone in between; anything else (authorization, a coordinator moving) is the caller's.
    const codes = response?.transactionStates?.filter((t) => t.errorCode !== 0).map((t) => t.errorCode) ?? [];
    if (found && codes.every((code) => code === KafkaCode.TRANSACTIONAL_ID_NOT_FOUND)) return found;
    throw error;
  }
}
