/**
 * Every error status the API can answer, over a real socket (a raw one where a request
 * must arrive during shutdown), each body checked against
 * the error envelope's schema as the served OpenAPI document states it, and the code
 * against the status the catalogue gives it. Then the leaks: with an unmigrated database,
 * an absent one and an unreachable one, no response (API, readiness, dashboard snapshot)
 * carries a SQLSTATE, a URL, a user name, the driver's text or a stack.
 */
import assert from 'node:assert/strict';
import { connect } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { Ajv } from 'ajv';
import type { ValidateFunction } from 'ajv';
import type { FastifyInstance } from 'fastify';
import { createPostgresDatabase } from '../../src/db/postgres.ts';
import type { Database, Queryable } from '../../src/db/types.ts';
import { buildApp } from '../../src/http/app.ts';
import { ApiErrorCodes } from '../../src/http/errors.ts';
import type { ApiErrorCode } from '../../src/http/errors.ts';
import { MemoryLog } from '../../src/log/memory.ts';
import { TEST_DATABASE_URL } from '../helpers/env.ts';
import { isolatedDatabase } from '../stocks/fixtures.ts';
import type { IsolatedDatabase } from '../stocks/fixtures.ts';

interface Answer {
  status: number;
  headers: Headers;
  text: string;
}

async function request(base: string, path: string, init: RequestInit = {}): Promise<Answer> {
  const response = await fetch(`${base}${path}`, init);
  return { status: response.status, headers: response.headers, text: await response.text() };
}

/** The error envelope's schema, from the served OpenAPI document (what a client would code against). */
async function envelopeValidator(app: FastifyInstance): Promise<ValidateFunction> {
  const doc = (await app.inject({ method: 'GET', url: '/docs/json' })).json();
  const refs = new Set<string>();
  for (const [path, operations] of Object.entries(doc.paths as Record<string, Record<string, { responses: Record<string, { content?: Record<string, { schema: { $ref?: string } }> }> }>>)) {
    for (const [method, operation] of Object.entries(operations)) {
      for (const status of ['4XX', '5XX']) {
        // /v1/live declares text/event-stream as what it produces; its errors are the same JSON.
        const ref = Object.values(operation.responses[status]?.content ?? {})[0]?.schema.$ref;
        assert.ok(ref, `${method.toUpperCase()} ${path} documents its ${status} responses`);
        refs.add(ref);
      }
    }
  }
  assert.equal(refs.size, 1, `one error schema for every route: ${[...refs].join(', ')}`);
  const [ref] = refs;
  const schema = doc.components.schemas[ref.replace('#/components/schemas/', '')];
  assert.equal(schema.title, 'ApiError');
  return new Ajv({ strict: false }).compile(schema);
}

function assertEnvelope(validate: ValidateFunction, answer: Answer, code: ApiErrorCode, parameter?: string): void {
  assert.match(answer.headers.get('content-type') ?? '', /^application\/json/, answer.text);
  const body = JSON.parse(answer.text) as { error: { code: string; parameter?: string } };
  assert.ok(validate(body), `${answer.text} against the OpenAPI error schema: ${JSON.stringify(validate.errors)}`);
  assert.equal(body.error.code, code, answer.text);
  assert.equal(answer.status, ApiErrorCodes[code].status, `the catalogue's status for ${code}`);
  assert.equal(body.error.parameter, parameter);
  assert.doesNotMatch(answer.text, /FST_|HPE_|ERR_|statusCode|stack/, 'no library error code or stack');
}

