import { TRANSACTION_TIMEOUT_MS } from '../log/kafka-transaction.ts';
import type { ProducerTransactions } from '../pipelines/transactional-output.ts';
import type { FlagSpec, FlagValues } from './command.ts';
import { badFlag, bool, duration, int, str } from './flags.ts';
import { STDIN_TOPIC } from './stdio-log.ts';

/** Kafka's transaction timeout is an int32 of milliseconds. */
const MAX_TIMEOUT_MS = 2 ** 31 - 1;

/** The flags of a producer command that writes in Kafka transactions (docs/guarantees.md). */
export const TRANSACTION_FLAGS: Record<string, FlagSpec> = {
  transactional: {
    type: 'boolean',
    description: 'Write in Kafka transactions: read_committed readers see the whole run (or each --transaction-size batch) or nothing of it; a crashed run leaves nothing of its open transaction visible',
  },
  'transaction-size': { type: 'string', value: 'N', description: 'With --transactional: commit every N records (default: the whole run is one transaction)' },
  'transactional-id': {
    type: 'string',
    value: 'ID',
    description: 'With --transactional: a run with the same id fences an earlier one and aborts its open transaction (default tickflow-<command>-<output topic>)',
  },
  'transaction-timeout': {
    type: 'string',
    value: 'DURATION',
    description: `With --transactional: the coordinator aborts a transaction open longer (default ${TRANSACTION_TIMEOUT_MS / 1000}s; at most the broker's transaction.max.timeout.ms, 15m by default)`,
  },
};

/** The default transactional id of a producer command: stable per command and output topic. */
export function defaultTransactionalId(command: string, output: string): string {
  return `tickflow-${command}-${output}`;
}

/**
 * --transactional, --transaction-size, --transactional-id, --transaction-timeout; null without
 * --transactional. `command` names the default id (`produce-prices`, ...).
 */
export function producerTransactions(values: FlagValues, command: string, output: string): ProducerTransactions | null {
  if (!bool(values, 'transactional')) {
    for (const flag of ['transaction-size', 'transactional-id', 'transaction-timeout']) {
      if (values[flag] !== undefined) throw badFlag(flag, 'applies to transactions only: add --transactional');
    }
    return null;
  }
  if (output === STDIN_TOPIC) throw badFlag('transactional', 'stdout (--output -) has no transactions: write to a topic');
  const id = str(values, 'transactional-id') ?? defaultTransactionalId(command, output);
  if (id.trim() === '') throw badFlag('transactional-id', 'must not be empty');
  const timeoutMs = duration(values, 'transaction-timeout', TRANSACTION_TIMEOUT_MS, { minMs: 1 });
  if (timeoutMs > MAX_TIMEOUT_MS) throw badFlag('transaction-timeout', `must be at most ${MAX_TIMEOUT_MS}ms (Kafka's limit), got ${str(values, 'transaction-timeout')}`);
  const size = values['transaction-size'] === undefined ? null : int(values, 'transaction-size', 1, { min: 1, max: 1_000_000_000 });
  return { id, size, timeoutMs: Math.round(timeoutMs) };
}

/** How a report names what a transactional run committed. */
export function describeTransactions(tally: { transactionalId: string; committed: number; transactions: number; aborted: number }): string {
  const committed = `${tally.committed} committed in ${tally.transactions} transaction${tally.transactions === 1 ? '' : 's'} (id ${tally.transactionalId})`;
  return tally.aborted > 0 ? `${committed}, ${tally.aborted} aborted` : committed;
}
