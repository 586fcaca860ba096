import assert from 'node:assert/strict';
import { createServer } from 'node:net';
import { describe, it } from 'node:test';
import pg from 'pg';
import { isTickflowError } from '../../src/core/errors.ts';
import { toDbError } from '../../src/db/db-errors.ts';
import { createDatabaseIfMissing, openDatabase, quoteIdentifier } from '../../src/db/open.ts';
import { connectWithRetry, createPostgresDatabase, redactUrl } from '../../src/db/postgres.ts';
import { resolveTls } from '../../src/db/tls.ts';
import { TEST_DATABASE_URL, uniqueName } from './backends.ts';

describe('redactUrl', () => {
  const cases: [string, string][] = [
    ['postgres://alice:s3cret@db.example:5432/ticks', 'postgres://alice:***@db.example:5432/ticks'],
    ['postgres://alice@db/ticks', 'postgres://alice@db/ticks'],
    ['postgres://db/ticks?password=s3cret&sslmode=require', 'postgres://db/ticks?password=***&sslmode=require'],
    ['not a url alice:s3cret@host', 'not a url alice:***@host'],
    ['postgres://alice:s3 cret@db/x y', 'postgres://alice:***@db/x%20y'],
    ['garbage//alice:s3cret@host password=s3cret', 'garbage//alice:***@host password=***'],
  ];
  for (const [input, expected] of cases) {
    it(`redacts ${input}`, () => {
      const redacted = redactUrl(input);
      assert.doesNotMatch(redacted, /s3 ?cret/);
      assert.equal(redacted, expected);
    });
  }
});

describe('TLS resolution', () => {
  const base = 'postgres://u:p@db:5432/x';
  it('is off by default and strips nothing else', () => {
    assert.deepEqual(resolveTls(`${base}?application_name=a`), { connectionString: `${base}?application_name=a`, ssl: false });
  });
  it('require: TLS without verification, like libpq', () => {
    const { ssl, connectionString } = resolveTls(`${base}?sslmode=require`);
    assert.equal(connectionString, base);
    assert.ok(ssl && ssl.rejectUnauthorized === false);
  });
  it('require with a CA verifies the chain but not the host name', () => {
    const { ssl } = resolveTls(`${base}?sslmode=require`, { ca: 'PEM' });
    assert.ok(ssl && ssl.rejectUnauthorized === true && ssl.ca === 'PEM' && typeof ssl.checkServerIdentity === 'function');
  });
  it('verify-full verifies everything; options alone mean verify-full', () => {
    for (const { ssl } of [resolveTls(`${base}?sslmode=verify-full`), resolveTls(base, { ca: 'PEM' })]) {
      assert.ok(ssl && ssl.rejectUnauthorized === true && ssl.checkServerIdentity === undefined);
    }
  });
  it('an explicit rejectUnauthorized wins', () => {
    const { ssl } = resolveTls(`${base}?sslmode=verify-full`, { rejectUnauthorized: false });
    assert.ok(ssl && ssl.rejectUnauthorized === false);
  });
  for (const url of [`${base}?sslmode=prefer`, `${base}?sslmode=bogus`, `${base}?sslrootcert=/nonexistent/ca.pem&sslmode=verify-ca`, 'not a url']) {
    it(`rejects ${url} with a BAD_CONFIG that hides the password`, () => {
      assert.throws(() => resolveTls(url), (error) => isTickflowError(error, 'BAD_CONFIG') && !error.message.includes(':p@'));
    });
  }
  it('rejects TLS options with sslmode=disable', () => {
    assert.throws(() => resolveTls(`${base}?sslmode=disable`, { ca: 'PEM' }), (error) => isTickflowError(error, 'BAD_CONFIG'));
  });
});

