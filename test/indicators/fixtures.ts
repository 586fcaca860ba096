/**
 * Shared fixtures of the indicators and archive integration tests: seeded price streams,
 * a private Postgres schema per test file, reading a topic back, a long-running child.
 */
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { createDatabaseIfMissing, openDatabase } from '../../src/db/open.ts';
import type { Database } from '../../src/db/types.ts';
import type { Log, LogRecord } from '../../src/log/types.ts';
import { BIN } from '../helpers/cli.ts';
import { TEST_DATABASE_URL } from '../helpers/env.ts';
import { transactionsSettled } from '../helpers/transactions.ts';
import { randomWalk, seededRandom } from './reference.ts';

export const uniqueName = (prefix: string) => `${prefix}-${process.pid}-${randomBytes(4).toString('hex')}`;

export interface PriceTick {
  symbol: string;
  ts: string;
  price: number;
}

/**
 * `perSymbol` prices for each of `symbols` symbols (random walks in cents), interleaved
 * in a seeded random order; event times one second apart.
 */
export function seededStream(symbols: number, perSymbol: number, seed: number): { ticks: PriceTick[]; walks: Map<string, number[]> } {
  const random = seededRandom(seed);
  const names = Array.from({ length: symbols }, (_, i) => `SYM${String(i).padStart(2, '0')}`);
  const walks = new Map(names.map((name, i) => [name, randomWalk(random, perSymbol, 20 + 13 * i, 0.002 + 0.001 * (i % 7))]));
  const next = new Map(names.map((name) => [name, 0]));
  const ticks: PriceTick[] = [];
  const start = Date.UTC(2021, 2, 10, 16, 0, 0);
  while (ticks.length < symbols * perSymbol) {
    const name = names[Math.floor(random() * names.length)];
    const i = next.get(name)!;
    if (i >= perSymbol) continue;
    next.set(name, i + 1);
    ticks.push({ symbol: name, ts: new Date(start + ticks.length * 1000).toISOString().replace('T', ' ').replace('Z', ''), price: walks.get(name)![i] });
  }
  return { ticks, walks };
}

export const encodeTick = (t: PriceTick) => JSON.stringify({ ts: t.ts, symbol: t.symbol, price: t.price });

export async function produceTicks(log: Log, topic: string, ticks: readonly PriceTick[]): Promise<void> {
  const producer = log.producer();
  try {
    await producer.send(topic, ticks.map((t) => ({ key: t.symbol, value: encodeTick(t) })));
  } finally {
    await producer.close();
  }
}

/** Every record a read_committed reader sees, once no transaction is open on the topic (or after 10 s). */
export async function readAll(log: Log, topic: string): Promise<LogRecord[]> {
  await transactionsSettled(log, topic);
  const records: LogRecord[] = [];
  for await (const batch of log.readRange({ topic })) for (const record of batch) records.push(record);
  return records;
}

/** Records a read_committed reader sees (offsets also count transaction markers and aborted records). */
export { transactionsSettled };

export async function messageCount(log: Log, topic: string): Promise<number> {
  return (await readAll(log, topic)).length;
}

/** A schema of our own on the shared test server, so nothing we do touches other suites' tables. */
export interface PrivateSchema {
  /** The test database URL with this schema first on the search_path. */
  url: string;
  open(): Promise<Database>;
  query<R = Record<string, unknown>>(sql: string, params?: unknown[]): Promise<R[]>;
  drop(): Promise<void>;
}

export async function privateSchema(prefix: string): Promise<PrivateSchema> {
  const schema = `${prefix}_${process.pid}_${randomBytes(4).toString('hex')}`;
  await createDatabaseIfMissing(TEST_DATABASE_URL);
  const url = new URL(TEST_DATABASE_URL);
  url.searchParams.set('options', `-c search_path=${schema}`);
  const pool = new pg.Pool({ connectionString: url.toString(), max: 2 });
  await pool.query(`CREATE SCHEMA ${schema}`);
  return {
    url: url.toString(),
    open: () => openDatabase({ url: url.toString(), retry: { attempts: 3 } }),
    query: async (sql, params) => (await pool.query(sql, params)).rows,
    drop: async () => {
      await pool.query(`DROP SCHEMA ${schema} CASCADE`);
      await pool.end();
    },
  };
}

/** A long-running `tickflow` child: stopped by a signal, unlike helpers/cli.ts's run-to-exit. */
export interface RunningCli {
  child: ChildProcess;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null; stdout: string; stderr: string }>;
}

export function startTickflow(args: readonly string[], env: NodeJS.ProcessEnv = {}): RunningCli {
  const child = spawn(process.execPath, [BIN, ...args], {
    env: { ...process.env, LOG_LEVEL: 'warn', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout!.on('data', (d) => (stdout += d));
  child.stderr!.on('data', (d) => (stderr += d));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null; stdout: string; stderr: string }>((resolve, reject) => {
    child.on('error', reject);
    child.on('close', (code, signal) => resolve({ code, signal, stdout, stderr }));
  });
  return { child, exited };
}

/** Polls `condition` until it holds; fails with `what` after `timeoutMs` (a safety net, not a timed assertion). */
export async function waitFor(what: string, condition: () => Promise<boolean>, timeoutMs = 120_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`gave up waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}
