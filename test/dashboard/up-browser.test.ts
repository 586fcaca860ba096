/// <reference lib="dom" />
/**
 * `tickflow up` on the embedded defaults (in-process log, PGlite in a temporary data dir),
 * its dashboard driven in headless Chromium: the URL it prints opens a page whose panels
 * fill from the running services. Screenshot: test-artifacts/up-dashboard.png.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import type { Browser } from 'playwright-core';
import { waitFor } from '../stocks/fixtures.ts';
import { launchChromium, screenshot, startTickflow, watchPage } from './chromium.ts';
import type { Service } from './chromium.ts';

const DASHBOARD_LINE = /dashboard: (http:\/\/\S+)/;

describe('tickflow up: the dashboard in headless Chromium (embedded defaults)', () => {
  const dataDir = mkdtempSync(join(tmpdir(), 'tickflow-up-dashboard-'));
  let up: Service | undefined;
  let browser: Browser | undefined;

  after(async () => {
    await browser?.close();
    const code = await up?.stop('SIGINT');
    rmSync(dataDir, { recursive: true, force: true });
    assert.equal(code, 0, up?.stderr());
  });

  it('prints the dashboard URL, and the page shows aggregates, indicators, throughput, lag and unique users from the running services', async () => {
    const env = { ...process.env };
    delete env.KAFKA_BROKERS;
    delete env.DATABASE_URL;
    up = startTickflow(['up', '--port', '0', '--count', '2000', '--rate', '20', '--data-dir', dataDir], env);
    await waitFor(() => DASHBOARD_LINE.test(up!.stdout()) || up!.exited(), 'the dashboard URL line', 90_000);
    assert.equal(up.exited(), false, `${up.stdout()}\n${up.stderr()}`);
    const dashboard = DASHBOARD_LINE.exec(up.stdout())![1];
    const origin = new URL(dashboard).origin;

    browser = await launchChromium();
    const page = await browser.newPage({ viewport: { width: 1440, height: 900 } });
    const watch = watchPage(page, origin);
    await page.goto(dashboard);
    const wait = (what: string, predicate: (arg: string | number | null) => unknown, arg: string | number | null = null) =>
      page.waitForFunction(predicate, arg, { timeout: 150_000, polling: 250 }).catch((error: Error) => {
        assert.fail(`the page never showed ${what}: ${error.message}\nerrors: ${watch.errors.join('\n')}\nup: ${up!.stderr()}`);
      });
    await wait('the live status', () => document.querySelector<HTMLElement>('#status')?.dataset.state === 'live');
    // The prices batch feeds the indicators at once: the five default symbols.
    await wait('indicators for five symbols', () => document.querySelectorAll('#indicators-table tbody tr').length === 5);
    // The generator writes `stocks` at 20 records/s.
    await wait('a positive rate for stocks', () => Number(document.querySelector('#topics-table tr[data-topic="stocks"] td.rate')?.textContent?.replace(/,/g, '')) > 0);
    await wait('a throughput chart with rates', () => document.querySelector('#throughput-chart canvas') && Number(document.querySelector<HTMLElement>('#throughput-chart')!.dataset.points) >= 5);
    await wait('the stored-offset consumers in the lag table', () => document.querySelectorAll('#lag-table tbody tr[data-consumer]').length >= 2);
    // The aggregator closes a 30-second window once the watermark passes it; two make a line.
    await wait('the three tickers', () => document.querySelectorAll('#stocks-table tbody tr').length === 3);
    await wait('a chart per ticker with two windows', () => [...document.querySelectorAll<HTMLElement>('#average-charts .chart')]
      .filter((c) => c.querySelector('canvas') && Number(c.dataset.points) >= 2).length === 3);

    const tickers = await page.$$eval('#stocks-table tbody tr', (rows) => rows.map((r) => r.getAttribute('data-ticker')));
    assert.deepEqual(tickers, ['AAPL', 'AMZN', 'MSFT']);
    const averages = await page.$$eval('#stocks-table td.average', (cells) => cells.map((c) => Number(c.textContent!.replace(/,/g, ''))));
    // Generated prices lie within ±10% of AAPL 215, AMZN 1902, MSFT 107.
    [215, 1902, 107].forEach((mean, i) => assert.ok(Math.abs(averages[i] - mean) <= mean * 0.1, `${tickers[i]} ${averages[i]}`));
    const consumers = await page.$$eval('#lag-table tbody tr', (rows) => rows.map((r) => `${r.getAttribute('data-consumer')} ${r.getAttribute('data-topic')}`));
    assert.ok(consumers.includes('stocks-aggregator stocks'), consumers.join('\n'));
    assert.ok(consumers.includes('tickflow-indicators prices'), consumers.join('\n'));
    assert.ok((await page.$$('canvas')).length >= 4, 'three average charts and throughput');

    // The frames `up` generates: unique-users emits a minute once the watermark passes its end.
    await wait('a minute of unique users', () => Number(document.querySelector<HTMLElement>('#users-chart')?.dataset.points) >= 1);
    const perMinute = await page.$eval('#users-latest', (b) => Number(b.textContent!.replace(/,/g, '')));
    assert.ok(perMinute > 0, `${perMinute} users in the latest minute`);
    // Its sketch is stored before its record is sent; the ranges are fetched as the page opens.
    await page.reload();
    await wait('the live status again', () => document.querySelector<HTMLElement>('#status')?.dataset.state === 'live');
    await wait('unique users in the last 24 hours and 30 days', () => ['hours', 'days'].every((key) => Number(document.querySelector<HTMLElement>(`#users-${key}-chart`)?.dataset.points) >= 1));
    for (const key of ['hours', 'days']) assert.match(await page.$eval(`#users-${key}-total`, (s) => s.textContent!), /^[\d,]+ distinct users/);
    await wait('a chart per ticker again', () => [...document.querySelectorAll<HTMLElement>('#average-charts .chart')]
      .filter((c) => c.querySelector('canvas') && Number(c.dataset.points) >= 2).length === 3);

    await screenshot(page, 'up-dashboard.png');
    assert.deepEqual(watch.foreign, [], 'no request leaves the API\'s origin');
    assert.deepEqual(watch.errors, [], 'no error in the console');
  });
});
