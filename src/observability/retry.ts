/**
 * The one fault policy: how tickflow rides through a dependency that went away (a broker
 * lost, a leader election, a coordinator move, PostgreSQL restarting).
 *
 * The adapters decide *whether* an error can be cured by waiting — from the Kafka
 * library's own flags (`canRetry`, network errors, error codes) in `src/log`, from
 * SQLSTATE classes in `src/db` — and throw a `TickflowError` whose `retriable` says so.
 * This module decides *how long and how loudly*: exponential backoff with jitter, one log
 * line per interval (not one per attempt), the wait visible in `/readyz` and in metrics
 * (`tickflow_dependency_waiting_seconds`), and after `--retry-for` (default 5m) one
 * non-retriable error naming the dependency and the last error, which ends the command.
 *
 * A wait registered by an inner call (say the producer, waiting for a new leader) counts
 * against the same deadline as the outer one (the runtime's loop) because the deadline is
 * per dependency and per outage, not per call: nested retries never multiply it.
 */
import { TickflowError, isTickflowError } from '../core/errors.ts';
import { lazyMetric } from './metrics.ts';

export type Dependency = 'kafka' | 'postgres';

export interface RetrySettings {
  /** How long one outage of a dependency may last before the command gives up. */
  retryForMs: number;
  /** First pause after a failure; doubles up to maxDelayMs (with ±20% jitter). */
  initialDelayMs: number;
  maxDelayMs: number;
  /** At most one "still waiting" line per dependency per interval. */
  logIntervalMs: number;
  logger: RetryLogger | null;
}

export interface RetryLogger {
  warn(obj: Record<string, unknown>, msg: string): void;
  info(obj: Record<string, unknown>, msg: string): void;
}

export const DEFAULT_RETRY_FOR_MS = 5 * 60_000;

const settings: RetrySettings = {
  retryForMs: DEFAULT_RETRY_FOR_MS,
  initialDelayMs: 100,
  maxDelayMs: 5_000,
  logIntervalMs: 10_000,
  logger: null,
};

/** Set once by the CLI from `--retry-for` and its logger; tests shorten it. */
export function configureRetries(changes: Partial<RetrySettings>): void {
  Object.assign(settings, changes);
}

export function retrySettings(): Readonly<RetrySettings> {
  return settings;
}

/** An outage in progress: what is awaited, since when, and the last error seen. */
export interface Outage {
  dependency: Dependency;
  action: string;
  since: number;
  attempts: number;
  lastError: string;
}

const outages = new Map<Dependency, Outage & { lastLog: number; callers: number }>();

/** Outages in progress, for /readyz and monitors. */
export function currentOutages(): Outage[] {
  return [...outages.values()].map(({ dependency, action, since, attempts, lastError }) => ({ dependency, action, since, attempts, lastError }));
}

const waiting = lazyMetric(
  (p) =>
    new p.Gauge({
      name: 'tickflow_dependency_waiting_seconds',
      help: 'How long tickflow has been waiting for a dependency (0 when it answers)',
      labelNames: ['dependency'] as const,
      collect() {
        const now = Date.now();
        for (const dependency of ['kafka', 'postgres'] as const) {
          const outage = outages.get(dependency);
          this.set({ dependency }, outage ? (now - outage.since) / 1000 : 0);
        }
      },
    }),
);
const retries = lazyMetric((p) => new p.Counter({ name: 'tickflow_dependency_retries_total', help: 'Operations retried because a dependency failed', labelNames: ['dependency'] as const }));
void waiting;

export interface RetryOptions {
  signal?: AbortSignal;
  /** Whether waiting can cure this error; default: a TickflowError marked retriable. */
  isRetriable?: (error: unknown) => boolean;
  /** Runs before every retry (refresh metadata, reconnect). */
  beforeRetry?: (error: unknown) => Promise<void> | void;
}

const defaultRetriable = (error: unknown) => isTickflowError(error) && error.retriable;

/**
 * Runs `operation` until it succeeds, retrying while the error is retriable and the
 * dependency's outage is younger than `--retry-for`. Aborting the signal stops waiting
 * and rethrows the last error.
 */
