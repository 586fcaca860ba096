import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, readdirSync, readlinkSync, rmSync, statSync, writeFileSync } from 'node:fs';
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

/** Inodes of this process's listening TCP sockets (Linux /proc): what another local user could connect to. */
function listeningTcpInodes(): Set<string> {
  const mine = new Set(readdirSync('/proc/self/fd').map((fd) => {
    try {
      return /^socket:\[(\d+)\]$/.exec(readlinkSync(`/proc/self/fd/${fd}`))?.[1];
    } catch {
      return undefined;
    }
  }).filter((inode) => inode !== undefined));
  const listening = new Set<string>();
  for (const table of ['/proc/net/tcp', '/proc/net/tcp6']) {
    for (const line of readFileSync(table, 'utf8').split('\n').slice(1)) {
      const fields = line.trim().split(/\s+/);
      if (fields[3] === '0A' && mine.has(fields[9])) listening.add(fields[9]); // 0A: LISTEN
    }
  }
  return listening;
}

/** Unix socket paths this process listens on (Linux /proc/net/unix, flag 00010000 = listening). */
function listeningUnixPaths(): string[] {
  return readFileSync('/proc/net/unix', 'utf8').split('\n').slice(1)
    .map((line) => line.trim().split(/\s+/))
    .filter((f) => f[3] === '00010000' && f[7]?.includes('tickflow-pglite-'))
    .map((f) => f[7]);
}

describe('the embedded database is private to this process', () => {
  it('listens on no TCP port, only on a unix socket (0600) in a fresh 0700 directory, removed on close', async () => {
    const tcpBefore = listeningTcpInodes();
    const unixBefore = new Set(listeningUnixPaths());
    const db = await openPglite({ dataDir: 'memory://' });
    let socketDir = '';
    try {
      assert.equal((await db.query<{ one: number }>('SELECT 1 AS one')).rows[0].one, 1);
      assert.deepEqual([...listeningTcpInodes()].filter((inode) => !tcpBefore.has(inode)), [], 'a new listening TCP socket');
      const added = listeningUnixPaths().filter((path) => !unixBefore.has(path));
      assert.equal(added.length, 1, `one new unix socket: ${added.join(', ')}`);
      assert.match(added[0], /\/\.s\.PGSQL\.5432$/);
      socketDir = join(added[0], '..');
      assert.equal(statSync(socketDir).mode & 0o777, 0o700);
      assert.equal(statSync(added[0]).mode & 0o777, 0o600);
    } finally {
      await db.close();
    }
    assert.equal(existsSync(socketDir), false, 'the socket directory is removed on close');
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
