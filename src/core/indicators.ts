/**
 * The per-symbol indicators of `tickflow indicators`: EMA(N) and moving volatility(N)
 * over one window of N points, fed in arrival order. Pure: the pipeline owns keys,
 * partitions and persistence.
 */
import { Ema } from './ema.ts';
import type { EmaSnapshot } from './ema.ts';
import { MovingVolatility } from './volatility.ts';
import type { VolatilitySnapshot } from './volatility.ts';

export interface IndicatorValues {
  readonly ema: number;
  /** Null until the window holds 3 prices. */
  readonly volatility: number | null;
  /** Prices in the window: min(prices seen, N). */
  readonly points: number;
  /** 1-based ordinal of this price among all the symbol's prices: with the symbol, a unique key. */
  readonly seq: number;
}

/** A JSON-safe snapshot (every number round-trips exactly through JSON text). */
export interface IndicatorSnapshot {
  readonly window: number;
  /** Prices seen in all. */
  readonly seen: number;
  readonly ema: EmaSnapshot;
  readonly volatility: VolatilitySnapshot;
}

export class SymbolIndicators {
  readonly window: number;
  readonly #ema: Ema;
  readonly #volatility: MovingVolatility;
  #seen = 0;

  constructor(window: number, snapshot?: IndicatorSnapshot) {
    if (snapshot && snapshot.window !== window) {
      throw new RangeError(`indicator state was kept with a window of ${snapshot.window} points, not ${window}`);
    }
    this.window = window;
    this.#ema = new Ema(window, snapshot?.ema);
    this.#volatility = new MovingVolatility(window, snapshot?.volatility);
    this.#seen = snapshot?.seen ?? 0;
  }

  /** Adds a price (> 0, finite) and returns the indicators including it. */
  update(price: number): IndicatorValues {
    const volatility = this.#volatility.update(price);
    const ema = this.#ema.update(price);
    return { ema, volatility, points: this.#ema.points, seq: ++this.#seen };
  }

  snapshot(): IndicatorSnapshot {
    return { window: this.window, seen: this.#seen, ema: this.#ema.snapshot(), volatility: this.#volatility.snapshot() };
  }
}