export async function withRetries<T>(dependency: Dependency, action: string, operation: () => Promise<T>, options: RetryOptions = {}): Promise<T> {
  const isRetriable = options.isRetriable ?? defaultRetriable;
  const outage = new OutageWatch(dependency, action);
  try {
    for (;;) {
      try {
        const result = await operation();
        outage.recovered();
        return result;
      } catch (error) {
        if (!isRetriable(error) || options.signal?.aborted) throw error;
        await outage.failed(error, options.signal);
        if (options.signal?.aborted) throw error;
        await options.beforeRetry?.(error);
      }
    }
  } finally {
    outage.leave();
  }
}

/**
 * The same policy for loops that are not one operation (a consumer that rejoins after an
 * outage): `failed` waits the next backoff step or throws the give-up error once the
 * outage is older than --retry-for; `recovered` ends the outage after real progress.
 */
export class OutageWatch {
  readonly #dependency: Dependency;
  readonly #action: string;
  #delay = settings.initialDelayMs;
  #joined = false;

  constructor(dependency: Dependency, action: string) {
    this.#dependency = dependency;
    this.#action = action;
  }

  async failed(error: unknown, signal?: AbortSignal): Promise<void> {
    const outage = noteFailure(this.#dependency, this.#action, error, this.#joined);
    this.#joined = true;
    const waited = Date.now() - outage.since;
    if (waited >= settings.retryForMs) {
      this.leave();
      throw gaveUp(this.#dependency, outage, error);
    }
    retries().inc({ dependency: this.#dependency });
    const pause = Math.min(this.#delay, settings.retryForMs - waited) * (0.8 + Math.random() * 0.4);
    this.#delay = Math.min(this.#delay * 2, settings.maxDelayMs);
    await pauseFor(pause, signal);
  }

  recovered(): void {
    if (!this.#joined) return;
    recovered(this.#dependency);
    this.#joined = false;
    this.#delay = settings.initialDelayMs;
  }

  leave(): void {
    if (this.#joined) leave(this.#dependency);
    this.#joined = false;
  }
}

function noteFailure(dependency: Dependency, action: string, error: unknown, joined: boolean) {
  const now = Date.now();
  const message = errorText(error);
  let outage = outages.get(dependency);
  if (!outage) {
    outage = { dependency, action, since: now, attempts: 0, lastError: message, lastLog: 0, callers: 0 };
    outages.set(dependency, outage);
  }
  if (!joined) outage.callers++;
  outage.attempts++;
  outage.action = action;
  outage.lastError = message;
  if (now - outage.lastLog >= settings.logIntervalMs) {
    outage.lastLog = now;
    settings.logger?.warn(
      { dependency, action, waitingMs: now - outage.since, attempts: outage.attempts, giveUpInMs: Math.max(0, settings.retryForMs - (now - outage.since)), err: message },
      `waiting for ${dependency}: ${action} failed; retrying`,
    );
  }
  return outage;
}

function recovered(dependency: Dependency): void {
  const outage = outages.get(dependency);
  if (!outage) return;
  settings.logger?.info({ dependency, waitedMs: Date.now() - outage.since, attempts: outage.attempts }, `${dependency} answers again`);
  outages.delete(dependency);
}

function leave(dependency: Dependency): void {
  const outage = outages.get(dependency);
  if (outage && --outage.callers <= 0) outages.delete(dependency);
}

function gaveUp(dependency: Dependency, outage: Outage, error: unknown): TickflowError {
  const seconds = Math.round((Date.now() - outage.since) / 1000);
  return new TickflowError(
    dependency === 'kafka' ? 'LOG_LOST' : 'DB_LOST',
    `${dependency === 'kafka' ? 'Kafka' : 'PostgreSQL'} unavailable for ${seconds}s (--retry-for ${Math.round(settings.retryForMs / 1000)}s): ${outage.action}: ${errorText(error).replace(`${outage.action}: `, '')}`,
    { dependency, action: outage.action, attempts: outage.attempts },
    { cause: error },
  );
}

function errorText(error: unknown): string {
  return ((error as Error)?.message ?? String(error)).replace(/\s+/g, ' ').trim();
}

function pauseFor(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal?.aborted) return resolve();
    const done = () => {
      clearTimeout(timer);
      signal?.removeEventListener('abort', done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal?.addEventListener('abort', done, { once: true });
  });
}