/** What must never reach a client, from the database's error or its configuration. */
function assertNoInternals(answer: Answer, secrets: readonly string[]): void {
  for (const secret of [/\b(42P01|3D000|28000|42703|08006|08001)\b/, /postgres(ql)?:\/\//, /127\.0\.0\.1/, /ECONNREFUSED/, /relation "/, /(database|role) "/, /\.ts:\d+/, /\*\*\*/]) {
    assert.doesNotMatch(answer.text, secret, answer.text);
  }
  for (const secret of secrets) assert.ok(!answer.text.includes(secret), `"${secret}" in ${answer.text}`);
}

describe('API errors: one envelope for every status', () => {
  let isolated: IsolatedDatabase;
  let db: Database;
  let app: FastifyInstance;
  let base = '';
  let validate: ValidateFunction;
  before(async () => {
    isolated = await isolatedDatabase('api_errors');
    db = await isolated.open();
    app = await buildApp({ db });
    base = await app.listen({ host: '127.0.0.1', port: 0 });
    validate = await envelopeValidator(app);
  });
  after(async () => {
    await app?.close();
    await db?.close();
    await isolated?.drop();
  });

  for (const limit of ['0x10', '1e1', ' 16', '16.0', '+16', '016', '']) {
    it(`400 BAD_PARAMETER naming limit for limit=${JSON.stringify(limit)}`, async () => {
      const answer = await request(base, `/v1/get-prices?limit=${encodeURIComponent(limit)}`);
      assertEnvelope(validate, answer, 'BAD_PARAMETER', 'limit');
      assert.match(JSON.parse(answer.text).error.message, /^limit must be an integer from 1 to 1000/);
    });
  }

  it('400 BAD_PARAMETER for a limit given twice', async () => {
    assertEnvelope(validate, await request(base, '/v1/get-prices?limit=16&limit=17'), 'BAD_PARAMETER', 'limit');
  });

  it('a plain decimal limit is still read', async () => {
    const answer = await request(base, '/v1/get-prices?limit=16');
    assert.equal(answer.status, 200, answer.text);
  });

  it('400 BAD_REQUEST for a URL that does not decode', async () => {
    assertEnvelope(validate, await request(base, '/v1/get-prices%zz'), 'BAD_REQUEST');
  });

  it('404 NOT_FOUND for an unknown path, whatever the method', async () => {
    for (const method of ['GET', 'POST', 'DELETE']) assertEnvelope(validate, await request(base, '/v2/nothing', { method }), 'NOT_FOUND');
  });

  it('404 NOT_FOUND for a file the docs do not have (the route exists for GET), a dotfile or a way out of their folder', async () => {
    for (const path of ['/docs/static/no-such-file.js', '/docs/static/.hidden', '/docs/static/..%2f..%2fpackage.json', '/docs/static/%2e%2e/%2e%2e/package.json']) {
      assertEnvelope(validate, await request(base, path), 'NOT_FOUND');
    }
  });

  it('405 METHOD_NOT_ALLOWED with an Allow header for another method on a known path', async () => {
    for (const [method, path] of [['DELETE', '/v1/get-prices'], ['PUT', '/v1/dashboard'], ['POST', '/readyz'], ['PATCH', '/dashboard']]) {
      const answer = await request(base, path, { method });
      assertEnvelope(validate, answer, 'METHOD_NOT_ALLOWED');
      assert.equal(answer.headers.get('allow'), 'GET, HEAD', `${method} ${path}`);
    }
  });

  it('HEAD of a GET route is allowed (the Allow header tells the truth)', async () => {
    assert.equal((await request(base, '/healthz', { method: 'HEAD' })).status, 200);
  });

  it('413 PAYLOAD_TOO_LARGE for a body over the limit', async () => {
    const answer = await request(base, '/v1/get-prices', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ pad: 'x'.repeat(2 << 20) }) });
    assertEnvelope(validate, answer, 'PAYLOAD_TOO_LARGE');
  });

  it('414 URI_TOO_LONG for a URL over 8 KiB', async () => {
    assertEnvelope(validate, await request(base, `/v1/get-prices?ticker=${'A'.repeat(9000)}`), 'URI_TOO_LONG');
  });

  it('431 HEADERS_TOO_LARGE for headers over Node\'s limit, answered before Fastify sees the request', async () => {
    assertEnvelope(validate, await request(base, '/v1/get-prices', { headers: { 'x-padding': 'p'.repeat(20_000) } }), 'HEADERS_TOO_LARGE');
  });

  it('503 SHUTTING_DOWN, with Connection: close, for a request that arrives while the API closes', async () => {
    let release!: () => void;
    const gate = new Promise<void>((resolve) => (release = resolve));
    let asked!: () => void;
    const inFlight = new Promise<void>((resolve) => (asked = resolve));
    const slow: Queryable = {
      query: async () => {
        asked();
        await gate;
        return { rows: [], rowCount: 0 };
      },
    };
    const closing = await buildApp({ db: slow });
    // Registered after the API's own hooks, so these run after them: the close has begun; the late request was answered.
    const closeBegun = new Promise<void>((resolve) => closing.addHook('preClose', async () => resolve()));
    let answered!: () => void;
    const lateAnswered = new Promise<void>((resolve) => (answered = resolve));
    closing.addHook('onSend', async (request, _reply, payload) => {
      if (request.url === '/healthz') answered();
      return payload;
    });
    const url = new URL(await closing.listen({ host: '127.0.0.1', port: 0 }));
    const socket = connect(Number(url.port), '127.0.0.1');
    let text = '';
    socket.on('data', (chunk) => (text += chunk));
    const ended = new Promise((resolve) => socket.on('close', resolve));
    // A request in flight keeps the connection open while the API closes; the next one on it arrives during the close.
    socket.write('GET /v1/get-prices HTTP/1.1\r\nHost: api\r\n\r\n');
    await inFlight;
    const closed = closing.close();
    await closeBegun;
    socket.write('GET /healthz HTTP/1.1\r\nHost: api\r\n\r\n');
    await lateAnswered;
    release();
    await closed;
    await ended;
    const responses = text.split(/(?=HTTP\/1\.1 )/);
    assert.equal(responses.length, 2, text);
    assert.match(responses[0], /^HTTP\/1\.1 200 /, 'the request in flight is answered');
    const [head, body] = responses[1].split('\r\n\r\n');
    const headers = new Headers(head.split('\r\n').slice(1).map((line): [string, string] => [line.slice(0, line.indexOf(':')), line.slice(line.indexOf(':') + 1).trim()]));
    assert.equal(headers.get('connection'), 'close');
    assertEnvelope(validate, { status: Number(head.split(' ')[1]), headers, text: body }, 'SHUTTING_DOWN');
  });

  it('500 INTERNAL for an unexpected failure, without its text', async () => {
    const failing: Queryable = { query: async () => Promise.reject(new Error('relation "secret_table" does not exist')) };
    const broken = await buildApp({ db: failing });
    try {
      const url = await broken.listen({ host: '127.0.0.1', port: 0 });
      const answer = await request(url, '/v1/get-prices');
      assertEnvelope(validate, answer, 'INTERNAL');
      assert.ok(!answer.text.includes('secret_table'));
    } finally {
      await broken.close();
    }
  });
});

