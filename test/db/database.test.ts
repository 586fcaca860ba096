import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { isTickflowError } from '../../src/core/errors.ts';
import { loadMigrations, migrate } from '../../src/db/migrations.ts';
import type { Database } from '../../src/db/types.ts';
import { allBackends, pgliteBackend, postgresBackend } from './backends.ts';

for (const backend of allBackends()) {
  describe(`database contract: ${backend.name}`, () => {
    let db: Database;
    before(async () => {
      db = await backend.open();
    });
    after(async () => {
      await db?.close();
      await backend.cleanup();
    });

    it('reports its kind', () => {
      assert.equal(db.kind, backend.name);
    });

    it('applies every migration exactly once; a re-run applies nothing', async () => {
      const { rows } = await db.query<{ n: string }>('SELECT count(*) AS n FROM tickflow_migrations');
      assert.equal(Number(rows[0].n), loadMigrations().length);
      assert.deepEqual(await migrate(db), []);
      const again = await db.query<{ n: string }>('SELECT count(*) AS n FROM tickflow_migrations');
      assert.equal(Number(again.rows[0].n), loadMigrations().length);
    });

    it('concurrent migrations on a fresh database apply each migration once', async () => {
      // Postgres: two instances race on a fresh schema (the advisory lock decides).
      // PGlite: one instance per data dir, so two migrate() calls race on it.
      const fresh = backend.name === 'postgres' ? postgresBackend() : pgliteBackend();
      const a = await fresh.openUnmigrated();
      const b = backend.name === 'postgres' ? await fresh.openUnmigrated() : a;
      try {
        const [ranA, ranB] = await Promise.all([migrate(a), migrate(b)]);
        assert.equal(ranA.length + ranB.length, loadMigrations().length);
        const { rows } = await a.query<{ version: number }>('SELECT version FROM tickflow_migrations ORDER BY version');
        assert.deepEqual(rows.map((r) => r.version), loadMigrations().map((m) => m.version));
      } finally {
        await a.close();
        await b.close();
        await fresh.cleanup();
      }
    });

    it('commits a transaction and returns its value', async () => {
      await db.query('CREATE TABLE tx_commit (id int PRIMARY KEY)');
      const value = await db.transaction(async (tx) => {
        await tx.query('INSERT INTO tx_commit VALUES (1)');
        return 'done';
      });
      assert.equal(value, 'done');
      assert.equal((await db.query('SELECT id FROM tx_commit')).rowCount, 1);
    });

    it('rolls back a transaction that throws and rethrows the error', async () => {
      await db.query('CREATE TABLE tx_rollback (id int PRIMARY KEY)');
      const boom = new Error('boom');
      await assert.rejects(
        db.transaction(async (tx) => {
          await tx.query('INSERT INTO tx_rollback VALUES (1)');
          throw boom;
        }),
        (error) => error === boom,
      );
      assert.equal((await db.query('SELECT id FROM tx_rollback')).rowCount, 0);
      // The connection went back to the pool clean: the next statement is not in a failed transaction.
      assert.equal((await db.query('SELECT 1 AS one')).rowCount, 1);
    });

    it('runs 20 concurrent read-modify-write transactions without losing or deadlocking one', async () => {
      await db.query('CREATE TABLE counter (id int PRIMARY KEY, n int NOT NULL)');
      await db.query('INSERT INTO counter VALUES (1, 0)');
      await Promise.all(
        Array.from({ length: 20 }, () =>
          db.transaction(async (tx) => {
            // FOR UPDATE keeps real Postgres correct; on PGlite the single connection already serialises.
            const { rows } = await tx.query<{ n: number }>('SELECT n FROM counter WHERE id = 1 FOR UPDATE');
            await new Promise((resolve) => setImmediate(resolve)); // let the others queue up meanwhile
            await tx.query('UPDATE counter SET n = $1 WHERE id = 1', [rows[0].n + 1]);
          }),
        ),
      );
      const { rows } = await db.query<{ n: number }>('SELECT n FROM counter WHERE id = 1');
      assert.equal(rows[0].n, 20);
    });

    it('keeps the SQLSTATE and constraint of a database error', async () => {
      await db.query('CREATE TABLE uniq (id int CONSTRAINT uniq_pk PRIMARY KEY)');
      await db.query('INSERT INTO uniq VALUES (1)');
      await assert.rejects(db.query('INSERT INTO uniq VALUES (1)'), (error) => {
        assert.ok(isTickflowError(error, 'DB_ERROR'));
        assert.equal(error.retriable, false);
        assert.equal(error.details.code, '23505');
        assert.equal(error.details.constraint, 'uniq_pk');
        assert.match(error.message, /23505/);
        return true;
      });
      await assert.rejects(
        db.transaction((tx) => tx.query('INSERT INTO uniq VALUES (1)')),
        (error) => isTickflowError(error, 'DB_ERROR') && error.details.code === '23505',
      );
    });

    it('refuses db.query inside db.transaction instead of deadlocking', async () => {
      await assert.rejects(
        db.transaction(() => db.query('SELECT 1')),
        (error) => isTickflowError(error, 'INTERNAL'),
      );
      assert.equal((await db.query('SELECT 1 AS one')).rowCount, 1);
    });

    it('returns bigint columns as exact strings', async () => {
      const { rows } = await db.query<{ big: string }>('SELECT $1::bigint AS big', ['9007199254740993']);
      assert.equal(rows[0].big, '9007199254740993');
    });
  });
}
