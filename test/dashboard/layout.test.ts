/// <reference lib="dom" />
/**
 * The dashboard's layout in a real headless Chromium at common screen widths: a ticker
 * with a single window gets a time axis of minutes around it (not years) and a caption in
 * the singular, no table spills out of its card, and no two time labels of any chart
 * overlap (in a viewer's time zone where they are longest), the unique users of the last 24 hours and
 * 30 days included. The API runs in-process on PostgreSQL with known rows and the embedded log.
 * Screenshots: test-artifacts/dashboard-layout-<width>.png (paths printed).
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { Browser, Page } from 'playwright-core';
import type { FastifyInstance } from 'fastify';
import { ExactDistinct } from '../../src/core/hyperloglog.ts';
import { minuteSketchRow } from '../../src/core/user-sketches.ts';
import { saveOffsets } from '../../src/db/offset-store.ts';
import { saveUserMinutes } from '../../src/db/user-sketch-store.ts';
import type { Database } from '../../src/db/types.ts';
import { buildApp } from '../../src/http/app.ts';
import { MemoryLog } from '../../src/log/memory.ts';
import { isolatedDatabase } from '../stocks/fixtures.ts';
import type { IsolatedDatabase } from '../stocks/fixtures.ts';
import { launchChromium, screenshot, watchPage } from './chromium.ts';
import { W, indicatorState, insertIndicatorState, insertStockWindows, minuteRecords, pricesAround, stockWindows } from './fixtures.ts';

const NOW = Date.now();
const WINDOWS = stockWindows({ AMZN: 50, MSFT: 50, AAPL: 50, SOLO: 1 }, NOW);
const SOLO_START = WINDOWS.find((w) => w.ticker === 'SOLO')!.windowStart / 1000;
const MINUTES = minuteRecords(45, NOW);
const WIDTHS = [1024, 1280, 1400, 1920];

/** A stored minute every 30 minutes over the last 30 days (the hour and day charts of unique users). */
function userMinutes() {
  const last = Math.floor(NOW / 1_800_000) * 1800; // in the current hour
  return Array.from({ length: 30 * 48 }, (_, i) => {
    const start = last - i * 1800;
    const users = new ExactDistinct();
    for (let u = 0; u < 40 + (i % 37); u++) users.add(`user-${(i * 13 + u * 7) % 2000}`);
    return minuteSketchRow({ start, frames: users.count() * 2, late: 0 }, users);
  });
}

/**
 * A viewer whose clock reads 11 a.m. now: the longest local time labels ("10:49:50am").
 * The page must show UTC whatever the viewer's zone, and labels must not collide in any.
 */
function zoneAtEleven(): string {
  let hours = (11 - new Date(NOW).getUTCHours() + 24) % 24;
  if (hours > 14) hours -= 24;
  return hours === 0 ? 'Etc/GMT' : hours > 0 ? `Etc/GMT-${hours}` : `Etc/GMT+${-hours}`; // POSIX signs: GMT-3 is UTC+3
}

interface AxisLabels {
  chart: string;
  labels: Array<{ text: string; x: number; width: number }>;
}

/** Every chart's x labels with their drawn widths (measured in the page with the axis font). */
async function xAxisLabels(page: Page): Promise<AxisLabels[]> {
  return page.$$eval('.chart[data-x-labels]', (charts) => {
    const context = document.createElement('canvas').getContext('2d')!;
    return charts.map((chart) => {
      const element = chart as HTMLElement;
      context.font = element.dataset.xFont!;
      const labels = JSON.parse(element.dataset.xLabels!) as Array<{ text: string; x: number }>;
      return {
        chart: element.dataset.chart ?? element.id,
        labels: labels.filter((l) => l.text !== '').map((l) => ({ ...l, width: Math.max(...l.text.split('\n').map((line) => context.measureText(line).width)) })),
      };
    });
  });
}