describe('API errors: nothing internal reaches a client', () => {
  const validateOf = new Map<FastifyInstance, ValidateFunction>();
  let isolated: IsolatedDatabase;
  before(async () => {
    isolated = await isolatedDatabase('api_leaks');
  });
  after(async () => {
    await isolated?.drop();
  });

  const absentUrl = new URL(TEST_DATABASE_URL);
  absentUrl.pathname = '/tickflow_absent_database';
  const unreachableUrl = 'postgres://nc_reader2:hunter2@127.0.0.1:1/nc2';
  const cases: Array<{ name: string; url: () => string; code: ApiErrorCode; secrets: () => string[] }> = [
    { name: 'an unmigrated database (42P01)', url: () => isolated.url, code: 'NOT_READY', secrets: () => [isolated.schema, 'stock_windows'] },
    { name: 'a database that does not exist (3D000)', url: () => absentUrl.toString(), code: 'NOT_READY', secrets: () => ['tickflow_absent_database'] },
    { name: 'an unreachable database', url: () => unreachableUrl, code: 'DATABASE_UNAVAILABLE', secrets: () => ['nc_reader2', 'hunter2', 'nc2'] },
  ];

  for (const c of cases) {
    it(`${c.name}: 503 ${c.code} from the API, and no detail from /readyz or /v1/dashboard`, async () => {
      const db = createPostgresDatabase(c.url(), { connectTimeoutMs: 5_000 });
      const log = new MemoryLog();
      await log.createTopics([{ name: 'prices', partitions: 1 }]);
      const app = await buildApp({ db, log });
      try {
        const base = await app.listen({ host: '127.0.0.1', port: 0 });
        if (!validateOf.has(app)) validateOf.set(app, await envelopeValidator(app));
        const secrets = c.secrets();
        for (const path of ['/v1/get-prices', '/v1/get-prices?ticker=AMZN&limit=5', '/v1/unique-users?from=2024-05-01&to=2024-05-02&granularity=hour']) {
          const answer = await request(base, path);
          assertEnvelope(validateOf.get(app)!, answer, c.code);
          assertNoInternals(answer, secrets);
        }
        const ready = await request(base, '/readyz');
        assert.equal(ready.status, 503);
        assertNoInternals(ready, secrets);
        const dashboard = await request(base, '/v1/dashboard');
        assert.equal(dashboard.status, 200);
        assertNoInternals(dashboard, secrets);
        const snapshot = JSON.parse(dashboard.text) as { notes: string[]; stocks: unknown; lag: unknown };
        assert.equal(snapshot.stocks, null);
        const expected = c.code === 'NOT_READY' ? 'the database is not migrated yet (run tickflow migrate)' : 'the database is unavailable; retrying';
        assert.ok(snapshot.notes.includes(`stocks: ${expected}`), snapshot.notes.join('\n'));
        assert.ok(snapshot.notes.includes(`lag: ${expected}`), snapshot.notes.join('\n'));
      } finally {
        await app.close();
        await db.close();
        await log.close();
      }
    });
  }
});
