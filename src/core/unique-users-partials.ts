import type { HyperLogLog } from './hyperloglog.ts';
import type { WindowCount } from './unique-users.ts';

/**
 * One window's partials combined into its record (unique-users --scale-out, docs/users.md,
 * "How it scales"). Each member of the group sends the window's record over its own input
 * partitions; their frames and late counts add up, since every frame is counted by exactly
 * one member. The distinct users combine in one of two ways:
 *
 * - Every partial carries its users as a HyperLogLog sketch (`--approx`, or an exact set that
 *   went over `--max-exact-memory`): the sketches are merged register-wise. The merge of
 *   sketches is the sketch of the union of their users, register for register, whichever
 *   partitions the users' frames were on: the count is the estimate of the sketch a single
 *   instance counting every partition holds, and the record is that instance's.
 * - Otherwise the counts are summed. Exact counts add up over disjoint sets of users (input
 *   keyed by uid); a partial that is an estimate (its set went over `--max-exact-memory`
 *   while another partial's did not) makes the sum an estimate too, marked approximate.
 */
export class CombinedWindow {
  readonly #record: WindowCount;
  /** The merged sketch while every partial brought one; null once one came without. */
  #sketch: HyperLogLog | null;

  /** The window's first partial; `sketch` its users when they were counted in a sketch (taken over, not copied). */
  constructor(partial: WindowCount, sketch: HyperLogLog | null) {
    this.#record = { ...partial };
    this.#sketch = sketch;
  }

  /** Another member's partial of the same window. */
  add(partial: WindowCount, sketch: HyperLogLog | null): void {
    const sum = this.#record;
    sum.uniqueUsers += partial.uniqueUsers;
    sum.frames += partial.frames;
    sum.late += partial.late;
    if (partial.approximate) sum.approximate = true;
    const merged = this.#sketch;
    if (merged === null || sketch === null) {
      this.#sketch = null;
      return;
    }
    // Members of one group count at one --precision; should two differ, both come down to the lower.
    if (sketch.precision < merged.precision) {
      const folded = merged.foldTo(sketch.precision);
      folded.merge(sketch);
      this.#sketch = folded;
    } else {
      merged.merge(sketch.precision === merged.precision ? sketch : sketch.foldTo(merged.precision));
    }
  }

  /** The merged sketch, while every partial brought one. */
  get sketch(): HyperLogLog | null {
    return this.#sketch;
  }

  /** The window's record: the merged sketch's estimate, or the sum of the counts. */
  record(): WindowCount {
    const sketch = this.#sketch;
    if (sketch === null) return this.#record;
    return { ...this.#record, uniqueUsers: sketch.count(), standardError: sketch.standardError };
  }
}
