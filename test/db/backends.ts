/**
 * The two database backends every shared suite runs against: the real PostgreSQL from
 * TEST_DATABASE_URL and the embedded PGlite. On the shared real server each test file
 * works in a schema of its own (via the connection's search_path) and drops it after,
 * so parallel test files and other suites never see each other's tables.
 */
import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { createDatabaseIfMissing, openDatabase } from '../../src/db/open.ts';
import { openPglite } from '../../src/db/pglite.ts';
import { createPostgresDatabase } from '../../src/db/postgres.ts';
import type { Database } from '../../src/db/types.ts';

export const TEST_DATABASE_URL = process.env.TEST_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/tickflow_test';

export interface Backend {
  name: 'postgres' | 'pglite';
  /** A migrated Database; on postgres each call is another instance on the same data. */
  open(): Promise<Database>;
  /** Like `open` but not migrated. PGlite: a new empty in-memory database each time. */
  openUnmigrated(): Promise<Database>;
  /** Drops what the backend created; call once in `after`. */
  cleanup(): Promise<void>;
}

export function postgresBackend(): Backend {
  const schema = `tickflow_test_${process.pid}_${randomBytes(4).toString('hex')}`;
  const url = new URL(TEST_DATABASE_URL);
  url.searchParams.set('options', `-c search_path=${schema}`);
  let created = false;
  const ensureSchema = async (): Promise<void> => {
    if (created) return;
    await createDatabaseIfMissing(TEST_DATABASE_URL);
    await admin(`CREATE SCHEMA ${schema}`);
    created = true;
  };
  return {
    name: 'postgres',
    async open() {
      await ensureSchema();
      return openDatabase({ url: url.toString(), retry: { attempts: 3 } });
    },
    async openUnmigrated() {
      await ensureSchema();
      return createPostgresDatabase(url.toString());
    },
    async cleanup() {
      if (created) await admin(`DROP SCHEMA ${schema} CASCADE`);
    },
  };
}

export function pgliteBackend(): Backend {
  return {
    name: 'pglite',
    open: () => openDatabase({ dataDir: 'memory://' }),
    openUnmigrated: () => openPglite({ dataDir: 'memory://' }),
    async cleanup() {},
  };
}

export function allBackends(): Backend[] {
  return [postgresBackend(), pgliteBackend()];
}

/** Test-unique names, so rows from other runs on the shared server can never match. */
export function uniqueName(prefix: string): string {
  return `${prefix}-${process.pid}-${randomBytes(4).toString('hex')}`;
}

async function admin(sql: string): Promise<void> {
  const client = new pg.Client({ connectionString: TEST_DATABASE_URL });
  await client.connect();
  try {
    await client.query(sql);
  } finally {
    await client.end();
  }
}
