/**
 * The dashboard's data on the real Kafka and PostgreSQL: GET /v1/dashboard in-process
 * (inject) against known rows and records, GET /v1/live over a real socket, the page and
 * its assets, and sections that fail on their own.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { isDeepStrictEqual } from 'node:util';
import type { FastifyInstance } from 'fastify';
import { saveOffsets } from '../../src/db/offset-store.ts';
import type { Database, Queryable } from '../../src/db/types.ts';
import { buildApp } from '../../src/http/app.ts';
import type { DashboardSnapshot } from '../../src/http/live-snapshot.ts';
import { KafkaLog } from '../../src/log/kafka.ts';
import { KAFKA_BROKERS } from '../helpers/env.ts';
import { isolatedDatabase, waitFor } from '../stocks/fixtures.ts';
import type { IsolatedDatabase } from '../stocks/fixtures.ts';
import { W, indicatorState, insertIndicatorState, insertStockWindows, minuteRecords, pricesAround, stockWindows } from './fixtures.ts';

const id = randomUUID().slice(0, 8);
const ticks = `dash-ticks-${id}`;
const minutesTopic = `dash-minutes-${id}`;
const sink = `dash-sink-${id}`;
const NOW = Date.now();
const WINDOWS = stockWindows({ AMZN: 75, MSFT: 20, AAPL: 1 }, NOW);
const MINUTES = minuteRecords(30, NOW);

describe('dashboard data on the real Kafka and PostgreSQL', () => {
  let isolated: IsolatedDatabase;
  let db: Database;
  let log: KafkaLog;
  let app: FastifyInstance;
  const expectedIndicators = new Map<string, ReturnType<typeof indicatorState>['last']>();

  before(async () => {
    isolated = await isolatedDatabase('dashboard');
    db = await isolated.open();
    await insertStockWindows(db, WINDOWS);
    // AAPL is kept by two groups: the newer state is the one shown.
    const older = indicatorState(pricesAround(215, 40, 1));
    await insertIndicatorState(db, { consumer: 'old-group', topic: 'prices', partition: 0, symbol: 'AAPL', state: older.state, updatedAt: new Date(NOW - 60_000) });
    for (const [i, [symbol, mean, n]] of ([['AAPL', 215, 250], ['MSFT', 107, 100], ['TSLA', 700, 2]] as const).entries()) {
      const { state, last } = indicatorState(pricesAround(mean, n, 7 + i));
      expectedIndicators.set(symbol, last);
      await insertIndicatorState(db, { consumer: 'tickflow-indicators', topic: 'prices', partition: i, symbol, state, updatedAt: new Date(NOW - i * 1000) });
    }

    log = new KafkaLog({ brokers: KAFKA_BROKERS });
    await log.createTopics([{ name: ticks, partitions: 3 }, { name: minutesTopic, partitions: 1 }]);
    const producer = log.producer();
    await producer.send(ticks, Array.from({ length: 30 }, (_, i) => ({ partition: i % 3, value: `t${i}` })));
    // A minute emitted twice keeps its newest record; a record that is not a minute is skipped.
    const first = MINUTES.slice(0, 20);
    const rerun = { ...MINUTES[5], uniqueUsers: 1, frames: 1 };
    await producer.send(minutesTopic, [...first, rerun, { ...MINUTES[5] }].map((m) => ({ value: JSON.stringify(m) })));
    await producer.send(minutesTopic, [{ value: 'not json' }, ...MINUTES.slice(20).map((m) => ({ value: JSON.stringify(m) }))]);
    await producer.close();
    // A sink that keeps its offsets in PostgreSQL, 4 records behind on partition 0.
    await db.transaction((tx) => saveOffsets(tx, sink, ticks, new Map([[0, 6n], [1, 10n], [2, 10n]]), 0));

    app = await buildApp({ db, log, dashboard: { topics: [ticks, minutesTopic, `dash-absent-${id}`], uniqueUsersTopic: minutesTopic, intervalMs: 200, lagEveryMs: 0 } });
  });

  after(async () => {
    await app?.close();
    await log?.deleteTopics([ticks, minutesTopic]).catch(() => undefined);
    await log?.close();
    await db?.close();
    await isolated?.drop();
  });

  const snapshot = async (target: FastifyInstance = app): Promise<DashboardSnapshot> => {
    const response = await target.inject({ method: 'GET', url: '/v1/dashboard' });
    assert.equal(response.statusCode, 200, response.body);
    assert.match(String(response.headers['content-type']), /^application\/json/);
    return response.json() as DashboardSnapshot;
  };

  it('stocks: the latest window per ticker and up to 60 windows of history, oldest first', async () => {
    const { stocks } = await snapshot();
    assert.deepEqual(stocks!.map((s) => s.ticker), ['AAPL', 'AMZN', 'MSFT']);
    for (const ticker of stocks!) {
      const rows = WINDOWS.filter((r) => r.ticker === ticker.ticker);
      const shown = rows.slice(-60);
      const last = rows.at(-1)!;
      assert.deepEqual(ticker.latest, {
        windowStart: new Date(last.windowStart).toISOString(),
        windowEnd: new Date(last.windowStart + W).toISOString(),
        averagePrice: last.priceSum / last.sampleCount,
        sampleCount: last.sampleCount,
        minPrice: last.minPrice,
        maxPrice: last.maxPrice,
      });
      assert.equal(ticker.previousAverage, rows.length > 1 ? rows.at(-2)!.priceSum / rows.at(-2)!.sampleCount : null);
      assert.deepEqual(ticker.history.t, shown.map((r) => r.windowStart / 1000));
      assert.deepEqual(ticker.history.average, shown.map((r) => r.priceSum / r.sampleCount));
    }
  });

  it('indicators: per symbol the newest state, with the values of its last output', async () => {
    const { indicators } = await snapshot();
    assert.deepEqual(indicators!.map((i) => i.symbol), ['AAPL', 'MSFT', 'TSLA']);
    for (const view of indicators!) {
      const last = expectedIndicators.get(view.symbol)!;
      assert.equal(view.consumer, 'tickflow-indicators');
      assert.equal(view.ema, last.ema);
      assert.equal(view.volatility, last.volatility);
      assert.equal(view.points, last.points);
      assert.equal(view.seen, last.seq);
      assert.equal(view.window, 100);
    }
    assert.equal(indicators![2].volatility, null, 'two prices: no volatility yet');
    assert.equal(indicators![0].price, pricesAround(215, 250, 7).at(-1));
  });

  it('unique users: the topic\'s minutes in order, a re-emitted minute once with its newest count', async () => {
    const { uniqueUsers } = await snapshot();
    assert.deepEqual(uniqueUsers, { topic: minutesTopic, minutes: MINUTES, skipped: 1 });
  });

  it('throughput: records per topic, and a rate once two samples are apart', async () => {
    const first = await snapshot();
    assert.deepEqual(first.throughput!.topics.map((t) => [t.topic, t.messages]), [[ticks, 30], [minutesTopic, MINUTES.length + 3]]);
    const producer = log.producer();
    await producer.send(ticks, Array.from({ length: 12 }, (_, i) => ({ value: `more${i}` })));
    await producer.close();
    let latest = first;
    await waitFor(async () => {
      latest = await snapshot();
      return latest.throughput!.history.series[0].recordsPerSecond.some((rate) => rate !== null && rate > 0);
    }, 'a positive rate for the ticks topic', 30_000);
    assert.equal(latest.throughput!.topics[0].messages, 42);
    const { t, series } = latest.throughput!.history;
    assert.ok(t.length >= 2);
    for (const s of series) assert.equal(s.recordsPerSecond.length, t.length);
    assert.ok(latest.notes.every((n) => !n.includes('dash-absent')), 'a listed topic that does not exist is left out quietly');
  });

  it('lag: the stored-offset sink on the ticks topic', async () => {
    const total = (await log.offsets(ticks)).reduce((n, p) => n + Number(p.latest), 0);
    const expected = { kind: 'stored', name: sink, topic: ticks, partitions: 3, consumed: 26, lag: total - 26 };
    // Lag is refreshed in the background: a snapshot may carry the answer of the refresh before.
    let lag: DashboardSnapshot['lag'] = null;
    await waitFor(async () => {
      lag = (await snapshot()).lag;
      return isDeepStrictEqual(lag?.consumers.find((c) => c.name === sink), expected);
    }, `the sink's lag (${JSON.stringify(expected)})`, 30_000);
    assert.deepEqual(lag!.problems, []);
  });

  it('without a log: the database panels only, and a note saying why', async () => {
    const bare = await buildApp({ db });
    try {
      const body = await snapshot(bare);
      assert.equal(body.log, null);
      assert.equal(body.stocks!.length, 3);
      assert.equal(body.indicators!.length, 3);
      assert.deepEqual([body.throughput, body.lag, body.uniqueUsers], [null, null, null]);
      assert.ok(body.notes.some((n) => n.startsWith('no log configured')), body.notes.join('\n'));
    } finally {
      await bare.close();
    }
  });

  it('a failing section empties that section only and says why', async () => {
    const flaky: Queryable = {
      query: async (sql, params) => {
        if (sql.includes('indicator_state')) throw new Error('relation "indicator_state" does not exist');
        return db.query(sql, params);
      },
    };
    const partial = await buildApp({ db: flaky });
    try {
      const body = await snapshot(partial);
      assert.equal(body.indicators, null);
      assert.equal(body.stocks!.length, 3);
      assert.ok(body.notes.includes('indicators: could not be read; the server log has the details'), body.notes.join('\n'));
      assert.ok(body.notes.every((n) => !n.includes('indicator_state')), 'the error itself stays in the log');
    } finally {
      await partial.close();
    }
  });

  it('an empty database: empty panels with notes', async () => {
    const empty: Queryable = { query: async () => ({ rows: [], rowCount: 0 }) };
    const fresh = await buildApp({ db: empty });
    try {
      const body = await snapshot(fresh);
      assert.deepEqual([body.stocks, body.indicators], [[], []]);
      assert.ok(body.notes.some((n) => n.startsWith('stocks: no 30-second aggregates yet')));
      assert.ok(body.notes.some((n) => n.startsWith('indicators: no indicator state yet')));
    } finally {
      await fresh.close();
    }
  });

  it('GET /v1/live streams snapshots as server-sent events over a socket; closing the app ends the stream', async () => {
    const live = await buildApp({ db, log, dashboard: { topics: [ticks], uniqueUsersTopic: minutesTopic, intervalMs: 200 } });
    const url = await live.listen({ host: '127.0.0.1', port: 0 });
    let closed = false;
    try {
      const response = await fetch(`${url}/v1/live`);
      assert.equal(response.status, 200);
      assert.equal(response.headers.get('content-type'), 'text/event-stream; charset=utf-8');
      assert.equal(response.headers.get('cache-control'), 'no-cache, no-transform');
      const reader = response.body!.pipeThrough(new TextDecoderStream()).getReader();
      const events: Array<{ id: string; data: DashboardSnapshot }> = [];
      let buffer = '';
      while (events.length < 2) {
        const { value, done } = await reader.read();
        assert.equal(done, false, 'the stream ended early');
        buffer += value;
        let end: number;
        while ((end = buffer.indexOf('\n\n')) >= 0) {
          const block = buffer.slice(0, end);
          buffer = buffer.slice(end + 2);
          const fields = Object.fromEntries(block.split('\n').map((line) => [line.slice(0, line.indexOf(':')), line.slice(line.indexOf(':') + 1).trimStart()]));
          if (fields.data !== undefined) events.push({ id: fields.id, data: JSON.parse(fields.data) as DashboardSnapshot });
        }
      }
      assert.deepEqual(events.map((e) => e.id), ['1', '2']);
      for (const { data } of events) {
        assert.deepEqual(data.stocks!.map((s) => s.ticker), ['AAPL', 'AMZN', 'MSFT']);
        assert.equal(data.uniqueUsers!.minutes.length, MINUTES.length);
        assert.equal(data.throughput!.topics[0].topic, ticks);
      }
      assert.ok(Date.parse(events[1].data.at) > Date.parse(events[0].data.at), 'the second event is a new snapshot');
      // A shutdown does not wait for the open stream: it ends it.
      await live.close();
      closed = true;
      for (;;) {
        const { done } = await reader.read();
        if (done) break;
      }
    } finally {
      if (!closed) await live.close();
    }
  });

  it('GET / redirects to the page; the page and its assets are served from the API, nothing from elsewhere', async () => {
    const root = await app.inject({ method: 'GET', url: '/' });
    assert.equal(root.statusCode, 302);
    assert.equal(root.headers.location, '/dashboard');
    const page = await app.inject({ method: 'GET', url: '/dashboard' });
    assert.equal(page.statusCode, 200);
    assert.equal(page.headers['content-type'], 'text/html; charset=utf-8');
    assert.match(String(page.headers['content-security-policy']), /default-src 'none'; script-src 'self'/);
    assert.doesNotMatch(page.body, /(https?:)?\/\/[a-z0-9.-]+\.[a-z]{2,}/i, 'no URL of another origin');
    const assets = [...page.body.matchAll(/(?:src|href)="(\/[^"]+)"/g)].map((m) => m[1]);
    assert.deepEqual(assets.sort(), ['/dashboard/dashboard.css', '/dashboard/dashboard.js', '/dashboard/vendor/uPlot.min.css'].sort());
    const types: Record<string, string> = { css: 'text/css; charset=utf-8', js: 'text/javascript; charset=utf-8' };
    for (const asset of [...assets, '/dashboard/vendor/uPlot.esm.js']) {
      const response = await app.inject({ method: 'GET', url: asset });
      assert.equal(response.statusCode, 200, asset);
      assert.equal(response.headers['content-type'], types[asset.slice(asset.lastIndexOf('.') + 1)], asset);
      const again = await app.inject({ method: 'GET', url: asset, headers: { 'if-none-match': String(response.headers.etag) } });
      assert.equal(again.statusCode, 304, asset);
    }
    const script = await app.inject({ method: 'GET', url: '/dashboard/dashboard.js' });
    assert.match(script.body, /from '\/dashboard\/vendor\/uPlot\.esm\.js'/);
    assert.match(script.body, /new EventSource\('\/v1\/live'\)/);
  });

  it('the OpenAPI document describes /v1/dashboard and /v1/live, not the page files', async () => {
    const doc = (await app.inject({ method: 'GET', url: '/docs/json' })).json() as { paths: Record<string, unknown> };
    assert.ok(doc.paths['/v1/dashboard']);
    assert.ok(doc.paths['/v1/live']);
    assert.equal(Object.keys(doc.paths).some((p) => p.startsWith('/dashboard') || p === '/'), false);
  });
});