describe('error mapping', () => {
  const where = 'postgres://u:***@db/x';
  const unavailable: [string, unknown][] = [
    ['ECONNREFUSED', Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:1'), { code: 'ECONNREFUSED' })],
    ['a dual-stack AggregateError', new AggregateError([Object.assign(new Error('x'), { code: 'ECONNREFUSED' })], '')],
    ['admin shutdown 57P01', Object.assign(new Error('terminating connection due to administrator command'), { code: '57P01' })],
    ['connection failure 08006', Object.assign(new Error('connection failure'), { code: '08006' })],
    ['a dropped connection', new Error('Connection terminated unexpectedly')],
  ];
  for (const [name, error] of unavailable) {
    it(`${name} → DB_UNAVAILABLE, retriable, one line naming the database`, () => {
      const mapped = toDbError(error, where);
      assert.equal(mapped.code, 'DB_UNAVAILABLE');
      assert.equal(mapped.retriable, true);
      assert.match(mapped.message, /^database postgres:\/\/u:\*\*\*@db\/x is unavailable: \S/);
      assert.doesNotMatch(mapped.message, /\n/);
    });
  }
  for (const code of ['40001', '40P01']) {
    it(`${code} (a race PostgreSQL settled by a rollback) → DB_CONFLICT, retriable, SQLSTATE kept`, () => {
      const mapped = toDbError(Object.assign(new Error('could not serialize access due to concurrent update'), { code, severity: 'ERROR' }), where);
      assert.equal(mapped.code, 'DB_CONFLICT');
      assert.equal(mapped.retriable, true);
      assert.equal(mapped.details.code, code);
      assert.match(mapped.message, new RegExp(`^database conflict ${code} on postgres://u:\\*\\*\\*@db/x `));
    });
  }
  it('other SQLSTATEs → DB_ERROR, not retriable', () => {
    const mapped = toDbError(Object.assign(new Error('duplicate key value'), { code: '23505', constraint: 'marks_pkey' }), where);
    assert.deepEqual([mapped.code, mapped.retriable, mapped.details.constraint], ['DB_ERROR', false, 'marks_pkey']);
  });
  it('leaves tickflow errors alone', () => {
    const fenced = toDbError(Object.assign(new Error('x'), { code: '23505' }), where);
    assert.equal(toDbError(fenced, where), fenced);
  });
  const security: [string, Error, string, string][] = [
    [
      'a certificate for another host',
      Object.assign(new Error("Hostname/IP does not match certificate's altnames: IP: 10.0.0.5 is not in the cert's list: "), { code: 'ERR_TLS_CERT_ALTNAME_INVALID' }),
      'tls-host',
      "TLS: the certificate of database postgres://u:***@db/x is not for that host name (Hostname/IP does not match certificate's altnames: IP: 10.0.0.5 is not in the cert's list:); connect by a name the certificate lists, or use sslmode=verify-ca",
    ],
    [
      'a certificate from an unknown CA',
      Object.assign(new Error('self-signed certificate in certificate chain'), { code: 'SELF_SIGNED_CERT_IN_CHAIN' }),
      'tls-ca',
      "TLS: the certificate of database postgres://u:***@db/x is not signed by a trusted CA (SELF_SIGNED_CERT_IN_CHAIN); give the server's CA with sslrootcert=FILE",
    ],
    [
      'a wrong password (28P01)',
      Object.assign(new Error('password authentication failed for user "u"'), { code: '28P01', severity: 'FATAL' }),
      'password',
      'database postgres://u:***@db/x refused the password (28P01: password authentication failed for user "u"); check the password of the URL\'s user',
    ],
    [
      'a server that takes only TLS (28000)',
      Object.assign(new Error('no pg_hba.conf entry for host "10.0.0.9", user "u", database "x", no encryption'), { code: '28000', severity: 'FATAL' }),
      'pg_hba',
      'database postgres://u:***@db/x refused the connection (28000: no pg_hba.conf entry for host "10.0.0.9", user "u", database "x", no encryption); if the server accepts only TLS, set sslmode=verify-full',
    ],
    [
      'a server without TLS',
      new Error('The server does not support SSL connections'),
      'tls-refused',
      'database postgres://u:***@db/x does not speak TLS (The server does not support SSL connections); use sslmode=disable, or enable ssl on the server',
    ],
  ];
  for (const [name, error, kind, message] of security) {
    it(`${name} → DB_ERROR that says which, not retried`, () => {
      const mapped = toDbError(error, where);
      assert.deepEqual([mapped.code, mapped.retriable, mapped.details.security, mapped.message], ['DB_ERROR', false, kind, message]);
    });
  }
});

describe('real PostgreSQL connection', () => {
  it('connectWithRetry gives up after the configured attempts with DB_UNAVAILABLE and no password', async () => {
    const port = await closedPort();
    const url = `postgres://alice:s3cret@127.0.0.1:${port}/x`;
    const db = createPostgresDatabase(url, { connectTimeoutMs: 2000 });
    const warnings: unknown[] = [];
    const logger = { info: () => {}, warn: (obj: Record<string, unknown>) => warnings.push(obj) };
    try {
      await assert.rejects(connectWithRetry(db, { attempts: 3, initialDelayMs: 5, logger }), (error) => {
        assert.ok(isTickflowError(error, 'DB_UNAVAILABLE'));
        assert.match(error.message, new RegExp(`alice:\\*\\*\\*@127\\.0\\.0\\.1:${port}`));
        assert.doesNotMatch(error.message + JSON.stringify(error.details), /s3cret/);
        return true;
      });
      assert.equal(warnings.length, 2); // warned before each retry, not after the last try
      assert.doesNotMatch(JSON.stringify(warnings), /s3cret/);
    } finally {
      await db.close();
    }
  });

  it('does not retry an error that retrying cannot fix (missing database)', async () => {
    const url = new URL(TEST_DATABASE_URL);
    url.pathname = '/' + uniqueName('missing');
    const started = Date.now();
    await assert.rejects(
      openDatabase({ url: url.toString(), retry: { attempts: 5, initialDelayMs: 1000 } }),
      (error) => isTickflowError(error, 'DB_ERROR') && error.details.code === '3D000',
    );
    assert.ok(Date.now() - started < 1000);
  });

  it('createDatabaseIfMissing creates a database whose name needs quoting, once', async () => {
    const name = `${uniqueName('tickflow test')}"quoted`;
    const url = new URL(TEST_DATABASE_URL);
    url.pathname = '/' + encodeURIComponent(name);
    try {
      assert.equal(await createDatabaseIfMissing(url.toString()), true);
      assert.equal(await createDatabaseIfMissing(url.toString()), false);
      const db = await openDatabase({ url: url.toString() });
      try {
        assert.equal((await db.query<{ d: string }>('SELECT current_database() AS d')).rows[0].d, name);
      } finally {
        await db.close();
      }
    } finally {
      const admin = new pg.Client({ connectionString: TEST_DATABASE_URL });
      await admin.connect();
      await admin.query(`DROP DATABASE IF EXISTS ${quoteIdentifier(name)}`);
      await admin.end();
    }
  });

  it('describes itself by the redacted URL', () => {
    const db = createPostgresDatabase('postgres://alice:s3cret@127.0.0.1:5432/x');
    assert.equal(db.description, 'postgres://alice:***@127.0.0.1:5432/x');
    return db.close();
  });
});

/** A port nothing listens on: bind an ephemeral one, then release it. */
async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  await new Promise((resolve) => server.close(resolve));
  return port;
}
