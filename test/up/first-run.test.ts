/**
 * The first run without Kafka, as the README tells it: every command without --brokers
 * works on the same embedded data under --data-dir, `tickflow up` restarts go on exactly
 * where they stopped, and one `up` at a time owns the data dir.
 */
import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import type { ChildProcessWithoutNullStreams } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openPglite } from '../../src/db/pglite.ts';
import { DiskLog } from '../../src/log/disk.ts';
import { BIN, tickflow } from '../helpers/cli.ts';
import { readAll } from '../users/helpers.ts';
import { referenceUniqueUsers } from '../users/reference.ts';

const root = mkdtempSync(join(tmpdir(), 'tickflow-first-run-'));
after(() => rmSync(root, { recursive: true, force: true }));

const env: NodeJS.ProcessEnv = { ...process.env, LOG_LEVEL: 'warn' };
// Empty, not deleted: the helpers spread process.env under these (an empty value is unset).
Object.assign(env, { KAFKA_BROKERS: '', DATABASE_URL: '', TICKFLOW_DATA_DIR: '' });

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('commands without --brokers share the embedded data', () => {
  it('produce prices, then stats, then topics, each its own process on one fresh data dir', async () => {
    const dataDir = join(root, 'sequence');
    const run = (args: string[]) => tickflow([...args, '--data-dir', dataDir], { env });
    const produced = await run(['produce', 'prices', '-n', '10000', '--seed', '11', '--json']);
    assert.equal(produced.code, 0, produced.stderr);
    assert.equal(JSON.parse(produced.stdout).messages, 10000);

    const stats = await run(['stats', '--json']);
    assert.equal(stats.code, 0, stats.stderr);
    const report = JSON.parse(stats.stdout) as { count: number; invalid: number; symbols: Array<{ count: number }> };
    assert.equal(report.count, 10000);
    assert.equal(report.symbols.reduce((n, s) => n + s.count, 0) + report.invalid, 10000);

    const topics = await run(['topics']);
    assert.equal(topics.code, 0, topics.stderr);
    assert.match(topics.stdout, /^prices +3 +10000$/m);

    const created = await run(['topics', '--create', 'extra', '--partitions', '2']);
    assert.equal(created.code, 0, created.stderr);
    const listed = await run(['topics', '--json']);
    assert.deepEqual(
      (JSON.parse(listed.stdout).topics as Array<{ name: string; partitions: number; messages: number }>).map((t) => [t.name, t.partitions, t.messages]),
      [['extra', 2, 0], ['prices', 3, 10000]],
    );
    const again = await run(['stats', '--json']);
    assert.equal(JSON.parse(again.stdout).count, 10000, 'a second read finds the same messages, no more, no fewer');
  });
});

describe('a command killed in the middle of writing the embedded log', () => {
  it('leaves a log the next command opens (its stale lock taken over, any torn tail cut) with every acknowledged batch readable', async () => {
    const dataDir = join(root, 'killed');
    const child = spawn(process.execPath, [BIN, 'produce', 'prices', '-n', '5000000', '--batch-size', '5000', '--data-dir', dataDir], { env, stdio: ['ignore', 'pipe', 'pipe'] });
    const exited = new Promise((resolve) => child.on('close', resolve));
    const lock = `${join(dataDir, 'log')}.lock`;
    let stderr = '';
    child.stderr.on('data', (d) => (stderr += d));
    while (!existsSync(join(dataDir, 'log', 'topics', 'prices', 'topic.json'))) {
      if (child.exitCode !== null) assert.fail(`produce ended before it began: ${stderr}`);
      await sleep(20);
    }
    await sleep(1000);
    child.kill('SIGKILL');
    await exited;
    assert.ok(existsSync(lock), 'the killed process left its lock behind');

    const listed = await tickflow(['topics', '--json', '--data-dir', dataDir], { env });
    assert.equal(listed.code, 0, listed.stderr);
    const [prices] = JSON.parse(listed.stdout).topics as Array<{ name: string; messages: number }>;
    assert.equal(prices.name, 'prices');
    assert.ok(prices.messages > 0 && prices.messages < 5_000_000, `${prices.messages} messages kept`);
    const stats = await tickflow(['stats', '--json', '--data-dir', dataDir], { env });
    assert.equal(stats.code, 0, stats.stderr);
    const report = JSON.parse(stats.stdout) as { count: number; invalid: number };
    assert.deepEqual([report.count, report.invalid], [prices.messages, 0], 'every kept message is whole');
  });
});

