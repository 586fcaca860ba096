/**
 * GET /v1/get-prices and the operational routes, on a schema filled with known rows.
 * Every case runs twice: in-process through inject() and over a real socket with fetch.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { FastifyInstance } from 'fastify';
import { TickflowError } from '../../src/core/errors.ts';
import type { Database, Queryable } from '../../src/db/types.ts';
import { buildApp } from '../../src/http/app.ts';
import { isolatedDatabase } from '../stocks/fixtures.ts';
import type { IsolatedDatabase } from '../stocks/fixtures.ts';

const T0 = Date.parse('2024-05-01T12:00:00Z');
const W = 30_000;
const iso = (ms: number) => new Date(ms).toISOString();

interface Row {
  ticker: string;
  windowStart: string;
  windowEnd: string;
  averagePrice: number;
  sampleCount: number;
  minPrice: number;
  maxPrice: number;
  priceSum: number;
}

/** 20 windows for AMZN, MSFT and BRK.B, 10 for AAPL (so its latest is older). */
function knownRows(): Row[] {
  const rows: Row[] = [];
  const base: Record<string, number> = { AAPL: 215, AMZN: 1902, 'BRK.B': 410, MSFT: 107 };
  for (const [ticker, mean] of Object.entries(base)) {
    for (let i = 0; i < (ticker === 'AAPL' ? 10 : 20); i++) {
      const sampleCount = 1 + (i % 7);
      const priceSum = (mean + i) * sampleCount + (i % 3);
      rows.push({
        ticker, windowStart: iso(T0 + i * W), windowEnd: iso(T0 + (i + 1) * W),
        averagePrice: priceSum / sampleCount, sampleCount, minPrice: mean - 1, maxPrice: mean + i + 1, priceSum,
      });
    }
  }
  return rows;
}

const ROWS = knownRows();
const byTime = (a: Row, b: Row) => a.windowStart.localeCompare(b.windowStart) || (a.ticker < b.ticker ? -1 : a.ticker > b.ticker ? 1 : 0);
const select = (tickers: string[] | null, from = -Infinity, to = Infinity) =>
  ROWS.filter((r) => (tickers === null || tickers.includes(r.ticker)) && Date.parse(r.windowStart) >= from && Date.parse(r.windowStart) < to).sort(byTime);
const latest = () => ['AAPL', 'AMZN', 'BRK.B', 'MSFT'].map((t) => ROWS.filter((r) => r.ticker === t).at(-1)!);

interface Answer {
  status: number;
  contentType: string;
  body: { data?: Row[]; nextCursor?: string | null; error?: { code: string; message: string; parameter?: string } };
}
type Get = (url: string) => Promise<Answer>;

async function insertRows(db: Queryable): Promise<void> {
  await db.query(
    `INSERT INTO stock_windows (ticker, window_start, window_end, sample_count, price_sum, price_min, price_max)
     SELECT * FROM unnest($1::text[], $2::timestamptz[], $3::timestamptz[], $4::bigint[], $5::bigint[], $6::bigint[], $7::bigint[])`,
    [ROWS.map((r) => r.ticker), ROWS.map((r) => r.windowStart), ROWS.map((r) => r.windowEnd), ROWS.map((r) => r.sampleCount), ROWS.map((r) => r.priceSum), ROWS.map((r) => r.minPrice), ROWS.map((r) => r.maxPrice)],
  );
}

const q = (params: Record<string, string | number>) => `/v1/get-prices?${new URLSearchParams(Object.entries(params).map(([k, v]): [string, string] => [k, String(v)]))}`;

