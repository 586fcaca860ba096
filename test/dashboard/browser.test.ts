/// <reference lib="dom" />
/**
 * The dashboard in a real headless Chromium: `tickflow api` as a child process on the real
 * Kafka and PostgreSQL holding known aggregates, indicator state, unique-users minutes and
 * topics being written to; the page renders every panel from the live stream, asks
 * nothing of any other origin, and logs no error. Screenshot: test-artifacts/dashboard.png.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import type { Browser } from 'playwright-core';
import { saveOffsets } from '../../src/db/offset-store.ts';
import type { Database, Queryable } from '../../src/db/types.ts';
import { buildApp } from '../../src/http/app.ts';
import { KafkaLog } from '../../src/log/kafka.ts';
import { KAFKA_BROKERS } from '../helpers/env.ts';
import { isolatedDatabase, waitFor } from '../stocks/fixtures.ts';
import type { IsolatedDatabase } from '../stocks/fixtures.ts';
import { launchChromium, screenshot, startTickflow, watchPage } from './chromium.ts';
import type { Service } from './chromium.ts';
import { MEANS, indicatorState, insertIndicatorState, insertStockWindows, minuteRecords, pricesAround, stockWindows } from './fixtures.ts';

const id = randomUUID().slice(0, 8);
const stocksTopic = `dash-stocks-${id}`;
const pricesTopic = `dash-prices-${id}`;
const minutesTopic = `dash-unique-users-${id}`;
const aggregator = `dash-aggregator-${id}`;
const stale = `dash-stale-${id}`;
const NOW = Date.now();
const WINDOWS = stockWindows({ AMZN: 50, MSFT: 50, AAPL: 50 }, NOW);
const MINUTES = minuteRecords(45, NOW);
const SYMBOLS: Array<[string, number]> = [['AAPL', 215], ['AMZN', 1902], ['GOOG', 140], ['MSFT', 107], ['TSLA', 700]];

describe('the dashboard in headless Chromium (tickflow api on real Kafka and PostgreSQL)', () => {
  let isolated: IsolatedDatabase;
  let db: Database;
  let log: KafkaLog;
  let api: Service;
  let browser: Browser | undefined;
  let writing = true;
  let writer: Promise<void> = Promise.resolve();

  before(async () => {
    isolated = await isolatedDatabase('dashboard_browser');
    db = await isolated.open();
    await insertStockWindows(db, WINDOWS);
    for (const [i, [symbol, mean]] of SYMBOLS.entries()) {
      const { state } = indicatorState(pricesAround(mean, 300 + i * 37, 11 + i));
      await insertIndicatorState(db, { consumer: 'tickflow-indicators', topic: pricesTopic, partition: i % 3, symbol, state, updatedAt: new Date(NOW - i * 700) });
    }
    log = new KafkaLog({ brokers: KAFKA_BROKERS });
    await log.createTopics([{ name: stocksTopic, partitions: 3 }, { name: pricesTopic, partitions: 3 }, { name: minutesTopic, partitions: 1 }]);
    const producer = log.producer();
    await producer.send(minutesTopic, MINUTES.map((m) => ({ value: JSON.stringify(m) })));
    // A sink keeping its offsets in PostgreSQL that has read nothing yet: its lag is everything written.
    await db.transaction((tx) => saveOffsets(tx, aggregator, stocksTopic, new Map([[0, 0n], [1, 0n], [2, 0n]]), 0));
    // And one whose position is past the log end (its topic was recreated): a problem the page shows.
    await db.transaction((tx) => saveOffsets(tx, stale, pricesTopic, new Map([[0, 1_000_000n]]), 0));
    // Topics being written to while the page watches: ~80 and ~30 records/s.
    writer = (async () => {
      for (let round = 0; writing; round++) {
        await producer.send(stocksTopic, Array.from({ length: 20 }, (_, i) => ({ key: ['AMZN', 'MSFT', 'AAPL'][i % 3], value: JSON.stringify({ tickers: [{ name: 'AMZN', price: 1902 }], ts: Date.now() }) })));
        if (round % 3 === 0) await producer.send(pricesTopic, Array.from({ length: 20 }, (_, i) => ({ key: SYMBOLS[i % 5][0], value: `{"symbol":"${SYMBOLS[i % 5][0]}"}` })));
        await new Promise((r) => setTimeout(r, 250));
      }
      await producer.close();
    })();

    api = startTickflow([
      'api', '--host', '127.0.0.1', '--port', '0', '--json',
      '--brokers', KAFKA_BROKERS.join(','), '--database-url', isolated.url,
      '--dashboard-topics', `${stocksTopic},${pricesTopic},${minutesTopic}`, '--unique-users-topic', minutesTopic,
    ], { ...process.env });
    await waitFor(() => api.stdout().includes('\n') || api.exited(), 'the api to listen', 60_000);
    assert.equal(api.exited(), false, api.stderr());
  });

  after(async () => {
    writing = false;
    await writer.catch(() => undefined);
    await browser?.close();
    const code = await api?.stop('SIGTERM');
    await log?.deleteTopics([stocksTopic, pricesTopic, minutesTopic]).catch(() => undefined);
    await log?.close();
    await db?.close();
    await isolated?.drop();
    assert.equal(code, 0, api?.stderr());
  });

  it('renders every panel with data from the live stream', async () => {
    const { url, dashboard } = JSON.parse(api.stdout().split('\n')[0]) as { url: string; dashboard: string };
    assert.equal(dashboard, `${url}/dashboard`);
    browser = await launchChromium();
    const page = await browser.newPage({ viewport: { width: 1440, height: 900 } });
    const watch = watchPage(page, url);
    const response = await page.goto(`${url}/`);
    assert.equal(response?.url(), `${url}/dashboard`, 'GET / redirects to the dashboard');
    assert.equal(await page.title(), 'tickflow · live dashboard');

    // Function predicates: the page's CSP (rightly) forbids evaluating strings.
    const wait = (what: string, predicate: (arg: string | number | null) => unknown, arg: string | number | null) =>
      page.waitForFunction(predicate, arg, { timeout: 90_000, polling: 200 }).catch((error: Error) => {
        assert.fail(`the page never showed ${what}: ${error.message}\nerrors: ${watch.errors.join('\n')}\napi: ${api.stderr()}`);
      });
    await wait('the live status', () => document.querySelector<HTMLElement>('#status')?.dataset.state === 'live', null);
    await wait('three tickers', () => document.querySelectorAll('#stocks-table tbody tr').length === 3, null);
    await wait('a chart per ticker with every window', (n) => [...document.querySelectorAll<HTMLElement>('#average-charts .chart')]
      .filter((c) => c.querySelector('canvas') && c.dataset.points === String(n)).length === 3, 50);
    await wait('the unique users chart', (n) => document.querySelector('#users-chart canvas') && document.querySelector<HTMLElement>('#users-chart')!.dataset.points === String(n), MINUTES.length);
    await wait('a throughput chart with rates', () => document.querySelector('#throughput-chart canvas') && Number(document.querySelector<HTMLElement>('#throughput-chart')!.dataset.points) >= 10, null);
    await wait('a positive rate for the stocks topic', (topic) => Number(document.querySelector(`#topics-table tr[data-topic="${topic}"] td.rate`)?.textContent?.replace(/,/g, '')) > 0, stocksTopic);
    await wait('five symbols with indicators', () => document.querySelectorAll('#indicators-table tbody tr').length === 5, null);
    await wait('the problem of the stale consumer', () => document.querySelectorAll('#problems li').length > 0, null);
    await wait('the lag of the sink', (name) => Number(document.querySelector(`#lag-table tr[data-consumer="${name}"] td.lag`)?.textContent?.replace(/,/g, '')) > 0, aggregator);

    // The tables say what the data says.
    const stocks = await page.$$eval('#stocks-table tbody tr', (rows) => rows.map((r) => [r.getAttribute('data-ticker'), r.querySelector('td.average')!.textContent]));
    const price = (x: number) => x.toLocaleString('en-US', { minimumFractionDigits: 2, maximumFractionDigits: 2 });
    assert.deepEqual(stocks, ['AAPL', 'AMZN', 'MSFT'].map((ticker) => {
      const last = WINDOWS.filter((w) => w.ticker === ticker).at(-1)!;
      return [ticker, price(last.priceSum / last.sampleCount)];
    }));
    assert.ok(Object.keys(MEANS).every((t) => stocks.some(([ticker]) => ticker === t)));
    const indicators = await page.$$eval('#indicators-table tbody tr', (rows) => rows.map((r) => ({
      symbol: r.getAttribute('data-symbol'),
      price: r.querySelector('td.price')!.textContent,
      ema: r.querySelector('td.ema')!.textContent,
      volatility: r.querySelector('td.volatility')!.textContent,
    })));
    assert.deepEqual(indicators.map((i) => i.symbol), SYMBOLS.map(([s]) => s));
    for (const row of indicators) {
      assert.match(row.price!, /^[\d,]+\.\d\d$/, JSON.stringify(row));
      assert.match(row.ema!, /^[\d,]+\.\d\d$/, JSON.stringify(row));
      assert.match(row.volatility!, /^\d+\.\d\d%$/, JSON.stringify(row));
    }
    const problems = await page.$$eval('#problems li', (items) => items.map((li) => li.textContent));
    assert.equal(problems.length, 1, problems.join('\n'));
    assert.match(problems[0]!, new RegExp(`consumer ${stale} on ${pricesTopic}\\[0\\]: position 1000000 is past the log end`));
    const last = MINUTES.at(-1)!;
    assert.equal(await page.textContent('#users-latest'), last.uniqueUsers.toLocaleString('en-US'));
    assert.ok((await page.$$('canvas')).length >= 5, 'three average charts, unique users and throughput');

    await screenshot(page, 'dashboard.png');
    assert.deepEqual(watch.foreign, [], 'no request leaves the API\'s origin');
    assert.deepEqual(watch.errors, [], 'no error in the console');
    assert.ok(watch.requests.some((r) => r.endsWith('/dashboard/vendor/uPlot.esm.js')));
  });

  it('an empty system without a log: every panel says what would fill it, and nothing fails', async () => {
    const empty: Queryable = { query: async () => ({ rows: [], rowCount: 0 }) };
    const app = await buildApp({ db: empty, dashboard: { intervalMs: 300 } });
    const url = await app.listen({ host: '127.0.0.1', port: 0 });
    try {
      browser ??= await launchChromium();
      const page = await browser.newPage({ viewport: { width: 1280, height: 800 } });
      const watch = watchPage(page, url);
      await page.goto(`${url}/dashboard`);
      await page.waitForFunction(() => Number(document.body.dataset.updates) >= 2, null, { timeout: 60_000, polling: 100 });
      for (const section of ['stocks', 'indicators', 'averages', 'users', 'throughput', 'lag', 'topics']) {
        assert.equal(await page.isVisible(`#${section} .empty`), true, `#${section} says it is empty`);
      }
      const notes = await page.$$eval('#notes li', (items) => items.map((li) => li.textContent));
      assert.ok(notes.some((n) => n!.startsWith('no log configured')), notes.join('\n'));
      assert.equal(await page.textContent('#source'), 'no log');
      assert.equal(await page.$$('canvas').then((c) => c.length), 0);
      await page.close();
      assert.deepEqual(watch.errors, []);
      assert.deepEqual(watch.foreign, []);
    } finally {
      await app.close();
    }
  });
});
