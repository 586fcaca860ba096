/**
 * The PostgreSQL adapter when the server goes away under a transaction, on a server of the
 * test's own (restarted and killed here): the transaction fails with a retriable error and
 * the process lives on — a checked-out client losing its server emits 'error' on itself,
 * which would crash the process unheard. Also: a COMMIT whose answer is lost is retriable
 * (and in doubt: it did land), and the races PostgreSQL resolves by rolling one
 * transaction back (serialization failure 40001, deadlock 40P01) are retriable conflicts.
 */
import assert from 'node:assert/strict';
import { createServer, connect } from 'node:net';
import type { Server, Socket } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import pg from 'pg';
import { isTickflowError } from '../../src/core/errors.ts';
import { createPostgresDatabase } from '../../src/db/postgres.ts';
import type { Database, Queryable } from '../../src/db/types.ts';
import { configureRetries, retrySettings, withRetries } from '../../src/observability/retry.ts';
import { startPostgresServer } from '../helpers/postgres-server.ts';
import type { PostgresServer } from '../helpers/postgres-server.ts';

const retriableUnavailable = (error: unknown) => {
  assert.ok(isTickflowError(error, 'DB_UNAVAILABLE'), `DB_UNAVAILABLE, got ${String(error)}`);
  assert.equal(error.retriable, true);
  return true;
};

describe('PostgreSQL lost under a transaction (own server)', () => {
  let server: PostgresServer;
  let url: string;
  let db: Database;
  const warnings: string[] = [];
  const logger = { info: () => {}, warn: (_: object, msg: string) => warnings.push(msg) };

  before(async () => {
    server = await startPostgresServer('tickflow-pool-test');
    url = await server.createDatabase('pool');
    db = createPostgresDatabase(url, { logger, connectTimeoutMs: 2000 });
    await db.query('CREATE TABLE marks (id int PRIMARY KEY, note text)');
  });
  after(async () => {
    await db?.close();
    await server?.destroy();
  });

  const admin = async (sql: string) => {
    const client = new pg.Client({ connectionString: url });
    client.on('error', () => undefined);
    await client.connect();
    try {
      return await client.query(sql);
    } finally {
      await client.end();
    }
  };

  /** A transaction that, between two queries, lets `fault` take its server away. */
  const interrupted = (fault: (backendPid: number) => Promise<void>) =>
    db.transaction(async (tx) => {
      const { rows } = await tx.query<{ pid: number }>('SELECT pg_backend_pid() AS pid');
      await fault(rows[0].pid);
      await sleep(300); // the client hears of it while no query is active
      await tx.query('SELECT 1');
    });

  it('a backend terminated between two queries: the transaction fails retriable, the process lives on', async () => {
    warnings.length = 0;
    await assert.rejects(interrupted((pid) => admin(`SELECT pg_terminate_backend(${pid})`).then(() => undefined)), retriableUnavailable);
    assert.ok(warnings.includes('database connection lost during a transaction'), warnings.join('; '));
    assert.equal((await db.query<{ n: number }>('SELECT 1 AS n')).rows[0].n, 1, 'the pool reconnects');
  });

  it('pg_ctl restart -m fast during a transaction: fails retriable, then works again', async () => {
    await assert.rejects(interrupted(() => server.restart()), retriableUnavailable);
    await db.transaction((tx) => tx.query('INSERT INTO marks VALUES (1, $1)', ['after restart']));
  });

  it('kill -9 of the postmaster during a transaction: fails retriable, then works once it is started again', async () => {
    await assert.rejects(interrupted(async () => void (await server.kill())), retriableUnavailable);
    await assert.rejects(db.query('SELECT 1'), retriableUnavailable);
    await server.start();
    await db.transaction((tx) => tx.query('INSERT INTO marks VALUES (2, $1)', ['after kill']));
    assert.equal((await db.query('SELECT * FROM marks')).rowCount, 2);
  });

  it('a COMMIT whose answer is lost: retriable, and in doubt — it landed', async () => {
    const proxy = await commitAnswerDropper(server.port);
    const viaProxy = createPostgresDatabase(url.replace(`:${server.port}/`, `:${proxy.port}/`), { logger, connectTimeoutMs: 2000 });
    try {
      proxy.arm();
      await assert.rejects(viaProxy.transaction((tx) => tx.query('INSERT INTO marks VALUES (3, $1)', ['answer lost'])), retriableUnavailable);
      assert.equal(proxy.dropped(), 1, 'the connection was cut right after the server committed');
      assert.deepEqual((await db.query('SELECT note FROM marks WHERE id = 3')).rows, [{ note: 'answer lost' }], 'the commit landed');
      // Retried blindly it would fail (duplicate key) or, for an additive write, count twice:
      // the runtime first looks for its commit id (test/runtime/vwap.test.ts).
      await viaProxy.transaction((tx) => tx.query('SELECT 1'));
    } finally {
      await viaProxy.close();
      await proxy.close();
    }
  });

  describe('races PostgreSQL settles by rolling one transaction back', () => {
    const saved = { ...retrySettings() };
    before(() => configureRetries({ initialDelayMs: 5, maxDelayMs: 20, retryForMs: 10_000, logger: null }));
    after(() => configureRetries(saved));

    it('a serialization failure (40001) is DB_CONFLICT, retriable; withRetries runs the loser again', async () => {
      await db.query('CREATE TABLE tally (id int PRIMARY KEY, n int NOT NULL)');
      await db.query('INSERT INTO tally VALUES (1, 0)');
      const serializable = async (tx: Queryable) => {
        await tx.query('SET TRANSACTION ISOLATION LEVEL SERIALIZABLE');
        return (await tx.query<{ n: number }>('SELECT n FROM tally WHERE id = 1')).rows[0].n;
      };
      let attempts = 0;
      let release!: () => void;
      const otherDone = new Promise<void>((resolve) => (release = resolve));
      const loser = withRetries('postgres', 'add one', () =>
        db.transaction(async (tx) => {
          attempts++;
          const n = await serializable(tx);
          if (attempts === 1) await otherDone; // another transaction commits in between
          await tx.query('UPDATE tally SET n = $1 WHERE id = 1', [n + 1]);
        }),
      );
      await sleep(100);
      await db.transaction(async (tx) => {
        const n = await serializable(tx);
        await tx.query('UPDATE tally SET n = $1 WHERE id = 1', [n + 1]);
      });
      release();
      await loser;
      assert.equal(attempts, 2, 'the first attempt lost the race and was run again');
      assert.equal((await db.query<{ n: number }>('SELECT n FROM tally')).rows[0].n, 2, 'both increments count');

      await assert.rejects(
        db.transaction(async (tx) => {
          await serializable(tx);
          await admin('UPDATE tally SET n = n + 1');
          await tx.query('UPDATE tally SET n = 0 WHERE id = 1');
        }),
        (error) => isTickflowError(error, 'DB_CONFLICT') && error.retriable && error.details.code === '40001' && /^database conflict 40001 on /.test(error.message),
      );
    });

    it('a deadlock (40P01) is DB_CONFLICT, retriable', async () => {
      await db.query('CREATE TABLE pair (id int PRIMARY KEY)');
      await db.query('INSERT INTO pair VALUES (1), (2)');
      let bothLocked!: () => void;
      const barrier = new Promise<void>((resolve) => (bothLocked = resolve));
      let locked = 0;
      const lockBoth = (first: number, second: number) =>
        db.transaction(async (tx) => {
          await tx.query('SELECT * FROM pair WHERE id = $1 FOR UPDATE', [first]);
          if (++locked === 2) bothLocked();
          await barrier;
          await tx.query('SELECT * FROM pair WHERE id = $1 FOR UPDATE', [second]);
        });
      const results = await Promise.allSettled([lockBoth(1, 2), lockBoth(2, 1)]);
      const failed = results.filter((r) => r.status === 'rejected').map((r) => (r as PromiseRejectedResult).reason);
      assert.equal(failed.length, 1, 'PostgreSQL rolls back exactly one of the two');
      assert.ok(isTickflowError(failed[0], 'DB_CONFLICT') && failed[0].retriable && failed[0].details.code === '40P01', String(failed[0]));
    });
  });
});

