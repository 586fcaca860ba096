/**
 * `npm run bench -- api [--database-url URL] [--days 365] [--rate 500] [--seconds 20] [--connections 20] [--reload]`
 *
 * GET /v1/get-prices over a year of 30-second windows for 3 tickers (~3.15 million rows),
 * bulk-loaded with generate_series into a dedicated database (default tickflow_bench;
 * loaded once, reused while its row count matches). The API runs as its own process
 * (`tickflow api`, as deployed).
 *
 * Latency at a rate is measured open-loop: request i is sent at start + i/rate whatever
 * the previous ones are doing, and its latency counts from that scheduled moment (so a
 * stall shows up in every request it delays, no coordinated omission). autocannon's own
 * `overallRate` is not used for this: it sends each second's quota back to back at the
 * start of the second (bursts of `rate` requests), which measures a burst, not a rate.
 * autocannon measures the ceiling (unthrottled, `connections` in flight) and, for
 * comparison, its burst mode. Prints a markdown table and the query plans.
 */
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { createRequire } from 'node:module';
import os from 'node:os';
import { createDatabaseIfMissing, openDatabase } from '../src/db/open.ts';
import { LATEST_SQL, RANGE_SQL, rangeParameters } from '../src/db/stock-prices.ts';
import type { Database } from '../src/db/types.ts';
import { ROOT, flag, line, paced } from './_lib.ts';
import type { Outcome } from './_lib.ts';

interface AutocannonResult {
  requests: { average: number; total: number };
  latency: { p50: number; p90: number; p99: number; max: number; average: number };
  non2xx: number;
  errors: number;
  timeouts: number;
  duration: number;
}
interface AutocannonRequest {
  method?: string;
  path?: string;
}
type Autocannon = (options: {
  url: string;
  connections: number;
  duration: number;
  overallRate?: number;
  requests?: Array<{ setupRequest: (request: AutocannonRequest) => AutocannonRequest }>;
}) => Promise<AutocannonResult>;

const autocannon = createRequire(import.meta.url)('autocannon') as Autocannon;

const TICKERS = [['AMZN', 1902], ['MSFT', 107], ['AAPL', 215]] as const;
const START = Date.parse('2024-01-01T00:00:00Z');
const WINDOW = 30_000;

