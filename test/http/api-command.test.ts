/**
 * `tickflow api` as the container runs it: a child process serving over TCP, reading
 * through a role that can only SELECT, stopping cleanly on SIGTERM.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { randomBytes } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import pg from 'pg';
import type { Database } from '../../src/db/types.ts';
import { apiUrl, BIN, startTickflow } from '../helpers/cli.ts';
import { isolatedDatabase } from '../stocks/fixtures.ts';
import type { IsolatedDatabase } from '../stocks/fixtures.ts';

describe('tickflow api (child process, read-only role)', () => {
  let isolated: IsolatedDatabase;
  let db: Database;
  const role = `tickflow_reader_${process.pid}_${randomBytes(3).toString('hex')}`;
  let readUrl: string;
  before(async () => {
    isolated = await isolatedDatabase('api_cmd');
    db = await isolated.open();
    await db.query(`INSERT INTO stock_windows (ticker, window_start, window_end, sample_count, price_sum, price_min, price_max)
      VALUES ('AMZN', '2024-05-01T12:00:00Z', '2024-05-01T12:00:30Z', 4, 7610, 1900, 1905)`);
    await isolated.admin(`CREATE ROLE ${role} LOGIN`);
    await isolated.admin(`GRANT USAGE ON SCHEMA ${isolated.schema} TO ${role}`);
    await isolated.admin(`GRANT SELECT ON ${isolated.schema}.stock_windows TO ${role}`);
    const url = new URL(isolated.url);
    url.username = role;
    url.password = '';
    readUrl = url.toString();
  });
  after(async () => {
    await db?.close();
    await isolated?.drop();
    await isolated?.admin(`DROP OWNED BY ${role}`).catch(() => undefined);
    await isolated?.admin(`DROP ROLE IF EXISTS ${role}`);
  });

  it('the reader role can only read', async () => {
    const client = new pg.Client({ connectionString: readUrl });
    await client.connect();
    try {
      assert.equal((await client.query('SELECT count(*)::int AS n FROM stock_windows')).rows[0].n, 1);
      await assert.rejects(client.query("DELETE FROM stock_windows WHERE ticker = 'AMZN'"), (e: { code?: string }) => e.code === '42501');
    } finally {
      await client.end();
    }
  });

  it('serves /v1/get-prices and /readyz through it and exits 0 on SIGTERM', async () => {
    const api = startTickflow(['api', '--host', '127.0.0.1', '--port', '0', '--read-database-url', readUrl, '--json'], { DATABASE_URL: '' });
    const { child } = api;
    try {
      const url = await apiUrl(api);
      assert.equal((await fetch(`${url}/readyz`)).status, 200);
      const prices = await fetch(`${url}/v1/get-prices`);
      assert.equal(prices.status, 200);
      assert.deepEqual(await prices.json(), {
        data: [{ ticker: 'AMZN', windowStart: '2024-05-01T12:00:00.000Z', windowEnd: '2024-05-01T12:00:30.000Z', averagePrice: 1902.5, sampleCount: 4, minPrice: 1900, maxPrice: 1905, priceSum: 7610 }],
        nextCursor: null,
      });
      const badRequest = await fetch(`${url}/v1/get-prices?ticker=AMZN&startTime=soon`);
      assert.equal(badRequest.status, 400);
      assert.equal(((await badRequest.json()) as { error: { parameter: string } }).error.parameter, 'startTime');
    } finally {
      child.kill('SIGTERM');
      assert.equal(await api.exited, 0, api.stderr());
    }
  });

  it('rejects a bad --read-database-url in one line, exit 2', async () => {
    const child = spawn(process.execPath, [BIN, 'api', '--read-database-url', 'mysql://x'], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (d) => (stderr += d));
    const [code] = await once(child, 'exit');
    assert.equal(code, 2);
    assert.equal(stderr, 'tickflow api: --read-database-url: expects a postgres:// or postgresql:// URL (see --help)\n');
  });
});
