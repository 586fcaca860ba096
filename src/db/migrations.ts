/**
 * Versioned schema: `migrations/NNNN_name.sql` files applied in version order at start,
 * each in its own transaction with its row in `tickflow_migrations`, so a crash leaves
 * either all or nothing of a migration and a re-run applies only what is missing.
 * Every step first takes one transaction-scoped advisory lock: two services starting
 * at once serialise, and the second finds the work done. A file must not contain its
 * own BEGIN/COMMIT. Applied files are never edited; add a new one.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { TickflowError } from '../core/errors.ts';
import type { Database, DbLogger, Queryable } from './types.ts';

export interface Migration {
  version: number;
  name: string;
  sql: string;
}

export const MIGRATIONS_DIR = fileURLToPath(new URL('./migrations/', import.meta.url));

/** "tick" in ASCII, then a sub-key: an arbitrary but stable pair for pg_advisory_xact_lock. */
const LOCK_KEY = [0x7469636b, 1];
const FILE_NAME = /^(\d+)_([\w-]+)\.sql$/;

export function loadMigrations(dir: string = MIGRATIONS_DIR): Migration[] {
  const migrations: Migration[] = [];
  for (const file of readdirSync(dir).sort()) {
    const match = FILE_NAME.exec(file);
    if (!match) continue;
    migrations.push({ version: Number(match[1]), name: match[2], sql: readFileSync(join(dir, file), 'utf8') });
  }
  migrations.sort((a, b) => a.version - b.version);
  for (let i = 1; i < migrations.length; i++) {
    if (migrations[i].version === migrations[i - 1].version) {
      throw new TickflowError('INTERNAL', `two migrations share version ${migrations[i].version} in ${dir}`, { dir });
    }
  }
  return migrations;
}

/** Applies what is missing; returns the migrations applied by this call (none on a re-run). */
export async function migrate(db: Database, options: { dir?: string; logger?: DbLogger } = {}): Promise<Migration[]> {
  const migrations = loadMigrations(options.dir);
  await db.transaction(async (tx) => {
    await lock(tx);
    await tx.query(`CREATE TABLE IF NOT EXISTS tickflow_migrations (
      version    int PRIMARY KEY,
      name       text NOT NULL,
      applied_at timestamptz NOT NULL DEFAULT now()
    )`);
  });
  const done = await appliedVersions(db);
  const applied: Migration[] = [];
  for (const migration of migrations) {
    if (done.has(migration.version)) continue;
    const ran = await db.transaction(async (tx) => {
      await lock(tx);
      // Re-check under the lock: another instance may have applied it since we looked.
      if ((await appliedVersions(tx)).has(migration.version)) return false;
      await tx.query(migration.sql);
      await tx.query('INSERT INTO tickflow_migrations (version, name) VALUES ($1, $2)', [migration.version, migration.name]);
      return true;
    });
    if (ran) {
      applied.push(migration);
      options.logger?.info({ database: db.description, version: migration.version, name: migration.name }, 'migration applied');
    }
  }
  return applied;
}

/** The migrations applied to the database, oldest first (for `tickflow migrate`). */
export async function appliedMigrations(db: Queryable): Promise<Array<{ version: number; name: string }>> {
  const { rows } = await db.query<{ version: number; name: string }>('SELECT version, name FROM tickflow_migrations ORDER BY version');
  return rows;
}

async function lock(tx: Queryable): Promise<void> {
  await tx.query('SELECT pg_advisory_xact_lock($1, $2)', LOCK_KEY);
}

async function appliedVersions(db: Queryable): Promise<Set<number>> {
  const { rows } = await db.query<{ version: number }>('SELECT version FROM tickflow_migrations');
  return new Set(rows.map((row) => row.version));
}
