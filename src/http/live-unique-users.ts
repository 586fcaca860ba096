/**
 * The newest minutes of the `unique-users` output topic, read incrementally through the
 * log: each refresh reads only what was appended since the last one. A minute emitted
 * twice (a service restart re-emits nothing, but a second run over the same frames does)
 * keeps its newest record. Starts `keep` records before each partition's end, so a topic
 * holding years of minutes costs no more than one holding an hour.
 */
import type { Log } from '../log/types.ts';

export interface MinuteView {
  minute: string;
  /** Unix seconds. */
  start: number;
  uniqueUsers: number;
  frames: number;
  late: number;
}

export interface UniqueUsersView {
  topic: string;
  /** Oldest first, at most `keep`. */
  minutes: MinuteView[];
  /** Records of the topic that are not minute records (counted, not shown). */
  skipped: number;
}

export class UniqueUsersFeed {
  readonly topic: string;
  readonly #log: Log;
  readonly #keep: number;
  readonly #positions = new Map<number, bigint>();
  readonly #minutes = new Map<number, MinuteView>();
  #skipped = 0;

  constructor(log: Log, topic: string, options: { keep?: number } = {}) {
    this.#log = log;
    this.topic = topic;
    this.#keep = options.keep ?? 120;
  }

  async refresh(): Promise<UniqueUsersView> {
    const offsets = await this.#log.offsets(this.topic);
    const from = new Map<number, bigint>();
    const to = new Map<number, bigint>();
    for (const { partition, earliest, latest } of offsets) {
      const backfill = latest - BigInt(this.#keep);
      let position = this.#positions.get(partition) ?? (backfill > earliest ? backfill : earliest);
      if (position < earliest || position > latest) position = earliest; // deleted by retention, or the topic was recreated
      if (position < latest) {
        from.set(partition, position);
        to.set(partition, latest);
      }
      this.#positions.set(partition, position);
    }
    if (from.size > 0) {
      for await (const batch of this.#log.readRange({ topic: this.topic, partitions: [...from.keys()], from, to })) {
        for (const record of batch) {
          const minute = record.value === null ? null : parseMinute(record.value.toString('utf8'));
          if (minute) this.#minutes.set(minute.start, minute);
          else this.#skipped++;
          this.#positions.set(record.partition, record.offset + 1n);
        }
      }
      for (const [partition, end] of to) this.#positions.set(partition, end);
      this.#trim();
    }
    return { topic: this.topic, minutes: [...this.#minutes.values()].sort((a, b) => a.start - b.start), skipped: this.#skipped };
  }

  #trim(): void {
    if (this.#minutes.size <= this.#keep) return;
    const starts = [...this.#minutes.keys()].sort((a, b) => a - b);
    for (const start of starts.slice(0, starts.length - this.#keep)) this.#minutes.delete(start);
  }
}

/** A minute record as `unique-users` writes it (with or without `granularity`), or null for anything else (other granularities too). */
export function parseMinute(text: string): MinuteView | null {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return null;
  }
  if (typeof value !== 'object' || value === null) return null;
  const { minute, start, uniqueUsers, frames, late, granularity } = value as Record<string, unknown>;
  // With --granularity the topic holds hours, days… too: only minutes are shown here.
  if (granularity !== undefined && granularity !== 'minute') return null;
  if (typeof start !== 'number' || !Number.isSafeInteger(start) || typeof uniqueUsers !== 'number' || !Number.isFinite(uniqueUsers)) return null;
  const count = (x: unknown) => (typeof x === 'number' && Number.isFinite(x) ? x : 0);
  const iso = typeof minute === 'string' ? minute : new Date(start * 1000).toISOString().replace('.000Z', 'Z');
  return { minute: iso, start, uniqueUsers, frames: count(frames), late: count(late) };
}
