/**
 * What the live dashboard shows, as one JSON snapshot: the latest 30-second aggregates and
 * their recent history per ticker (stock_windows), EMA and volatility per symbol
 * (indicator_state), unique users per minute (the unique-users topic), records per second
 * per topic (end-offset deltas) and consumer lag (the monitor's snapshot).
 *
 * One LiveSnapshots per app: however many pages watch, the sources are read at most once
 * per `minAgeMs`, and only while someone asks. Each section fails on its own: a missing
 * table or an unreachable broker empties that section and says why in `notes`, in words
 * fit for anyone who can open the page (no SQLSTATE, URL or broker address: the server log
 * has the error itself).
 */
import { isTickflowError } from '../core/errors.ts';
import { MovingVolatility } from '../core/volatility.ts';
import { latestIndicatorStates, recentStockWindows } from '../db/dashboard-queries.ts';
import type { KeptIndicatorState, RecentWindow } from '../db/dashboard-queries.ts';
import type { Queryable } from '../db/types.ts';
import type { Log } from '../log/types.ts';
import { collectSnapshot } from '../observability/reconciliation.ts';
import type { Problem } from '../observability/reconciliation.ts';
import { publicError } from './error-handler.ts';
import { ThroughputHistory } from './live-throughput.ts';
import type { ThroughputView, TopicTotals } from './live-throughput.ts';
import { UniqueUsersFeed } from './live-unique-users.ts';
import type { UniqueUsersView } from './live-unique-users.ts';

/** The topics tickflow's commands use by default: what the dashboard watches unless told otherwise. */
export const DEFAULT_DASHBOARD_TOPICS: readonly string[] = Object.freeze([
  'prices', 'prices-dlq', 'volatility', 'stocks', 'stocks-dlq',
  'user-tracker', 'user-tracker-late', 'unique-users', 'users', 'users-clean', 'users-stats', 'users-dlq', 'user-tracker-dlq',
]);

export interface DashboardOptions {
  /** Topics for throughput and lag: a list (those that exist are shown) or 'all' (every topic but `__*`). */
  topics?: readonly string[] | 'all';
  /** Where `unique-users` writes its minutes. Default `unique-users`. */
  uniqueUsersTopic?: string;
  /** Seconds between live updates (SSE). Default 1. */
  intervalMs?: number;
  /** Consumer lag asks every group about every topic: refresh it at most this often. Default 2000. */
  lagEveryMs?: number;
  /** Windows per ticker in the history. Default 60 (30 minutes). */
  windows?: number;
  /** Most tickers and symbols shown. Default 12 tickers, 50 symbols. */
  tickers?: number;
  symbols?: number;
  /** Minutes of unique users kept. Default 120. */
  minutes?: number;
}

export interface WindowView {
  windowStart: string;
  windowEnd: string;
  averagePrice: number;
  sampleCount: number;
  minPrice: number;
  maxPrice: number;
}

export interface TickerView {
  ticker: string;
  latest: WindowView;
  /** The window before the latest, for the change. */
  previousAverage: number | null;
  /** Column-wise, oldest first: window starts (unix seconds) and averages. */
  history: { t: number[]; average: number[] };
}

export interface IndicatorView {
  symbol: string;
  /** The last price the indicators saw. */
  price: number | null;
  ema: number | null;
  /** Sample standard deviation of log returns over the window; null below 3 prices. */
  volatility: number | null;
  /** Prices in the window (≤ window). */
  points: number;
  window: number;
  /** Prices seen in all. */
  seen: number;
  consumer: string;
  topic: string;
  updatedAt: string;
}

export interface ConsumerLagView {
  kind: 'group' | 'stored';
  name: string;
  topic: string;
  lag: number;
  consumed: number;
  partitions: number;
}

export interface LagView {
  at: string;
  consumers: ConsumerLagView[];
  problems: Problem[];
}

export interface DashboardSnapshot {
  at: string;
  /** Which kind of log feeds the page (no broker addresses: anyone who can open it sees this). */
  log: { kind: 'kafka' | 'memory'; description: string } | null;
  stocks: TickerView[] | null;
  indicators: IndicatorView[] | null;
  uniqueUsers: UniqueUsersView | null;
  throughput: ThroughputView | null;
  lag: LagView | null;
  /** Why a section is empty or missing. */
  notes: string[];
}

export interface LiveSnapshotDeps {
  db: Queryable;
  log?: Log;
  logger?: { warn(obj: object, msg: string): void };
  options?: DashboardOptions;
  /** Wall clock (ms), injectable. */
  now?: () => number;
}

