/**
 * What the global setup (test/faults/global-setup.ts) hands every fault test: the suite's
 * own PostgreSQL server, which the tests restart and kill; and names no other run uses.
 */
import { randomBytes } from 'node:crypto';
import { PostgresServer } from '../helpers/postgres-server.ts';
import type { PostgresServerState } from '../helpers/postgres-server.ts';

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
