/**
 * Records per second per topic, from successive samples of the topics' end offsets: the
 * rate between two samples is (Σ end offsets now − Σ end offsets before) / elapsed time.
 * Keeps the last `capacity` samples as uPlot-ready columns. Pure: the caller samples.
 */

export interface TopicRate {
  topic: string;
  /** Records the topic holds now (Σ end − earliest). */
  messages: number;
  /** Σ end offsets over the partitions: every record ever written. */
  written: number;
  /** Between the last two samples; null until there are two, or after the topic shrank (recreated). */
  recordsPerSecond: number | null;
}

export interface ThroughputView {
  topics: TopicRate[];
  /** Column-wise history: t (unix seconds) and, per topic, its rate at each t (null = unknown). */
  history: { t: number[]; series: Array<{ topic: string; recordsPerSecond: Array<number | null> }> };
}

export interface TopicTotals {
  topic: string;
  messages: number;
  written: number;
}

interface Sample {
  atMs: number;
  written: Map<string, number>;
  rates: Map<string, number | null>;
}

export class ThroughputHistory {
  readonly #capacity: number;
  readonly #minIntervalMs: number;
  readonly #samples: Sample[] = [];
  #latest: TopicTotals[] = [];

  constructor(options: { capacity?: number; minIntervalMs?: number } = {}) {
    this.#capacity = options.capacity ?? 180;
    this.#minIntervalMs = options.minIntervalMs ?? 250;
  }

  /** Adds a sample; one closer than `minIntervalMs` to the previous only refreshes the totals. */
  observe(atMs: number, totals: readonly TopicTotals[]): void {
    this.#latest = [...totals];
    const previous = this.#samples.at(-1);
    if (previous && atMs - previous.atMs < this.#minIntervalMs) return;
    const written = new Map(totals.map((t) => [t.topic, t.written]));
    const rates = new Map<string, number | null>();
    for (const [topic, now] of written) {
      const before = previous?.written.get(topic);
      // Rounded to 0.1 record/s: enough for a chart, and the snapshot stays small.
      rates.set(topic, previous && before !== undefined && now >= before ? Math.round(((now - before) * 10_000) / (atMs - previous.atMs)) / 10 : null);
    }
    this.#samples.push({ atMs, written, rates });
    if (this.#samples.length > this.#capacity) this.#samples.shift();
  }

  view(): ThroughputView {
    const last = this.#samples.at(-1);
    const topics = this.#latest.map((t) => ({ ...t, recordsPerSecond: last?.rates.get(t.topic) ?? null }));
    const names = this.#latest.map((t) => t.topic);
    return {
      topics,
      history: {
        t: this.#samples.map((s) => s.atMs / 1000),
        series: names.map((topic) => ({ topic, recordsPerSecond: this.#samples.map((s) => s.rates.get(topic) ?? null) })),
      },
    };
  }
}
