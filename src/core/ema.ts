/**
 * Exponential moving average over a window of N points, alpha = 2 / (N + 1).
 *
 * Seeding: while fewer than N points have been seen, the value is the plain mean of the
 * points so far (so after exactly N points it is SMA(N), the classic seed); from point
 * N + 1 on, `ema = ema + alpha * (x - ema)`. `points` counts the points the window holds
 * (min(seen, N)): below N the average is still a warm-up value.
 *
 * The state is two numbers, so a snapshot restores bit-identical continuation.
 */

export interface EmaSnapshot {
  readonly value: number;
  readonly points: number;
}

export class Ema {
  readonly window: number;
  readonly alpha: number;
  #value = Number.NaN;
  #points = 0;

  constructor(window: number, snapshot?: EmaSnapshot) {
    if (!Number.isSafeInteger(window) || window < 1) throw new RangeError(`EMA window must be a positive integer, got ${window}`);
    this.window = window;
    this.alpha = 2 / (window + 1);
    if (snapshot) {
      if (!Number.isInteger(snapshot.points) || snapshot.points < 0 || snapshot.points > window) {
        throw new RangeError(`EMA snapshot holds ${snapshot.points} points, window is ${window}`);
      }
      this.#value = snapshot.points === 0 ? Number.NaN : snapshot.value;
      this.#points = snapshot.points;
    }
  }

  /** Adds a point; returns the new average. */
  update(x: number): number {
    if (this.#points < this.window) {
      this.#points++;
      this.#value = this.#points === 1 ? x : this.#value + (x - this.#value) / this.#points;
    } else {
      this.#value += this.alpha * (x - this.#value);
    }
    return this.#value;
  }

  /** NaN before the first point. */
  get value(): number {
    return this.#value;
  }

  get points(): number {
    return this.#points;
  }

  snapshot(): EmaSnapshot {
    return { value: this.#value, points: this.#points };
  }
}
