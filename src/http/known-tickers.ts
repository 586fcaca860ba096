/**
 * The set of tickers that have aggregates, cached briefly so validating `ticker` costs
 * no query per request; a miss re-reads it (at most every `minRefreshMs`) so a ticker
 * that just appeared is found.
 */
import { stockTickers } from '../db/stock-prices.ts';
import type { Queryable } from '../db/types.ts';

export class KnownTickers {
  readonly #db: Queryable;
  readonly #ttlMs: number;
  readonly #minRefreshMs: number;
  #tickers: Set<string> | null = null;
  #loadedAt = 0;
  #loading: Promise<Set<string>> | null = null;

  constructor(db: Queryable, options: { ttlMs?: number; minRefreshMs?: number } = {}) {
    this.#db = db;
    this.#ttlMs = options.ttlMs ?? 5_000;
    this.#minRefreshMs = options.minRefreshMs ?? 500;
  }

  async all(): Promise<string[]> {
    return [...(await this.#current(false))].sort();
  }

  /** The requested names that have no aggregates. */
  async unknown(names: readonly string[]): Promise<string[]> {
    let known = await this.#current(false);
    if (names.some((n) => !known.has(n)) && Date.now() - this.#loadedAt >= this.#minRefreshMs) known = await this.#current(true);
    return names.filter((n) => !known.has(n));
  }

  async #current(force: boolean): Promise<Set<string>> {
    if (this.#tickers && !force && Date.now() - this.#loadedAt < this.#ttlMs) return this.#tickers;
    this.#loading ??= stockTickers(this.#db)
      .then((list) => {
        this.#tickers = new Set(list);
        this.#loadedAt = Date.now();
        return this.#tickers;
      })
      .finally(() => {
        this.#loading = null;
      });
    return this.#loading;
  }
}