describe('the dashboard layout in headless Chromium', () => {
  let isolated: IsolatedDatabase;
  let db: Database;
  let log: MemoryLog;
  let app: FastifyInstance;
  let url = '';
  let browser: Browser | undefined;
  let writing: NodeJS.Timeout | undefined;

  before(async () => {
    isolated = await isolatedDatabase('dashboard_layout');
    db = await isolated.open();
    await insertStockWindows(db, WINDOWS);
    await saveUserMinutes(db, userMinutes());
    for (const [i, [symbol, mean]] of ([['AAPL', 215], ['AMZN', 1902], ['MSFT', 107]] as const).entries()) {
      const { state } = indicatorState(pricesAround(mean, 300, 7 + i));
      await insertIndicatorState(db, { consumer: 'tickflow-indicators', topic: 'prices', partition: i, symbol, state, updatedAt: new Date(NOW - i * 900) });
    }
    log = new MemoryLog();
    await log.createTopics([{ name: 'prices', partitions: 3 }, { name: 'unique-users', partitions: 1 }]);
    const producer = log.producer();
    await producer.send('unique-users', MINUTES.map((m) => ({ value: JSON.stringify(m) })));
    await db.transaction((tx) => saveOffsets(tx, 'tickflow-aggregate-stocks-with-a-long-name', 'prices', new Map([[0, 0n], [1, 0n], [2, 0n]]), 0));
    writing = setInterval(() => void producer.send('prices', Array.from({ length: 30 }, (_, i) => ({ key: `K${i % 3}`, value: '{}' }))), 200);
    app = await buildApp({ db, log, dashboard: { topics: ['prices', 'unique-users'], intervalMs: 300 } });
    url = await app.listen({ host: '127.0.0.1', port: 0 });
    browser = await launchChromium();
  });

  after(async () => {
    clearInterval(writing);
    await browser?.close();
    await app?.close();
    await log?.close();
    await db?.close();
    await isolated?.drop();
  });

  for (const width of WIDTHS) {
    it(`at ${width} px: a one-window chart has a sensible axis, tables fit their cards, time labels do not overlap`, async () => {
      const page = await browser!.newPage({ viewport: { width, height: 1000 }, deviceScaleFactor: 1, timezoneId: zoneAtEleven() });
      const watch = watchPage(page, url);
      try {
        await page.goto(`${url}/dashboard`);
        await page.waitForFunction(() => document.querySelectorAll('#average-charts .chart[data-x-labels]').length === 4
          && document.querySelector('#users-chart[data-x-labels]') !== null
          && document.querySelector('#users-hours-chart[data-x-labels]') !== null && document.querySelector('#users-days-chart[data-x-labels]') !== null
          && Number((document.querySelector('#throughput-chart') as HTMLElement | null)?.dataset.points) >= 3, null, { timeout: 60_000, polling: 200 });
        const path = await screenshot(page, `dashboard-layout-${width}.png`);
        console.log(`screenshot: ${path}`);

        // One window: minutes around it, and "1 window".
        const solo = await page.$eval('figure[data-key="avg:SOLO"]', (figure) => {
          const chart = figure.querySelector('.chart') as HTMLElement;
          return { caption: figure.querySelector('figcaption')!.textContent!, min: Number(chart.dataset.xMin), max: Number(chart.dataset.xMax) };
        });
        assert.match(solo.caption, /· 1 window$/, solo.caption);
        assert.ok(solo.min <= SOLO_START && SOLO_START <= solo.max, `the window (${SOLO_START}) is on the axis [${solo.min}, ${solo.max}]`);
        assert.ok(solo.max - solo.min <= 3600, `the axis spans ${solo.max - solo.min} s for one 30 s window`);
        assert.ok(solo.max - solo.min >= W / 1000, `the axis spans at least a window: ${solo.max - solo.min} s`);
        const many = await page.$eval('figure[data-key="avg:AMZN"] figcaption', (c) => c.textContent!);
        assert.match(many, /· 50 windows$/, many);

        // No table wider than the card it sits in.
        const tables = await page.$$eval('.card > table', (list) => list.filter((t) => !(t as HTMLElement).hidden).map((table) => {
          const card = table.closest('.card') as HTMLElement;
          const box = card.getBoundingClientRect();
          const inner = box.right - parseFloat(getComputedStyle(card).paddingRight);
          const cells = [...table.querySelectorAll('th, td')].map((c) => c.getBoundingClientRect().right);
          return { id: table.id, right: Math.max(table.getBoundingClientRect().right, ...cells), inner, scroll: table.scrollWidth, client: table.clientWidth };
        }));
        assert.deepEqual(tables.map((t) => t.id).sort(), ['indicators-table', 'lag-table', 'stocks-table', 'topics-table']);
        for (const t of tables) {
          assert.ok(t.right <= t.inner + 0.5, `${t.id} ends at ${t.right.toFixed(1)} px, past its card's content edge at ${t.inner.toFixed(1)} px`);
          assert.ok(t.scroll <= t.client, `${t.id} overflows itself: ${t.scroll} > ${t.client}`);
        }

        // No two time labels overlap or touch (8 px apart at least: a legible gap), on every chart.
        const axes = await xAxisLabels(page);
        assert.equal(axes.length, 8, 'four average charts, unique users per minute, per hour and per day, and throughput');
        const points = await page.$$eval('#users-hours-chart, #users-days-chart', (charts) => charts.map((c) => Number((c as HTMLElement).dataset.points)));
        assert.deepEqual(points, [24, 30], 'a bar for every hour of the last 24 and every day of the last 30');
        for (const axis of axes) {
          assert.ok(axis.labels.length >= 1, `${axis.chart} has time labels: ${JSON.stringify(axis.labels)}`);
          for (let i = 1; i < axis.labels.length; i++) {
            const [a, b] = [axis.labels[i - 1], axis.labels[i]];
            const gap = (b.x - b.width / 2) - (a.x + a.width / 2);
            assert.ok(gap >= 8, `${axis.chart}: "${a.text}" and "${b.text}" are ${gap.toFixed(1)} px apart at ${width} px (${JSON.stringify(axis.labels.map((l) => l.text))})`);
          }
        }
        assert.deepEqual(watch.errors, [], 'no error in the console');
        assert.deepEqual(watch.foreign, []);
      } finally {
        await page.close();
      }
    });
  }
});
