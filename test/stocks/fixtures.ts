/**
 * Shared by the stocks and HTTP tests: a schema of its own on the shared test server
 * (via the connection's search_path, so child processes get it from the URL), waiting
 * for a condition, and an independent recomputation of the window aggregates from raw
 * records — plain JSON.parse and arithmetic, none of the pipeline's code.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { createDatabaseIfMissing, openDatabase } from '../../src/db/open.ts';
import type { Database } from '../../src/db/types.ts';
import type { Log, LogRecord } from '../../src/log/types.ts';
import { TEST_DATABASE_URL } from '../helpers/env.ts';

export function uniqueName(prefix: string): string {
  return `${prefix}-${process.pid}-${randomBytes(4).toString('hex')}`;
}

export interface IsolatedDatabase {
  /** A URL whose connections work in the schema only. */
  url: string;
  schema: string;
  /** A migrated Database on the schema. */
  open(): Promise<Database>;
  /** Runs SQL as the server's admin (outside the schema unless qualified). */
  admin(sql: string, params?: unknown[]): Promise<pg.QueryResult>;
  drop(): Promise<void>;
}

export async function isolatedDatabase(label: string): Promise<IsolatedDatabase> {
  const schema = `${label}_${process.pid}_${randomBytes(4).toString('hex')}`.replace(/[^a-z0-9_]/g, '_');
  await createDatabaseIfMissing(TEST_DATABASE_URL);
  const admin = async (sql: string, params?: unknown[]) => {
    const client = new pg.Client({ connectionString: TEST_DATABASE_URL });
    await client.connect();
    try {
      return await client.query(sql, params);
    } finally {
      await client.end();
    }
  };
  await admin(`CREATE SCHEMA ${schema}`);
  const url = new URL(TEST_DATABASE_URL);
  url.searchParams.set('options', `-c search_path=${schema}`);
  return {
    url: url.toString(),
    schema,
    open: () => openDatabase({ url: url.toString(), retry: { attempts: 3 } }),
    admin,
    drop: async () => {
      await admin(`DROP SCHEMA ${schema} CASCADE`);
    },
  };
}

export async function waitFor(predicate: () => Promise<boolean> | boolean, what: string, timeoutMs = 120_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await predicate())) {
    if (Date.now() > deadline) assert.fail(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

export async function readAll(log: Log, topic: string): Promise<LogRecord[]> {
  const out: LogRecord[] = [];
  for await (const batch of log.readRange({ topic })) out.push(...batch);
  return out;
}

export const recordId = (partition: number, offset: bigint | string) => `${partition}@${offset}`;

export interface ExpectedWindow {
  ticker: string;
  start: number;
  end: number;
  count: number;
  sum: number;
  min: number;
  max: number;
}

/** Per (ticker, window): count, sum, min, max of the prices of every record not in `exclude`. */
export function recompute(records: readonly LogRecord[], windowMs: number, exclude: ReadonlySet<string> = new Set()): ExpectedWindow[] {
  const windows = new Map<string, ExpectedWindow>();
  for (const record of records) {
    if (exclude.has(recordId(record.partition, record.offset))) continue;
    const message = JSON.parse(record.value!.toString()) as { tickers: Array<{ name: string; price: number }>; ts: string };
    const time = Date.parse(message.ts);
    const start = Math.floor(time / windowMs) * windowMs;
    for (const { name, price } of message.tickers) {
      const key = `${name} ${start}`;
      const w = windows.get(key) ?? { ticker: name, start, end: start + windowMs, count: 0, sum: 0, min: Infinity, max: -Infinity };
      w.count += 1;
      w.sum += price;
      w.min = Math.min(w.min, price);
      w.max = Math.max(w.max, price);
      windows.set(key, w);
    }
  }
  return [...windows.values()].sort((a, b) => (a.ticker < b.ticker ? -1 : a.ticker > b.ticker ? 1 : a.start - b.start));
}

/** stock_windows as ExpectedWindow rows, plus the stored average for checking. */
export async function storedWindows(db: Database): Promise<Array<ExpectedWindow & { average: string }>> {
  const { rows } = await db.query<{ ticker: string; window_start: Date; window_end: Date; sample_count: string; price_sum: string; price_min: string; price_max: string; avg_price: string }>(
    'SELECT * FROM stock_windows ORDER BY ticker COLLATE "C", window_start',
  );
  return rows.map((r) => ({
    ticker: r.ticker,
    start: r.window_start.getTime(),
    end: r.window_end.getTime(),
    count: Number(r.sample_count),
    sum: Number(r.price_sum),
    min: Number(r.price_min),
    max: Number(r.price_max),
    average: r.avg_price,
  }));
}

/** Every stored row equals the recomputation, and the stored average is sum / count. */
export function assertSameWindows(stored: Awaited<ReturnType<typeof storedWindows>>, expected: ExpectedWindow[]): void {
  for (const row of stored) {
    assert.ok(Math.abs(Number(row.average) - row.sum / row.count) < 1e-9, `average of ${row.ticker}@${row.start} is sum/count`);
  }
  assert.deepEqual(stored.map(({ average: _average, ...rest }) => rest), expected);
}

/** Aggregator is done: every partition's stored offset is at the end and no window is open. */
export async function aggregatorCaughtUp(db: Database, log: Log, consumer: string, topic: string): Promise<boolean> {
  const ends = await log.offsets(topic);
  const { rows } = await db.query<{ partition: number; next_offset: string }>('SELECT partition, next_offset FROM stored_offsets WHERE consumer = $1 AND topic = $2', [consumer, topic]);
  const stored = new Map(rows.map((r) => [r.partition, BigInt(r.next_offset)]));
  if (!ends.every((p) => p.latest === 0n || stored.get(p.partition) === p.latest)) return false;
  const open = await db.query<{ n: string }>('SELECT count(*) AS n FROM stock_window_state WHERE consumer = $1 AND topic = $2', [consumer, topic]);
  return open.rows[0].n === '0';
}