/**
 * A TCP proxy in front of PostgreSQL that, once armed, forwards the server's answer up to
 * (not including) the CommandComplete of the next COMMIT and then cuts the connection:
 * the server committed, the client never hears it.
 */
async function commitAnswerDropper(upstreamPort: number): Promise<{ port: number; arm(): void; dropped(): number; close(): Promise<void> }> {
  let armed = false;
  let dropped = 0;
  const sockets = new Set<Socket>();
  const commitComplete = Buffer.from('COMMIT\0');
  const server: Server = createServer((client) => {
    const upstream = connect(upstreamPort, '127.0.0.1');
    sockets.add(client).add(upstream);
    const cut = () => {
      client.destroy();
      upstream.destroy();
    };
    client.on('error', cut).on('close', cut).pipe(upstream);
    upstream.on('error', cut).on('close', cut);
    let pending = Buffer.alloc(0);
    upstream.on('data', (chunk: Buffer) => {
      pending = Buffer.concat([pending, chunk]);
      let forward = 0;
      while (pending.length - forward >= 5) {
        const length = pending.readUInt32BE(forward + 1);
        if (pending.length - forward < 1 + length) break;
        const type = String.fromCharCode(pending[forward]);
        const body = pending.subarray(forward + 5, forward + 1 + length);
        if (armed && type === 'C' && body.equals(commitComplete)) {
          armed = false;
          dropped++;
          client.write(pending.subarray(0, forward), cut);
          return;
        }
        forward += 1 + length;
      }
      client.write(pending.subarray(0, forward));
      pending = pending.subarray(forward);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as { port: number }).port,
    arm: () => void (armed = true),
    dropped: () => dropped,
    close: async () => {
      for (const s of sockets) s.destroy();
      await new Promise((resolve) => server.close(resolve));
    },
  };
}
