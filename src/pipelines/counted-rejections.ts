/**
 * A ProcessContext whose rejections are also counted by partition and reason, for the
 * pipeline to add to `rejection_counts` in its commit (what `monitor` reports as late
 * and implausible shares).
 */
import type { ReasonCounts } from '../db/rejection-counts.ts';
import type { ProcessContext } from '../runtime/processor.ts';

export function countingRejections(context: ProcessContext, counts: ReasonCounts): ProcessContext {
  return {
    ...context,
    reject: (record, reason, error, options) => {
      counts.count(record.partition, reason);
      context.reject(record, reason, error, options);
    },
  };
}