const good: Array<{ name: string; url: string; data: Row[] }> = [
  { name: 'no parameters: the latest window of every ticker', url: '/v1/get-prices', data: latest() },
  { name: 'one ticker, all time', url: q({ ticker: 'AMZN' }), data: select(['AMZN']) },
  { name: 'a ticker with a dot', url: q({ ticker: 'BRK.B', limit: 3 }), data: select(['BRK.B']).slice(0, 3) },
  { name: 'a comma list in a time range (ISO 8601)', url: q({ ticker: 'AMZN,MSFT', startTime: iso(T0 + 5 * W), endTime: iso(T0 + 8 * W) }), data: select(['AMZN', 'MSFT'], T0 + 5 * W, T0 + 8 * W) },
  { name: 'epoch milliseconds and an offset', url: q({ ticker: 'AAPL', startTime: T0 + 2 * W, endTime: '2024-05-01T14:03:00+02:00' }), data: select(['AAPL'], T0 + 2 * W, T0 + 6 * W) },
  { name: 'startTime alone: every ticker from then on', url: q({ startTime: iso(T0 + 18 * W) }), data: select(null, T0 + 18 * W) },
  { name: 'endTime alone: every ticker before then', url: q({ endTime: iso(T0 + W) }), data: select(null, -Infinity, T0 + W) },
  { name: 'startTime inside a window does not include it', url: q({ ticker: 'MSFT', startTime: iso(T0 + 1), endTime: iso(T0 + 2 * W) }), data: select(['MSFT'], T0 + W, T0 + 2 * W) },
  { name: 'a repeated ticker counts once', url: q({ ticker: 'MSFT,MSFT', endTime: iso(T0 + 2 * W) }), data: select(['MSFT'], -Infinity, T0 + 2 * W) },
  { name: 'an empty range', url: q({ ticker: 'AMZN', startTime: iso(T0), endTime: iso(T0) }), data: [] },
  { name: 'a range after the data', url: q({ startTime: '2030-01-01' }), data: [] },
  { name: 'limit', url: q({ ticker: 'AMZN,MSFT', limit: 5 }), data: select(['AMZN', 'MSFT']).slice(0, 5) },
];

const bad: Array<{ name: string; url: string; code: string; parameter: string }> = [
  { name: 'limit 0', url: q({ limit: 0 }), code: 'BAD_PARAMETER', parameter: 'limit' },
  { name: 'limit above 1000', url: q({ ticker: 'AMZN', limit: 1001 }), code: 'BAD_PARAMETER', parameter: 'limit' },
  { name: 'limit not a number', url: q({ limit: 'ten' }), code: 'BAD_PARAMETER', parameter: 'limit' },
  { name: 'limit a fraction', url: q({ limit: 1.5 }), code: 'BAD_PARAMETER', parameter: 'limit' },
  { name: 'startTime not a time', url: q({ startTime: 'yesterday' }), code: 'BAD_PARAMETER', parameter: 'startTime' },
  { name: 'startTime an impossible date', url: q({ startTime: '2024-02-30T00:00:00Z' }), code: 'BAD_PARAMETER', parameter: 'startTime' },
  { name: 'endTime out of range', url: q({ endTime: '99999999999999999' }), code: 'BAD_PARAMETER', parameter: 'endTime' },
  { name: 'endTime before startTime', url: q({ startTime: '2024-05-02', endTime: '2024-05-01' }), code: 'BAD_TIME_RANGE', parameter: 'endTime' },
  { name: 'an unknown ticker', url: q({ ticker: 'NOPE' }), code: 'UNKNOWN_TICKER', parameter: 'ticker' },
  { name: 'an unknown ticker in a list', url: q({ ticker: 'AMZN,NOPE' }), code: 'UNKNOWN_TICKER', parameter: 'ticker' },
  { name: 'an empty ticker', url: q({ ticker: '' }), code: 'BAD_PARAMETER', parameter: 'ticker' },
  { name: 'an empty item in the list', url: q({ ticker: 'AMZN,,MSFT' }), code: 'BAD_PARAMETER', parameter: 'ticker' },
  { name: 'too many tickers', url: q({ ticker: Array.from({ length: 51 }, (_, i) => `T${i}`).join(',') }), code: 'BAD_PARAMETER', parameter: 'ticker' },
  { name: 'the ticker given twice', url: '/v1/get-prices?ticker=AMZN&ticker=MSFT', code: 'BAD_PARAMETER', parameter: 'ticker' },
  { name: 'SQL in ticker (quote)', url: q({ ticker: "AMZN' OR '1'='1" }), code: 'BAD_PARAMETER', parameter: 'ticker' },
  { name: 'SQL in ticker (statement)', url: q({ ticker: 'AMZN;DROP TABLE stock_windows' }), code: 'BAD_PARAMETER', parameter: 'ticker' },
  { name: 'SQL in startTime', url: q({ startTime: "2024-05-01' OR 1=1--" }), code: 'BAD_PARAMETER', parameter: 'startTime' },
  { name: 'SQL in endTime', url: q({ endTime: '1); DELETE FROM stock_windows;--' }), code: 'BAD_PARAMETER', parameter: 'endTime' },
  { name: 'SQL in cursor', url: q({ cursor: "x' OR 1=1" }), code: 'BAD_PARAMETER', parameter: 'cursor' },
  { name: 'a cursor that is not one of ours', url: q({ ticker: 'AMZN', cursor: 'abc' }), code: 'BAD_CURSOR', parameter: 'cursor' },
  { name: 'a cursor past the end of time', url: q({ ticker: 'AMZN', cursor: Buffer.from('{"r":[9007199254740991,"AMZN"]}').toString('base64url') }), code: 'BAD_CURSOR', parameter: 'cursor' },
  { name: 'a latest-prices cursor in a range query', url: q({ ticker: 'AMZN', cursor: Buffer.from('{"l":"AMZN"}').toString('base64url') }), code: 'BAD_CURSOR', parameter: 'cursor' },
  { name: 'an unknown parameter', url: q({ symbol: 'AMZN' }), code: 'BAD_PARAMETER', parameter: 'symbol' },
  { name: 'a very long time', url: q({ startTime: '2'.repeat(200) }), code: 'BAD_PARAMETER', parameter: 'startTime' },
];

