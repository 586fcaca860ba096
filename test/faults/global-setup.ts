/**
 * Global setup of `npm run test:faults`: checks that a 3-broker cluster started by
 * `npm run infra:up -- --brokers 3` answers (else the suite fails at once, saying so),
 * starts the suite's own PostgreSQL (initdb + pg_ctl on a free port: the tests restart
 * and kill it) and a fresh results file. The teardown prints the fault table, brings back
 * any broker a failed test left down, and removes the PostgreSQL server.
 */
import { mkdirSync, rmSync } from 'node:fs';
import path from 'node:path';
import { startPostgresServer } from '../helpers/postgres-server.ts';
import type { PostgresServer } from '../helpers/postgres-server.ts';
import { FAULT_BROKERS, checkCluster, restartBrokers, waitForFullIsr } from './cluster.ts';
import { formatTable, readResults } from './fault-table.ts';
import { ARTIFACTS } from './tickflow-process.ts';

let server: PostgresServer | null = null;
const started = Date.now();

export async function globalSetup(): Promise<void> {
  await checkCluster();
  await waitForFullIsr(60_000);
  mkdirSync(ARTIFACTS, { recursive: true });
  const results = path.join(ARTIFACTS, 'results.jsonl');
  rmSync(results, { force: true });
  process.env.TICKFLOW_FAULTS_RESULTS = results;
  server = await startPostgresServer('tickflow-faults-pg');
  process.env.TICKFLOW_FAULTS_POSTGRES = JSON.stringify(server.state);
  console.log(`fault suite: Kafka ${FAULT_BROKERS.join(',')} (3 brokers), own PostgreSQL on 127.0.0.1:${server.port}, logs in ${path.relative(process.cwd(), ARTIFACTS)}/`);
}

export async function globalTeardown(): Promise<void> {
  const results = process.env.TICKFLOW_FAULTS_RESULTS;
  if (results) console.log(`\n${formatTable(readResults(results))}\nfault suite: ${Math.round((Date.now() - started) / 1000)} s in all\n`);
  await restartBrokers().catch((error: unknown) => console.error(`fault suite: could not bring the brokers back: ${(error as Error).message}`));
  await server?.destroy();
}