interface Up {
  child: ChildProcessWithoutNullStreams;
  stdout: () => string;
  stderr: () => string;
  exited: Promise<number | null>;
}

function startUp(dataDir: string, args: string[] = []): Up {
  // The node process itself (no npx wrapper), so SIGINT reaches tickflow.
  const child = spawn(process.execPath, [BIN, 'up', '--port', '0', '--data-dir', dataDir, ...args], { env, stdio: ['pipe', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d) => (stdout += d));
  child.stderr.on('data', (d) => (stderr += d));
  const exited = new Promise<number | null>((resolve) => child.on('close', (code) => resolve(code)));
  return { child, stdout: () => stdout, stderr: () => stderr, exited };
}

async function dashboardUrl(up: Up): Promise<string> {
  const deadline = Date.now() + 90_000;
  for (;;) {
    const match = /dashboard: (http:\/\/\S+)\/dashboard/.exec(up.stdout());
    if (match) return match[1];
    if (Date.now() > deadline || up.child.exitCode !== null) assert.fail(`no dashboard URL:\n${up.stdout()}\n${up.stderr()}`);
    await sleep(200);
  }
}

async function stop(up: Up): Promise<void> {
  up.child.kill('SIGINT');
  const code = await up.exited;
  assert.equal(code, 0, up.stderr());
}

interface Lag {
  consumers: Array<{ name: string }>;
  problems: unknown[];
}

interface MinuteBucket {
  start: number;
  uniqueUsers: number;
  frames: number;
  late: number;
  minutes: number;
  approximate: boolean;
}

interface WindowRow {
  ticker: string;
  windowStart: number;
  windowEnd: number;
  sampleCount: number;
}

describe('tickflow up restarted on its data dir', () => {
  it('goes on where it stopped: no gap in the stocks windows across the restart, unique users per minute equal to a recount of the frames, no problem on the dashboard; a second up is refused naming the owner', async (t) => {
    const dataDir = join(root, 'restart');
    const first = startUp(dataDir);
    let stoppedAt = 0;
    try {
      await dashboardUrl(first);
      await sleep(40_000);
      // Stop 8–12 s into a 30 s window, so the window across the restart holds records of both runs.
      while (Math.abs((Date.now() % 30_000) - 10_000) > 2_000) await sleep(100);

      const refusing = Date.now();
      const second = startUp(dataDir);
      const refused = await second.exited;
      t.diagnostic(`second up refused after ${Date.now() - refusing} ms`);
      assert.notEqual(refused, 0);
      const lines = second.stderr().trim().split('\n');
      assert.deepEqual(lines, [`tickflow up: embedded log ${join(dataDir, 'log')} is in use by process ${first.child.pid} (tickflow up): stop it, or give this command another --data-dir, or --brokers`]);
      stoppedAt = Date.now();
    } finally {
      await stop(first);
    }

    const restarted = startUp(dataDir);
    let restartWindow = 0;
    let stopMinute = 0;
    let buckets: MinuteBucket[] = [];
    t.diagnostic(`stopped ${new Date(stoppedAt).toISOString()}, restarted ${new Date().toISOString()}`);
    try {
      const base = await dashboardUrl(restarted);
      assert.match(restarted.stdout(), /produced 5000 messages/);
      assert.match(restarted.stdout(), /messages: 10000 {3}valid: 10000/, 'stats covers both runs\' batches');
      await sleep(40_000);
      // Run on until the window after the restart's has closed too, so the restart's lies between the first and the last.
      restartWindow = Math.floor(stoppedAt / 30_000) * 30_000;
      const deadline = Date.now() + 90_000;
      for (;;) {
        const body = (await (await fetch(`${base}/v1/get-prices?ticker=AAPL&startTime=${new Date(restartWindow + 30_000).toISOString()}`)).json()) as { data: unknown[] };
        if (body.data.length > 0) break;
        if (Date.now() > deadline) assert.fail(`the window after the restart never closed:\n${restarted.stderr()}`);
        await sleep(1000);
      }
      // unique-users counts the frames `up` generates, across the restart: wait for the
      // minute of the stop (frames of both runs) and the next one (of the restarted run).
      stopMinute = Math.floor((stoppedAt - 1000) / 60_000) * 60;
      const range = `from=${(stopMinute - 3600) * 1000}&to=${(stopMinute + 3600) * 1000}&granularity=minute`;
      const usersDeadline = Date.now() + 150_000;
      for (;;) {
        const body = (await (await fetch(`${base}/v1/unique-users?${range}`)).json()) as { buckets: MinuteBucket[] };
        buckets = body.buckets.filter((b) => b.minutes > 0);
        if (buckets.some((b) => b.start === stopMinute + 60)) break;
        if (Date.now() > usersDeadline) assert.fail(`minute ${new Date((stopMinute + 60) * 1000).toISOString()} never reached GET /v1/unique-users: ${JSON.stringify(buckets)}\n${restarted.stderr()}`);
        await sleep(1000);
      }
      // Lag and its problems are refreshed in the background: null until the first refresh; the
      // per-minute panel reads the unique-users topic, whose records follow the sketches.
      const dashboard = async () => (await (await fetch(`${base}/v1/dashboard`)).json()) as { lag: Lag | null; uniqueUsers: { minutes: Array<{ start: number; uniqueUsers: number; frames: number }> } };
      const lagDeadline = Date.now() + 60_000;
      let seen = await dashboard();
      while (!['stocks-aggregator', 'unique-users'].every((name) => seen.lag?.consumers.some((c) => c.name === name)) || !buckets.every((b) => seen.uniqueUsers.minutes.some((m) => m.start === b.start))) {
        if (Date.now() > lagDeadline) assert.fail(`no lag or unique users on the dashboard: ${JSON.stringify(seen)}`);
        await sleep(500);
        seen = await dashboard();
      }
      assert.deepEqual(seen.lag!.problems, []);
      // The per-minute panel (records of the unique-users topic) shows what the range API does.
      const panel = new Map(seen.uniqueUsers.minutes.map((m) => [m.start, [m.uniqueUsers, m.frames]]));
      for (const b of buckets) assert.deepEqual(panel.get(b.start), [b.uniqueUsers, b.frames], `the panel's minute ${new Date(b.start * 1000).toISOString()}`);
    } finally {
      await stop(restarted);
    }

    // Every frame `up` generated, read back from the topic and counted again independently.
    const log = new DiskLog(join(dataDir, 'log'));
    let frames: Awaited<ReturnType<typeof readAll>>;
    try {
      frames = await readAll(log, 'user-tracker');
    } finally {
      await log.close();
    }
    const recount = referenceUniqueUsers(frames.map((f) => ({ partition: f.partition, text: f.value })));
    const newest = buckets[buckets.length - 1].start;
    const recounted = recount.minutes.filter((m) => m.start <= newest).map((m) => ({ start: m.start, uniqueUsers: m.uniqueUsers, frames: m.frames, late: m.late, minutes: 1, approximate: false }));
    t.diagnostic(`${frames.length} frames; minutes ${recounted.map((m) => `${new Date(m.start * 1000).toISOString().slice(11, 16)} ${m.uniqueUsers}/${m.frames}`).join(', ')}; stopped in ${new Date(stopMinute * 1000).toISOString().slice(11, 16)}`);
    assert.ok(recounted.some((m) => m.start === stopMinute) && recounted.some((m) => m.start === stopMinute + 60));
    assert.deepEqual(buckets.map((b) => ({ start: b.start, uniqueUsers: b.uniqueUsers, frames: b.frames, late: b.late, minutes: b.minutes, approximate: b.approximate })), recounted,
      'every minute up to the newest served equals the recount: the same distinct users and frames, none late, none missing');

    const db = await openPglite({ dataDir: join(dataDir, 'pglite') });
    let rows: WindowRow[];
    try {
      rows = (await db.query<{ ticker: string; window_start: Date; window_end: Date; sample_count: string }>(
        'SELECT ticker, window_start, window_end, sample_count FROM stock_windows ORDER BY ticker, window_start',
      )).rows.map((r) => ({ ticker: r.ticker, windowStart: r.window_start.getTime(), windowEnd: r.window_end.getTime(), sampleCount: Number(r.sample_count) }));
    } finally {
      await db.close();
    }
    t.diagnostic(rows.map((r) => `${r.ticker} ${new Date(r.windowStart).toISOString().slice(11, 19)} ${r.sampleCount}`).join(', '));
    const tickers = [...new Set(rows.map((r) => r.ticker))].sort();
    assert.deepEqual(tickers, ['AAPL', 'AMZN', 'MSFT']);
    for (const ticker of tickers) {
      const mine = rows.filter((r) => r.ticker === ticker);
      const first = mine[0].windowStart;
      const last = mine[mine.length - 1].windowStart;
      assert.ok(first < restartWindow && restartWindow < last, `${ticker}: the restart's window lies between the first and the last`);
      const expected = Array.from({ length: (last - first) / 30_000 + 1 }, (_, i) => first + i * 30_000);
      assert.deepEqual(mine.map((r) => r.windowStart), expected, `${ticker}: a row for every 30 s window from the first to the last`);
      // 10 messages/s of one to three of three tickers: ~200 samples a full window. The
      // restart's window lacks what the generator did not write while `up` was down and
      // re-ran its batch steps (seconds, more on a loaded machine), but holds both sides.
      for (const row of mine.slice(1, -1)) {
        const least = row.windowStart === restartWindow ? 50 : 150;
        assert.ok(row.sampleCount >= least, `${ticker} ${new Date(row.windowStart).toISOString()}: ${row.sampleCount} samples`);
      }
    }
  });
});

describe('tickflow up that cannot start', () => {
  it('exits non-zero with one line when the API\'s port is in use, having started nothing', async () => {
    const server = createServer();
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const { port } = server.address() as AddressInfo;
    const dataDir = join(root, 'port-in-use');
    try {
      const result = await tickflow(['up', '--port', String(port), '--data-dir', dataDir], { env });
      assert.equal(result.code, 2);
      assert.equal(result.stderr, `tickflow up: port ${port} on 127.0.0.1 is in use: stop what listens there, or give --port another port (0 = any free one)\n`);
      assert.equal(result.stdout, '');
      assert.equal(existsSync(join(dataDir, 'log', 'topics', 'prices')), false, 'no batch was produced');
      assert.equal(existsSync(`${join(dataDir, 'log')}.lock`), false, 'the log was released');
    } finally {
      await new Promise((resolve) => server.close(resolve));
    }
  });

  it('exits non-zero with one line when the database is unreachable, having started nothing', async () => {
    const dataDir = join(root, 'no-database');
    const url = 'postgres://postgres@127.0.0.1:1/tickflow';
    // Past the start-up wait for the database (its retries are warnings: shown at the default level).
    const result = await tickflow(['up', '--port', '0', '--database-url', url, '--data-dir', dataDir], { env: { ...env, LOG_LEVEL: 'error' } });
    assert.equal(result.code, 4);
    assert.equal(result.stderr, `tickflow up: database ${url} is unavailable: connect ECONNREFUSED 127.0.0.1:1\n`);
    assert.equal(result.stdout, '');
    assert.equal(existsSync(join(dataDir, 'log', 'topics', 'prices')), false, 'no batch was produced');
    assert.equal(existsSync(`${join(dataDir, 'log')}.lock`), false, 'the log was released');
  });
});
