/**
 * What the global setup (test/faults/global-setup.ts) hands every fault test: the suite's
 * own PostgreSQL server, which the tests restart and kill; and names no other run uses.
 */
import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { PostgresServer } from '../helpers/postgres-server.ts';
import type { PostgresServerState } from '../helpers/postgres-server.ts';
import { sqlProbe } from './progress.ts';
import type { Probe } from './progress.ts';

export function suitePostgres(): PostgresServer {
  const raw = process.env.TICKFLOW_FAULTS_POSTGRES;
  if (!raw) throw new Error('no suite PostgreSQL: run the fault tests through `npm run test:faults` (its global setup starts one)');
  return new PostgresServer(JSON.parse(raw) as PostgresServerState);
}

/** A fresh database on the suite's server, for one test. */
export function freshDatabase(label: string): Promise<string> {
  return suitePostgres().createDatabase(unique(label).replace(/-/g, '_'));
}

/** A topic, group or database name no other run uses. */
export function unique(label: string): string {
  return `faults-${label}-${randomBytes(4).toString('hex')}`;
}

/** Rows of one query on a fresh connection. */
export async function queryRows<R = Record<string, unknown>>(url: string, sql: string, params: unknown[] = []): Promise<R[]> {
  const client = new pg.Client({ connectionString: url });
  client.on('error', () => undefined);
  await client.connect();
  try {
    return (await client.query(sql, params)).rows as R[];
  } finally {
    await client.end().catch(() => undefined);
  }
}

/** Progress of a sink that keeps its offsets in PostgreSQL: the sum of its committed next offsets. */
export function committedOffsets(url: string, consumer: string): Probe {
  return sqlProbe(url, 'SELECT coalesce(sum(next_offset), 0) AS n FROM stored_offsets WHERE consumer = $1', [consumer]);
}

/** What a sink accounted for, with its offsets: accepted, invalid, late, dropped. */
export async function accounting(url: string, consumer: string): Promise<{ accepted: number; invalid: number; late: number; dropped: number }> {
  const [row] = await queryRows<Record<string, string | null>>(
    url,
    'SELECT sum(accepted) AS accepted, sum(invalid) AS invalid, sum(late) AS late, sum(dropped) AS dropped FROM pipeline_counts WHERE consumer = $1',
    [consumer],
  );
  return { accepted: Number(row.accepted ?? 0), invalid: Number(row.invalid ?? 0), late: Number(row.late ?? 0), dropped: Number(row.dropped ?? 0) };
}