export default async function bench(args: string[]): Promise<void> {
  const url = flag(args, 'database-url', process.env.BENCH_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/tickflow_bench');
  const days = Number(flag(args, 'days', '365'));
  const rate = Number(flag(args, 'rate', '500'));
  const seconds = Number(flag(args, 'seconds', '20'));
  const connections = Number(flag(args, 'connections', '20'));
  const windows = days * 86_400_000 / WINDOW;

  await createDatabaseIfMissing(url);
  const db = await openDatabase({ url });
  try {
    await load(db, windows, args.includes('--reload'));
    await explain(db, windows);
  } finally {
    await db.close();
  }

  const api = spawn(process.execPath, ['bin/tickflow.js', 'api', '--port', '0', '--json', '--database-url', url], {
    cwd: ROOT,
    env: { ...process.env, LOG_LEVEL: 'warn' },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  try {
    const [first] = (await once(api.stdout!, 'data')) as [Buffer];
    const base = (JSON.parse(first.toString().split('\n')[0]) as { url: string }).url;
    const random = (n: number) => Math.floor(Math.random() * n);
    const instant = () => new Date(START + random(windows - 240) * WINDOW).toISOString();
    const shapes: Record<string, () => string> = {
      'latest (no parameters)': () => '/v1/get-prices',
      'one ticker, 1 h range (limit 100)': () => {
        const from = START + random(windows - 240) * WINDOW;
        return `/v1/get-prices?ticker=${TICKERS[random(3)][0]}&startTime=${new Date(from).toISOString()}&endTime=${new Date(from + 3_600_000).toISOString()}`;
      },
      'three tickers, 10 min range': () => {
        const from = START + random(windows - 240) * WINDOW;
        return `/v1/get-prices?ticker=AMZN,MSFT,AAPL&startTime=${from}&endTime=${from + 600_000}`;
      },
      'one ticker, open range, page via cursor': () => {
        const cursor = Buffer.from(JSON.stringify({ r: [Date.parse(instant()), 'MSFT'] })).toString('base64url');
        return `/v1/get-prices?ticker=MSFT&startTime=${START}&cursor=${cursor}`;
      },
    };
    const mixed = Object.values(shapes);
    shapes['mixed (all of the above)'] = () => mixed[random(mixed.length)]();

    const run = (path: () => string, options: { overallRate?: number; duration: number }) =>
      autocannon({ url: base, connections, ...options, requests: [{ setupRequest: (request) => ({ ...request, method: 'GET', path: path() }) }] });

    const mixedPath = shapes['mixed (all of the above)'];
    const loadAtStart = os.loadavg().map((v) => v.toFixed(1)).join(' ');
    await run(mixedPath, { duration: 3 }); // warm-up: JIT, connection pool, caches
    const rows: string[] = [];
    for (const [name, path] of Object.entries(shapes)) rows.push(line(name, `${rate}/s, paced`, await paced(base, path, rate, seconds)));
    rows.push(line('mixed, autocannon -R (per-second bursts)', `${rate}/s, bursts`, summarise(await run(mixedPath, { overallRate: rate, duration: seconds }))));
    rows.push(line('mixed, autocannon unthrottled (ceiling)', `max, ${connections} conns`, summarise(await run(mixedPath, { duration: seconds }))));
    const load = os.loadavg().map((v) => v.toFixed(1)).join(' ');
    console.log([
      `# ${os.cpus().length} CPUs (${os.cpus()[0]?.model.trim()}), load average ${loadAtStart} at start, ${load} at end`,
      `### GET /v1/get-prices over ${(windows * TICKERS.length).toLocaleString('en-US')} rows (${days} days × 3 tickers of 30 s windows), ${seconds} s per row`,
      '',
      '| query | load | req/s | p50 ms | p90 ms | p99 ms | max ms | non-2xx + errors |',
      '| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |',
      ...rows,
      '',
    ].join('\n'));
  } finally {
    api.kill('SIGTERM');
    await once(api, 'exit');
  }
}

function summarise(r: AutocannonResult): Outcome {
  return { rate: r.requests.average, p50: r.latency.p50, p90: r.latency.p90, p99: r.latency.p99, max: r.latency.max, failed: r.non2xx + r.errors + r.timeouts };
}

/** One row per ticker and window; sample counts and prices vary like the generator's. Skipped when already there. */
async function load(db: Database, windows: number, reload: boolean): Promise<void> {
  const expected = windows * TICKERS.length;
  const { rows } = await db.query<{ n: string }>('SELECT count(*) AS n FROM stock_windows');
  if (Number(rows[0].n) === expected && !reload) {
    console.log(`# stock_windows already holds ${expected.toLocaleString('en-US')} rows; reusing them`);
    return;
  }
  const started = performance.now();
  await db.query('TRUNCATE stock_windows');
  for (const [ticker, mean] of TICKERS) {
    await db.query(
      `INSERT INTO stock_windows (ticker, window_start, window_end, sample_count, price_sum, price_min, price_max)
       SELECT $1, s, s + interval '30 seconds', c, c * ($2 + (random() * 0.2 - 0.1) * $2 / 3)::bigint, ceil($2 * 0.9), floor($2 * 1.1)
       FROM generate_series($3::timestamptz, $3::timestamptz + ($4 - 1) * interval '30 seconds', interval '30 seconds') AS s,
            LATERAL (SELECT 150 + floor(random() * 100)::int + (s IS NULL)::int AS c) AS sample`,
      [ticker, mean, new Date(START).toISOString(), windows],
    );
  }
  await db.query('VACUUM ANALYZE stock_windows');
  console.log(`# loaded ${expected.toLocaleString('en-US')} rows in ${((performance.now() - started) / 1000).toFixed(1)} s`);
}

async function explain(db: Database, windows: number): Promise<void> {
  const from = START + Math.floor(windows / 2) * WINDOW;
  // The API's own SQL and parameters (src/db/stock-prices.ts), as a request would run them.
  const shown = async (title: string, sql: string, params: unknown[]) => {
    const { rows } = await db.query<{ 'QUERY PLAN': string }>(`EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) ${sql}`, params);
    console.log(`# EXPLAIN: ${title}\n${rows.map((r) => r['QUERY PLAN']).join('\n')}\n`);
  };
  await shown('two tickers, one hour, limit 100 (+1 to know whether there is a next page)', RANGE_SQL,
    rangeParameters({ tickers: ['AMZN', 'MSFT'], from, to: from + 3_600_000, after: null, limit: 101 }));
  await shown('latest window per ticker (no parameters)', LATEST_SQL, [null, 101]);
}
