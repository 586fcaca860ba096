/**
 * A pipeline's progress over time: a counter that only grows while it works (records it
 * produced or read, from its own metrics; offsets it committed to PostgreSQL), sampled
 * every 200 ms. A sample that fails (the process or the database is down) is no sample.
 */
import pg from 'pg';

export type Probe = () => Promise<number>;

export interface Sample {
  at: number;
  value: number;
}

export class ProgressWatch {
  readonly samples: Sample[] = [];
  readonly #probe: Probe;
  #timer: NodeJS.Timeout | null = null;
  #busy = false;

  constructor(probe: Probe, intervalMs = 200) {
    this.#probe = probe;
    this.#timer = setInterval(() => void this.#sample(), intervalMs);
    void this.#sample();
  }

  async #sample(): Promise<void> {
    if (this.#busy) return;
    this.#busy = true;
    try {
      const value = await this.#probe();
      if (Number.isFinite(value)) this.samples.push({ at: Date.now(), value });
    } catch {
      // unreachable now: no sample
    } finally {
      this.#busy = false;
    }
  }

  get latest(): number {
    return this.samples.at(-1)?.value ?? 0;
  }

  /** When the counter first moved above zero (undefined: not yet). */
  firstProgressAt(): number | undefined {
    return this.samples.find((s) => s.value > 0)?.at;
  }

  /**
   * Seconds from `faultAt` until the pipeline moved again after the longest stall that
   * followed the fault: the gaps between `faultAt` and each later increase of the counter,
   * the longest of them, measured to its end. Null when it never moved after the fault.
   */
  recoverySeconds(faultAt: number): number | null {
    let previous = faultAt;
    let last = this.samples.filter((s) => s.at <= faultAt).at(-1)?.value ?? 0;
    let longest = -1;
    let endOfLongest: number | null = null;
    for (const s of this.samples) {
      if (s.at <= faultAt) continue;
      if (s.value > last) {
        if (s.at - previous > longest) {
          longest = s.at - previous;
          endOfLongest = s.at;
        }
        previous = s.at;
      }
      last = Math.max(last, s.value);
    }
    return endOfLongest === null ? null : (endOfLongest - faultAt) / 1000;
  }

  stop(): void {
    if (this.#timer) clearInterval(this.#timer);
    this.#timer = null;
  }
}

/** A number from one SQL query on a fresh connection (so a restarted server is no obstacle). */
export function sqlProbe(url: string, sql: string, params: unknown[] = []): Probe {
  return async () => {
    const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 1000, query_timeout: 2000 });
    client.on('error', () => undefined);
    await client.connect();
    try {
      const { rows } = await client.query<{ n: string | number | null }>(sql, params);
      return Number(rows[0]?.n ?? 0);
    } finally {
      await client.end().catch(() => undefined);
    }
  };
}
