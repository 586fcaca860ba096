/**
 * Passwords stay off the command line: a server of the test's own that demands a password
 * (SCRAM) for one role; URLs without the password connect through PGPASSWORD or a
 * password file (PGPASSFILE, libpq's format and its 0600 rule), and a URL with a password
 * given as a flag gets a one-line warning saying what to do instead.
 */
import assert from 'node:assert/strict';
import { chmodSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import pg from 'pg';
import { createPostgresDatabase } from '../../src/db/postgres.ts';
import { passwordFromFile } from '../../src/db/password-file.ts';
import { tickflow } from '../helpers/cli.ts';
import { startPostgresServer } from '../helpers/postgres-server.ts';
import type { PostgresServer } from '../helpers/postgres-server.ts';

const ROLE = 'tf_secret';
const PASSWORD = 'pw:with\\colon';
const WARNING = /^tickflow: warning: --(read-)?database-url has a password in it, .*PGPASSWORD.*PGPASSFILE/;

describe('database passwords off the command line', () => {
  let server: PostgresServer;
  let bare = '';
  let withSecret = '';
  let file = '';

  before(async () => {
    server = await startPostgresServer('tickflow-passwords');
    const client = new pg.Client({ connectionString: server.url() });
    await client.connect();
    await client.query(`CREATE ROLE ${ROLE} LOGIN SUPERUSER PASSWORD '${PASSWORD.replace(/'/g, "''")}'`);
    const { rows } = await client.query<{ hba_file: string }>('SHOW hba_file');
    await client.end();
    // The role must give a password; everyone else keeps trust.
    const hba = rows[0].hba_file;
    writeFileSync(hba, `host all ${ROLE} 127.0.0.1/32 scram-sha-256\n${readFileSync(hba, 'utf8')}`);
    await server.restart();
    bare = `postgres://${ROLE}@127.0.0.1:${server.port}/postgres`;
    withSecret = `postgres://${ROLE}:${encodeURIComponent(PASSWORD)}@127.0.0.1:${server.port}/postgres`;
    file = join(server.state.dir, 'pgpass');
    // A comment, a line for another port, then ours with `:` and `\` escaped.
    writeFileSync(file, `# tickflow\n127.0.0.1:1:*:${ROLE}:wrong\n127.0.0.1:${server.port}:*:${ROLE}:${PASSWORD.replace(/\\/g, '\\\\').replace(/:/g, '\\:')}\n`, { mode: 0o600 });
  });
  after(async () => {
    await server?.destroy();
  });

  const connects = async (url: string, env: NodeJS.ProcessEnv) => {
    const db = createPostgresDatabase(url, { env, connectTimeoutMs: 5_000 });
    try {
      return (await db.query<{ user: string }>('SELECT current_user AS user')).rows[0].user;
    } finally {
      await db.close();
    }
  };

  it('the server does demand the password', async () => {
    await assert.rejects(connects(bare, { PGPASSFILE: join(server.state.dir, 'none') }));
  });

  it('connects with the password from PGPASSFILE (escapes read, other lines skipped)', async () => {
    assert.equal(passwordFromFile(file, { host: '127.0.0.1', port: String(server.port), database: 'postgres', user: ROLE }), PASSWORD);
    assert.equal(await connects(bare, { PGPASSFILE: file }), ROLE);
  });

  it('ignores a password file that others can read, as libpq does', async () => {
    chmodSync(file, 0o644);
    try {
      await assert.rejects(connects(bare, { PGPASSFILE: file }));
    } finally {
      chmodSync(file, 0o600);
    }
  });

  it('connects with PGPASSWORD', async () => {
    const saved = process.env.PGPASSWORD;
    process.env.PGPASSWORD = PASSWORD; // pg reads it from the process environment itself
    try {
      assert.equal(await connects(bare, {}), ROLE);
    } finally {
      if (saved === undefined) delete process.env.PGPASSWORD;
      else process.env.PGPASSWORD = saved;
    }
  });

  it('tickflow warns once, in one line, about a password in --database-url, and still runs', async () => {
    const result = await tickflow(['migrate', '--database-url', withSecret]);
    assert.equal(result.code, 0, result.stderr);
    const warnings = result.stderr.split('\n').filter((line) => line.includes('warning:'));
    assert.equal(warnings.length, 1, result.stderr);
    assert.match(warnings[0], WARNING);
    assert.ok(!warnings[0].includes(encodeURIComponent(PASSWORD)), 'the warning does not repeat the password');
  });

  it('no warning for the same URL from DATABASE_URL, or for a URL without a password and PGPASSFILE', async () => {
    for (const [args, env] of [[['migrate'], { DATABASE_URL: withSecret }], [['migrate', '--database-url', bare], { PGPASSFILE: file }]] as const) {
      const result = await tickflow(args, { env });
      assert.equal(result.code, 0, result.stderr);
      assert.doesNotMatch(result.stderr, /warning:/);
    }
  });

  it('warns about --read-database-url too', async () => {
    const result = await tickflow(['api', '--read-database-url', 'postgres://reader:secret@db.example:5432/tickflow', '--help']);
    assert.equal(result.code, 0, result.stderr);
    assert.match(result.stderr.trim(), WARNING);
    assert.match(result.stderr, /--read-database-url/);
  });
});