function suite(transport: string, getter: () => Get) {
  describe(`GET /v1/get-prices over ${transport}`, () => {
    for (const c of good) {
      it(c.name, async () => {
        const answer = await getter()(c.url);
        assert.equal(answer.status, 200, JSON.stringify(answer.body));
        assert.match(answer.contentType, /^application\/json/);
        assert.deepEqual(answer.body.data, c.data);
      });
    }

    it('pages through a range with limit and cursor: every row once, in order', async () => {
      const seen: Row[] = [];
      let url: string | null = q({ ticker: 'AMZN,MSFT,AAPL', limit: 7 });
      let pages = 0;
      while (url) {
        const answer = await getter()(url);
        assert.equal(answer.status, 200);
        seen.push(...answer.body.data!);
        pages++;
        url = answer.body.nextCursor ? q({ ticker: 'AMZN,MSFT,AAPL', limit: 7, cursor: answer.body.nextCursor }) : null;
      }
      const all = select(['AMZN', 'MSFT', 'AAPL']);
      assert.deepEqual(seen, all);
      assert.equal(pages, Math.ceil(all.length / 7));
    });

    it('pages through the latest prices one ticker at a time', async () => {
      const seen: Row[] = [];
      let cursor: string | null | undefined = null;
      do {
        const answer: Answer = await getter()(cursor ? q({ limit: 1, cursor }) : q({ limit: 1 }));
        assert.equal(answer.status, 200);
        seen.push(...answer.body.data!);
        cursor = answer.body.nextCursor;
      } while (cursor);
      assert.deepEqual(seen, latest());
    });

    for (const c of bad) {
      it(`400 for ${c.name}`, async () => {
        const answer = await getter()(c.url);
        assert.equal(answer.status, 400, JSON.stringify(answer.body));
        assert.match(answer.contentType, /^application\/json/);
        assert.equal(answer.body.error?.code, c.code);
        assert.equal(answer.body.error?.parameter, c.parameter);
        assert.ok(answer.body.error!.message.length > 0);
      });
    }

    it('the injection attempts left the table as it was', async () => {
      const answer = await getter()(q({ limit: 1000 }) + '&startTime=0');
      assert.equal(answer.body.data?.length, ROWS.length);
    });
  });
}

