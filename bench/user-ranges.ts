/**
 * `npm run bench -- user-ranges [--database-url URL] [--days 365] [--users-per-minute 1000]
 *   [--precision 12] [--rate 50] [--seconds 15] [--reload]`
 *
 * GET /v1/unique-users over a year of per-minute sketches (525,600 minutes) and the hour
 * and day rollups the store keeps beside them, loaded once into a dedicated database
 * (default tickflow_bench_users; reused while it holds the same minutes) through the
 * store's own write path, a day per transaction, as `unique-users` would write them.
 *
 * Minutes: each draws its users from the day's active users (200,000 of a population of
 * 3,000,000, the window sliding by 10% a day, so days overlap), `--users-per-minute` on
 * average with a daily cycle (0.3x at night to 1.7x in the afternoon). Users are 64-bit
 * hashes drawn once per population member (what the sketch keeps of a uid). Each minute
 * is stored exact (its exact count kept), as by default.
 *
 * Prints the load time, the storage per table (and per year), then, per query shape,
 * in-process timings (SQL and merge) and, through `tickflow api` as its own process, the
 * ceiling (requests per second with two in flight, closed loop) and the latency at an
 * evenly paced rate of half that ceiling, at most `--rate`, open loop (see bench/api.ts
 * for why not autocannon's rate).
 */
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import http from 'node:http';
import os from 'node:os';
import { HyperLogLog } from '../src/core/hyperloglog.ts';
import { seededRandom } from '../src/core/random.ts';
import { encodeSketch } from '../src/core/sketch-bytes.ts';
import { SKETCH_SPANS, countUserRange, planUserRange } from '../src/core/user-ranges.ts';
import type { MinuteSketchRow } from '../src/core/user-sketches.ts';
import { createDatabaseIfMissing, openDatabase } from '../src/db/open.ts';
import type { Database } from '../src/db/types.ts';
import { USER_SKETCHES_SQL, readUserSketches, userSketchParameters, writeUserMinutes } from '../src/db/user-sketch-store.ts';
import { ROOT, flag, line, paced } from './_lib.ts';
import type { Outcome } from './_lib.ts';

const START = Date.parse('2024-01-01T00:00:00Z') / 1000;
const POPULATION = 3_000_000;
const DAILY = 200_000;

interface Shape {
  name: string;
  /** The query string for a random position in the loaded data. */
  query: () => string;
}

