import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { isTickflowError } from '../../src/core/errors.ts';
import { openDatabase } from '../../src/db/open.ts';
import { openPglite } from '../../src/db/pglite.ts';
import { loadMigrations } from '../../src/db/migrations.ts';
import { lockDataDir } from '../../src/db/pglite-lock.ts';

describe('embedded PGlite', () => {
  const root = mkdtempSync(join(tmpdir(), 'tickflow-pglite-'));
  after(() => rmSync(root, { recursive: true, force: true }));

  it('persists data across close and reopen of a data dir', async () => {
    const dataDir = join(root, 'persist');
    const first = await openDatabase({ dataDir });
    assert.equal(first.description, dataDir);
    await first.query('CREATE TABLE kept (v text)');
    await first.query('INSERT INTO kept VALUES ($1)', ['still here']);
    await first.close();
    await first.close(); // idempotent

    const second = await openDatabase({ dataDir });
    try {
      assert.deepEqual((await second.query('SELECT v FROM kept')).rows, [{ v: 'still here' }]);
      const { rows } = await second.query<{ n: string }>('SELECT count(*) AS n FROM tickflow_migrations');
      assert.equal(Number(rows[0].n), loadMigrations().length); // each applied once, not re-applied on reopen
    } finally {
      await second.close();
    }
  });

  it('refuses a second open of a data dir that is in use, and frees it on close', async () => {
    const dataDir = join(root, 'locked');
    const first = await openPglite({ dataDir });
    await assert.rejects(openPglite({ dataDir }), (error) => isTickflowError(error, 'DB_ERROR') && /already open/.test(error.message));
    await first.close();
    const again = await openPglite({ dataDir });
    await again.close();
  });

  it('serves over a unix socket when asked', async () => {
    const db = await openPglite({ dataDir: 'memory://', socketDir: mkdtempSync(join(root, 'sock-')) });
    try {
      assert.equal((await db.query<{ one: number }>('SELECT 1 AS one')).rows[0].one, 1);
    } finally {
      await db.close();
    }
  });
});

describe('PGlite data dir lock', () => {
  const root = mkdtempSync(join(tmpdir(), 'tickflow-lock-'));
  after(() => rmSync(root, { recursive: true, force: true }));

  it('refuses a dir locked by another live process', () => {
    const dataDir = join(root, 'live');
    writeFileSync(`${dataDir}.lock`, String(process.ppid));
    assert.throws(() => lockDataDir(dataDir), (error) => isTickflowError(error, 'DB_ERROR') && error.message.includes(`process ${process.ppid}`));
  });

  it('takes over a lock left by a dead process, or by an earlier run with our own pid', () => {
    for (const stalePid of ['999999999', String(process.pid)]) {
      const dataDir = join(root, `stale-${stalePid}`);
      writeFileSync(`${dataDir}.lock`, stalePid);
      const unlock = lockDataDir(dataDir);
      assert.equal(readFileSync(`${dataDir}.lock`, 'utf8').split('\n')[0], String(process.pid));
      unlock();
      assert.equal(existsSync(`${dataDir}.lock`), false);
    }
  });
});