describe('the API', () => {
  let isolated: IsolatedDatabase;
  let db: Database;
  let app: FastifyInstance;
  let base = '';
  before(async () => {
    isolated = await isolatedDatabase('api');
    db = await isolated.open();
    await insertRows(db);
    app = await buildApp({ db });
    base = await app.listen({ host: '127.0.0.1', port: 0 });
  });
  after(async () => {
    await app?.close();
    await db?.close();
    await isolated?.drop();
  });

  const inject: Get = async (url) => {
    const response = await app.inject({ method: 'GET', url });
    return { status: response.statusCode, contentType: String(response.headers['content-type']), body: response.json<Answer['body']>() };
  };
  const socket: Get = async (url) => {
    const response = await fetch(`${base}${url}`);
    return { status: response.status, contentType: response.headers.get('content-type') ?? '', body: (await response.json()) as Answer['body'] };
  };
  suite('inject()', () => inject);
  suite('a real socket', () => socket);

  describe('operations', () => {
    it('/healthz and /readyz answer 200', async () => {
      for (const get of [inject, socket]) {
        assert.deepEqual(await get('/healthz').then((a) => [a.status, a.body]), [200, { status: 'ok' }]);
        assert.deepEqual(await get('/readyz').then((a) => [a.status, a.body]), [200, { status: 'ready' }]);
      }
    });

    it('/metrics serves the Prometheus text format with request timings and process metrics', async () => {
      const response = await fetch(`${base}/metrics`);
      assert.equal(response.status, 200);
      assert.match(response.headers.get('content-type') ?? '', /^text\/plain/);
      const text = await response.text();
      assert.match(text, /tickflow_http_request_seconds_count\{method="GET",route="\/v1\/get-prices",status="200"\} \d+/);
      assert.match(text, /process_cpu_user_seconds_total/);
    });

    it('/docs/json is an OpenAPI document of every parameter and the error catalogue; /docs is the interactive page', async () => {
      const doc = (await app.inject({ method: 'GET', url: '/docs/json' })).json();
      assert.equal(doc.openapi, '3.0.3');
      const operation = doc.paths['/v1/get-prices'].get;
      assert.deepEqual(operation.parameters.map((p: { name: string }) => p.name).sort(), ['cursor', 'endTime', 'limit', 'startTime', 'ticker']);
      assert.ok(operation.responses['400'] && operation.responses['200']);
      assert.match(doc.info.description, /UNKNOWN_TICKER/);
      const page = await fetch(`${base}/docs`);
      assert.equal(page.status, 200);
      assert.match(await page.text(), /swagger/i);
    });

    it('an unknown route is a JSON 404', async () => {
      const answer = await socket('/v2/nothing');
      assert.equal(answer.status, 404);
      assert.equal(answer.body.error?.code, 'NOT_FOUND');
    });
  });

  describe('failures', () => {
    const failing = (error: Error): Queryable => ({ query: async () => Promise.reject(error) });

    it('an unavailable database is a 503 from the API and from /readyz', async () => {
      const broken = await buildApp({ db: failing(new TickflowError('DB_UNAVAILABLE', 'database x is unavailable: ECONNREFUSED')) });
      const prices = await broken.inject({ method: 'GET', url: '/v1/get-prices' });
      assert.equal(prices.statusCode, 503);
      assert.equal(prices.json().error.code, 'DATABASE_UNAVAILABLE');
      const ready = await broken.inject({ method: 'GET', url: '/readyz' });
      assert.equal(ready.statusCode, 503);
      assert.equal(ready.json().status, 'not ready');
      assert.equal((await broken.inject({ method: 'GET', url: '/healthz' })).statusCode, 200);
      await broken.close();
    });

    it('an unexpected failure is a 500 without internals', async () => {
      const broken = await buildApp({ db: failing(new Error('relation "secret_table" does not exist')) });
      const answer = await broken.inject({ method: 'GET', url: '/v1/get-prices' });
      assert.equal(answer.statusCode, 500);
      assert.deepEqual(answer.json(), { error: { code: 'INTERNAL', message: 'internal error; it has been logged' } });
      await broken.close();
    });
  });
});