export default async function bench(args: string[]): Promise<void> {
  const url = flag(args, 'database-url', process.env.BENCH_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/tickflow_bench_users');
  const days = Number(flag(args, 'days', '365'));
  const perMinute = Number(flag(args, 'users-per-minute', '1000'));
  const precision = Number(flag(args, 'precision', '12'));
  const rate = Number(flag(args, 'rate', '50'));
  const seconds = Number(flag(args, 'seconds', '15'));
  const end = START + days * 86400;
  const random = seededRandom('user-ranges-bench');
  /** A random minute start with room for `span` seconds after it, plus `offset` seconds. */
  const at = (span: number, offset = 0) => START + Math.floor(random.next() * Math.max(1, (end - START - span) / 60)) * 60 + offset;
  const ms = (unix: number) => unix * 1000;
  const query = (from: number, to: number, granularity: string, timeZone?: string) =>
    `from=${ms(from)}&to=${ms(to)}&granularity=${granularity}${timeZone ? `&timeZone=${encodeURIComponent(timeZone)}` : ''}`;
  const shapes: Shape[] = [
    { name: 'last 24 hours by hour (dashboard)', query: () => { const t = Math.floor(at(86400) / 3600) * 3600; return query(t, t + 86400, 'hour'); } },
    { name: 'last 30 days by day (dashboard)', query: () => { const t = Math.floor(at(30 * 86400) / 86400) * 86400; return query(t, t + 30 * 86400, 'day'); } },
    { name: 'a day by minute (1,440 minute rows)', query: () => { const t = at(86400); return query(t, t + 86400, 'minute'); } },
    { name: 'a week by hour, unaligned', query: () => { const t = at(7 * 86400, 17); return query(t, t + 7 * 86400 - 600, 'hour'); } },
    { name: '30 days by day in Europe/Zurich', query: () => { const t = at(31 * 86400); return query(t, t + 30 * 86400, 'day', 'Europe/Zurich'); } },
    { name: 'the year by month', query: () => query(START, end, 'month') },
    { name: 'the year by week in Asia/Kolkata', query: () => query(START, end, 'week', 'Asia/Kolkata') },
  ];

  await createDatabaseIfMissing(url);
  const db = await openDatabase({ url });
  try {
    await load(db, { days, perMinute, precision, reload: args.includes('--reload') });
    await storage(db, days);
    await inProcess(db, shapes);
    await explain(db, shapes.filter((s) => /Kolkata|by minute/.test(s.name)));
  } finally {
    await db.close();
  }

  const api = spawn(process.execPath, ['bin/tickflow.js', 'api', '--port', '0', '--json', '--database-url', url], { cwd: ROOT, env: { ...process.env, LOG_LEVEL: 'warn' }, stdio: ['ignore', 'pipe', 'inherit'] });
  try {
    const [first] = (await once(api.stdout!, 'data')) as [Buffer];
    const base = (JSON.parse(first.toString().split('\n')[0]) as { url: string }).url;
    const path = (shape: Shape) => () => `/v1/unique-users?${shape.query()}`;
    await paced(base, path(shapes[0]), 20, 2); // warm-up: JIT, pool
    const loadAtStart = os.loadavg().map((v) => v.toFixed(1)).join(' ');
    const rows: string[] = [];
    const all: Shape = { name: 'mixed (all of the above)', query: () => shapes[Math.floor(Math.random() * shapes.length)].query() };
    for (const shape of [...shapes, all]) {
      // The ceiling first (two requests in flight, one per core), then an even pace at half of it (at most --rate).
      const ceiling = await closedLoop(base, path(shape), 2, seconds / 3);
      rows.push(line(shape.name, 'ceiling, 2 in flight', ceiling));
      const at = Math.max(1, Math.min(rate, Math.floor(ceiling.rate / 2)));
      rows.push(line(shape.name, `${at}/s, paced`, await paced(base, path(shape), at, seconds)));
    }
    console.log([
      `# ${os.cpus().length} CPUs (${os.cpus()[0]?.model.trim()}), load average ${loadAtStart} at start, ${os.loadavg().map((v) => v.toFixed(1)).join(' ')} at end`,
      `### GET /v1/unique-users over ${days} days of minute sketches (precision ${precision}): the ceiling (${(seconds / 3).toFixed(0)} s), then ${seconds} s paced at half of it (at most ${rate}/s)`,
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

/** A day of minutes per transaction through the store; skipped when the database holds these minutes already. */
async function load(db: Database, options: { days: number; perMinute: number; precision: number; reload: boolean }): Promise<void> {
  const { days, perMinute, precision } = options;
  const marker = `${days} days, ${perMinute} users a minute, precision ${precision}, spans ${SKETCH_SPANS.join(' ')}`;
  await db.query('CREATE TABLE IF NOT EXISTS bench_user_ranges (loaded text NOT NULL)');
  const { rows } = await db.query<{ loaded: string }>('SELECT loaded FROM bench_user_ranges');
  if (rows[0]?.loaded === marker && !options.reload) {
    console.log(`# the minutes are loaded already (${marker}); reusing them`);
    return;
  }
  await db.query('TRUNCATE user_minute_sketches, user_sketch_rollups, bench_user_ranges');
  const random = seededRandom('user-ranges-population');
  const high = new Uint32Array(POPULATION);
  const low = new Uint32Array(POPULATION);
  for (let i = 0; i < POPULATION; i++) {
    high[i] = Math.floor(random.next() * 2 ** 32);
    low[i] = Math.floor(random.next() * 2 ** 32);
  }
  const seen = new Uint32Array(POPULATION);
  let stamp = 0;
  const started = performance.now();
  let generating = 0;
  for (let day = 0; day < days; day++) {
    const t0 = performance.now();
    const pool = (day * (DAILY / 10)) % POPULATION;
    const minutes: MinuteSketchRow[] = [];
    for (let m = 0; m < 1440; m++) {
      const cycle = 1 - 0.7 * Math.cos((2 * Math.PI * (m - 240)) / 1440); // lowest at 04:00 UTC, highest at 16:00
      const draws = Math.max(1, Math.round(perMinute * cycle * (0.9 + 0.2 * random.next())));
      const sketch = new HyperLogLog(precision);
      stamp++;
      let distinct = 0;
      for (let k = 0; k < draws; k++) {
        const user = (pool + Math.floor(random.next() * DAILY)) % POPULATION;
        sketch.addHash(high[user], low[user]);
        if (seen[user] !== stamp) {
          seen[user] = stamp;
          distinct++;
        }
      }
      minutes.push({ start: START + day * 86400 + m * 60, frames: draws * 3, late: 0, exactUsers: distinct, sketch: encodeSketch(sketch) });
    }
    generating += performance.now() - t0;
    await db.transaction((tx) => writeUserMinutes(tx, minutes));
    if ((day + 1) % 30 === 0) console.log(`# loaded ${day + 1} of ${days} days (${((performance.now() - started) / 1000).toFixed(0)} s)`);
  }
  await db.query('INSERT INTO bench_user_ranges (loaded) VALUES ($1)', [marker]);
  await db.query('VACUUM ANALYZE user_minute_sketches');
  await db.query('VACUUM ANALYZE user_sketch_rollups');
  const total = (performance.now() - started) / 1000;
  console.log(`# loaded ${(days * 1440).toLocaleString('en-US')} minutes in ${total.toFixed(1)} s (${(generating / 1000).toFixed(1)} s of it generating the sketches; the rest is the store: ${Math.round((days * 1440) / (total - generating / 1000)).toLocaleString('en-US')} minutes/s with rollups)`);
}

async function storage(db: Database, days: number): Promise<void> {
  const { rows } = await db.query<{ kind: string; rows: string; sketch_bytes: string; sparse: string; total: string }>(
    `SELECT 'minutes' AS kind, count(*) AS rows, sum(length(sketch)) AS sketch_bytes, count(*) FILTER (WHERE get_byte(sketch, 2) = 1) AS sparse,
            pg_total_relation_size('user_minute_sketches') AS total FROM user_minute_sketches
     UNION ALL
     (SELECT 'rollups of ' || seconds || ' s', count(*), sum(length(sketch)), count(*) FILTER (WHERE get_byte(sketch, 2) = 1),
            NULL FROM user_sketch_rollups GROUP BY seconds ORDER BY seconds)
     UNION ALL
     SELECT 'rollups table', NULL, NULL, NULL, pg_total_relation_size('user_sketch_rollups')`,
  );
  const mib = (v: string | null) => (v === null ? '' : (Number(v) / 2 ** 20).toFixed(1));
  console.log([
    `### Storage for ${days} days (per year: × ${(365 / days).toFixed(2)})`,
    '',
    '| what | rows | sparse | sketch bytes per row | sketches MiB | table + indexes + TOAST MiB |',
    '| --- | ---: | ---: | ---: | ---: | ---: |',
    ...rows.map((r) => `| ${r.kind} | ${r.rows === null ? '' : Number(r.rows).toLocaleString('en-US')} | ${r.sparse ?? ''} | ${r.rows === null ? '' : Math.round(Number(r.sketch_bytes) / Number(r.rows)).toLocaleString('en-US')} | ${mib(r.sketch_bytes)} | ${mib(r.total)} |`),
    '',
  ].join('\n'));
}

/** Per shape, 30 queries in this process: rows and bytes read, the SQL and the merge, medians and worst. */
async function inProcess(db: Database, shapes: readonly Shape[]): Promise<void> {
  const lines: string[] = [];
  for (const shape of shapes) {
    const sql: number[] = [];
    const merge: number[] = [];
    let rows = 0;
    let bytes = 0;
    const runs = 30;
    for (let i = 0; i < runs; i++) {
      const params = new URLSearchParams(shape.query());
      const plan = planUserRange({ fromMs: Number(params.get('from')), toMs: Number(params.get('to')), granularity: params.get('granularity') as 'hour', timeZone: params.get('timeZone'), maxBuckets: 1440 })!;
      const t0 = performance.now();
      const stored = await readUserSketches(db, plan.ranges);
      const t1 = performance.now();
      countUserRange(plan, stored);
      merge.push(performance.now() - t1);
      sql.push(t1 - t0);
      rows += stored.length;
      bytes += stored.reduce((n, r) => n + r.sketch.length, 0);
    }
    const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)].toFixed(2);
    const worst = (xs: number[]) => Math.max(...xs).toFixed(2);
    lines.push(`| ${shape.name} | ${Math.round(rows / runs).toLocaleString('en-US')} | ${(bytes / runs / 1024).toFixed(0)} | ${median(sql)} | ${worst(sql)} | ${median(merge)} | ${worst(merge)} |`);
  }
  console.log([
    '### In process: what each query reads and where its time goes (30 queries per shape)',
    '',
    '| query | rows read | KiB read | SQL median ms | SQL max ms | merge + count median ms | max ms |',
    '| --- | ---: | ---: | ---: | ---: | ---: | ---: |',
    ...lines,
    '',
  ].join('\n'));
}

/** Closed loop: `concurrency` requests in flight, each sent when the one before it answered, for `seconds`. */
async function closedLoop(base: string, path: () => string, concurrency: number, seconds: number): Promise<Outcome> {
  const agent = new http.Agent({ keepAlive: true, maxSockets: concurrency });
  const latencies: number[] = [];
  let failed = 0;
  const t0 = performance.now();
  const deadline = t0 + seconds * 1000;
  const get = (url: string) => new Promise<boolean>((resolve) => {
    http.get(url, { agent }, (response) => {
      response.resume();
      response.on('end', () => resolve(response.statusCode === 200));
    }).on('error', () => resolve(false));
  });
  await Promise.all(Array.from({ length: concurrency }, async () => {
    while (performance.now() < deadline) {
      const sent = performance.now();
      if (!(await get(`${base}${path()}`))) failed++;
      latencies.push(performance.now() - sent);
    }
  }));
  agent.destroy();
  const sorted = latencies.sort((a, b) => a - b);
  const q = (x: number) => sorted[Math.min(sorted.length - 1, Math.floor(x * sorted.length))];
  return { rate: sorted.length / ((performance.now() - t0) / 1000), p50: q(0.5), p90: q(0.9), p99: q(0.99), max: sorted[sorted.length - 1], failed };
}

/** The store's own SQL and parameters for a query of each shape, as a request runs them. */
async function explain(db: Database, shapes: readonly Shape[]): Promise<void> {
  for (const shape of shapes) {
    const params = new URLSearchParams(shape.query());
    const plan = planUserRange({ fromMs: Number(params.get('from')), toMs: Number(params.get('to')), granularity: params.get('granularity') as 'hour', timeZone: params.get('timeZone'), maxBuckets: 1440 })!;
    const { rows } = await db.query<{ 'QUERY PLAN': string }>(`EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) ${USER_SKETCHES_SQL}`, userSketchParameters(plan.ranges));
    console.log(`# EXPLAIN: ${shape.name} (${plan.ranges.length} ranges)\n${rows.map((r) => r['QUERY PLAN']).join('\n')}\n`);
  }
}