export class LiveSnapshots {
  readonly intervalMs: number;
  readonly #deps: LiveSnapshotDeps;
  readonly #options: Required<Omit<DashboardOptions, 'topics'>> & { topics: readonly string[] | 'all' };
  readonly #now: () => number;
  readonly #throughput = new ThroughputHistory();
  readonly #lag: LagWatch | null;
  readonly #uniqueUsers: UniqueUsersFeed | null;
  #cached: { atMs: number; snapshot: DashboardSnapshot } | null = null;
  #building: Promise<DashboardSnapshot> | null = null;

  constructor(deps: LiveSnapshotDeps) {
    const o = deps.options ?? {};
    this.#options = {
      topics: o.topics ?? DEFAULT_DASHBOARD_TOPICS,
      uniqueUsersTopic: o.uniqueUsersTopic ?? 'unique-users',
      intervalMs: o.intervalMs ?? 1000,
      lagEveryMs: o.lagEveryMs ?? 2000,
      windows: o.windows ?? 60,
      tickers: o.tickers ?? 12,
      symbols: o.symbols ?? 50,
      minutes: o.minutes ?? 120,
    };
    this.intervalMs = this.#options.intervalMs;
    this.#deps = deps;
    this.#now = deps.now ?? Date.now;
    this.#lag = deps.log ? new LagWatch(deps.log, deps.db, this.#options.lagEveryMs, this.#now) : null;
    this.#uniqueUsers = deps.log ? new UniqueUsersFeed(deps.log, this.#options.uniqueUsersTopic, { keep: this.#options.minutes }) : null;
  }

  /** The current snapshot: cached for half an interval, and one build at a time. */
  async latest(): Promise<DashboardSnapshot> {
    const cached = this.#cached;
    if (cached && this.#now() - cached.atMs < this.intervalMs / 2) return cached.snapshot;
    this.#building ??= this.#build().finally(() => {
      this.#building = null;
    });
    return this.#building;
  }

  async #build(): Promise<DashboardSnapshot> {
    const notes: string[] = [];
    const section = async <T>(name: string, read: () => Promise<T>): Promise<T | null> => {
      try {
        return await read();
      } catch (error) {
        this.#deps.logger?.warn({ err: (error as Error)?.message ?? String(error), section: name }, 'dashboard section unavailable');
        notes.push(`${name}: ${sectionTrouble(error)}`);
        return null;
      }
    };
    const { log } = this.#deps;
    if (!log) notes.push('no log configured: throughput, lag and unique users are not shown');
    const [stocks, indicators, logParts] = await Promise.all([
      section('stocks', () => this.#stocks()),
      section('indicators', () => this.#indicators()),
      log ? section('log', () => this.#topics(log)) : Promise.resolve(null),
    ]);
    let throughput: ThroughputView | null = null;
    let uniqueUsers: UniqueUsersView | null = null;
    let lag: LagView | null = null;
    if (log && logParts) {
      throughput = await section('throughput', () => this.#sampleThroughput(log, logParts.watched));
      if (logParts.existing.has(this.#options.uniqueUsersTopic)) uniqueUsers = await section('unique users', () => this.#uniqueUsers!.refresh());
      else notes.push(`unique users: topic ${this.#options.uniqueUsersTopic} does not exist yet (run tickflow unique-users)`);
      lag = await section('lag', () => this.#lag!.current(logParts.watched));
    }
    if (stocks?.length === 0) notes.push('stocks: no 30-second aggregates yet (run tickflow generate stocks and tickflow aggregate stocks)');
    if (indicators?.length === 0) notes.push('indicators: no indicator state yet (run tickflow indicators)');
    const snapshot: DashboardSnapshot = {
      at: new Date(this.#now()).toISOString(),
      log: log ? { kind: log.kind, description: log.kind === 'kafka' ? 'Kafka' : 'embedded in-process log' } : null,
      stocks,
      indicators,
      uniqueUsers,
      throughput,
      lag,
      notes,
    };
    this.#cached = { atMs: this.#now(), snapshot };
    return snapshot;
  }

  async #stocks(): Promise<TickerView[]> {
    const rows = await recentStockWindows(this.#deps.db, { tickers: this.#options.tickers, windows: this.#options.windows });
    const byTicker = new Map<string, RecentWindow[]>();
    for (const row of rows) {
      if (!byTicker.has(row.ticker)) byTicker.set(row.ticker, []);
      byTicker.get(row.ticker)!.push(row);
    }
    return [...byTicker].map(([ticker, windows]) => {
      const last = windows[windows.length - 1];
      return {
        ticker,
        latest: {
          windowStart: last.windowStart.toISOString(),
          windowEnd: last.windowEnd.toISOString(),
          averagePrice: last.averagePrice,
          sampleCount: last.sampleCount,
          minPrice: last.minPrice,
          maxPrice: last.maxPrice,
        },
        previousAverage: windows.length > 1 ? windows[windows.length - 2].averagePrice : null,
        history: { t: windows.map((w) => w.windowStart.getTime() / 1000), average: windows.map((w) => w.averagePrice) },
      };
    });
  }

  async #indicators(): Promise<IndicatorView[]> {
    return (await latestIndicatorStates(this.#deps.db, { limit: this.#options.symbols })).map(indicatorView);
  }

  async #topics(log: Log): Promise<{ existing: Set<string>; watched: string[] }> {
    const existing = new Set(await log.listTopics());
    const wanted = this.#options.topics;
    const watched = wanted === 'all' ? [...existing].filter((t) => !t.startsWith('__')).sort() : wanted.filter((t) => existing.has(t));
    return { existing, watched };
  }

  async #sampleThroughput(log: Log, topics: readonly string[]): Promise<ThroughputView> {
    const totals: TopicTotals[] = [];
    for (const topic of topics) {
      const partitions = await log.offsets(topic);
      totals.push({
        topic,
        messages: partitions.reduce((n, p) => n + Number(p.latest - p.earliest), 0),
        written: partitions.reduce((n, p) => n + Number(p.latest), 0),
      });
    }
    this.#throughput.observe(this.#now(), totals);
    return this.#throughput.view();
  }
}

/** Why a section could not be read, without the error's own text (that goes to the log). */
function sectionTrouble(error: unknown): string {
  if (isTickflowError(error, 'LOG_UNAVAILABLE') || isTickflowError(error, 'LOG_LOST')) return 'the log is unavailable; retrying';
  if (isTickflowError(error, 'UNKNOWN_TOPIC')) return 'a topic it reads does not exist yet';
  const trouble = publicError(error);
  if (trouble.code === 'NOT_READY') return 'the database is not migrated yet (run tickflow migrate)';
  if (trouble.code === 'DATABASE_UNAVAILABLE') return 'the database is unavailable; retrying';
  return 'could not be read; the server log has the details';
}

/**
 * The values the indicators held after their last price, from the kept state alone: the
 * EMA is kept as it is, the last price and the volatility window's sums are in the
 * volatility state, and the core operator restored from them gives the volatility.
 */
export function indicatorView(kept: KeptIndicatorState): IndicatorView {
  const { snapshot } = kept;
  const volatility = new MovingVolatility(snapshot.window, snapshot.volatility);
  return {
    symbol: kept.symbol,
    price: snapshot.volatility.lastPrice,
    ema: snapshot.ema.points === 0 ? null : snapshot.ema.value,
    volatility: volatility.value,
    points: snapshot.ema.points,
    window: snapshot.window,
    seen: snapshot.seen,
    consumer: kept.consumer,
    topic: kept.topic,
    updatedAt: kept.updatedAt.toISOString(),
  };
}

/**
 * Consumer lag from the monitor's snapshot. Asking every group about every topic takes a
 * request per pair, so it is refreshed in the background at most every `everyMs`; a
 * snapshot uses the last answer (the first one waits for it).
 */
class LagWatch {
  readonly #log: Log;
  readonly #db: Queryable;
  readonly #everyMs: number;
  readonly #now: () => number;
  #last: { atMs: number; view: LagView; topics: string } | null = null;
  #refreshing: Promise<LagView> | null = null;

  constructor(log: Log, db: Queryable, everyMs: number, now: () => number) {
    this.#log = log;
    this.#db = db;
    this.#everyMs = everyMs;
    this.#now = now;
  }

  async current(topics: readonly string[]): Promise<LagView> {
    const key = topics.join('\u0000');
    const last = this.#last;
    const stale = !last || last.topics !== key || this.#now() - last.atMs >= this.#everyMs;
    if (stale) this.#refreshing ??= this.#refresh(topics, key).finally(() => (this.#refreshing = null));
    if (last && last.topics === key) {
      this.#refreshing?.catch(() => undefined); // reported by the snapshot that waits for it, if any
      return last.view;
    }
    return this.#refreshing!;
  }

  async #refresh(topics: readonly string[], key: string): Promise<LagView> {
    const snapshot = await collectSnapshot(this.#log, this.#db, { topics });
    const view: LagView = {
      at: snapshot.at,
      consumers: snapshot.consumers.map((c) => ({ kind: c.kind, name: c.name, topic: c.topic, lag: c.lag, consumed: c.consumed, partitions: c.partitions.length })),
      problems: snapshot.problems,
    };
    this.#last = { atMs: this.#now(), view, topics: key };
    return view;
  }
}
