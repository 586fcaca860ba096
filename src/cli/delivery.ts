import type { FlagSpec, FlagValues } from './command.ts';
import { DEFAULT_TRANSACTION_INTERVAL_MS } from '../runtime/commit-strategy.ts';
import { badFlag, bool, duration, str } from './flags.ts';

/** The flags of a Kafka-to-Kafka pipeline that chooses between exactly once and at least once (docs/guarantees.md). */
export const DELIVERY_FLAGS: Record<string, FlagSpec> = {
  'exactly-once': { type: 'boolean', description: 'Outputs, dead letters and offsets in one Kafka transaction per commit interval (the default with Kafka)' },
  'at-least-once': { type: 'boolean', description: 'No transactions: outputs visible at once, to every reader; a crash may repeat some' },
  'commit-interval': { type: 'string', value: 'DURATION', description: `Commit at most this often (default ${DEFAULT_TRANSACTION_INTERVAL_MS / 1000}s exactly once, every batch at least once): bounds latency and what a crash redoes` },
};

export interface Delivery {
  /** true, false, or undefined for the default (exactly once on Kafka). */
  exactlyOnce: boolean | undefined;
  commitIntervalMs: number | undefined;
}

/** --exactly-once / --at-least-once / --commit-interval. */
export function delivery(values: FlagValues): Delivery {
  const exactly = bool(values, 'exactly-once');
  const atLeast = bool(values, 'at-least-once');
  if (exactly && atLeast) throw badFlag('at-least-once', 'cannot be combined with --exactly-once');
  return {
    exactlyOnce: atLeast ? false : exactly ? true : undefined,
    commitIntervalMs: str(values, 'commit-interval') === undefined ? undefined : duration(values, 'commit-interval', DEFAULT_TRANSACTION_INTERVAL_MS, { minMs: 0 }),
  };
}
