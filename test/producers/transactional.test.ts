/**
 * `--transactional` of the producer commands on the real broker: what read_committed readers
 * see (kcat, an independent client) after a whole run, after a run killed -9 midway (nothing
 * of its transaction; only whole batches with --transaction-size), and after the rerun with
 * the same transactional id (the old transaction aborted, everything of the rerun committed
 * once). read_uncommitted readers show that the killed run's records are in the log. `stats`
 * on a topic with an open transaction stops at the last stable offset.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { KafkaLog } from '../../src/log/kafka.ts';
import { startTickflow, tickflow } from '../helpers/cli.ts';
import type { RunningTickflow } from '../helpers/cli.ts';
import { KAFKA_BROKERS, TEST_DATABASE_URL } from '../helpers/env.ts';
import { kcatRecords, kcatValues } from '../helpers/kcat.ts';
import { transactionsSettled } from '../helpers/transactions.ts';
import { waitFor } from '../stocks/fixtures.ts';
import { unique } from '../users/helpers.ts';

const BROKERS = ['--brokers', KAFKA_BROKERS.join(',')];
const B = KAFKA_BROKERS.join(',');

/** The lines a command writes with --output - (the records a run sends, computed without Kafka). */
async function stdoutLines(args: string[]): Promise<string[]> {
  const r = await tickflow([...args, '--output', '-'], { timeoutMs: 60_000 });
  assert.equal(r.code, 0, r.stderr);
  return r.stdout.split('\n').filter(Boolean);
}

async function ok(args: string[]): Promise<string> {
  const r = await tickflow([...args, ...BROKERS], { timeoutMs: 120_000 });
  assert.equal(r.code, 0, `${args.join(' ')}: ${r.stderr}`);
  return r.stdout;
}

/** Kills the node process of a run with SIGKILL, once it is known to be running; resolves when it is gone. */
async function killNine(run: RunningTickflow): Promise<void> {
  assert.equal(run.child.exitCode, null, `the run ended before it was killed: ${run.stderr()}`);
  run.child.kill('SIGKILL');
  await run.exited;
  assert.equal(run.child.signalCode, 'SIGKILL');
}

describe('producers --transactional on the real broker', { timeout: 300_000 }, () => {
  let committed: KafkaLog;
  let uncommitted: KafkaLog;
  const sum = async (log: KafkaLog, topic: string) => (await log.offsets(topic)).reduce((n, p) => n + Number(p.latest), 0);

  before(() => {
    committed = new KafkaLog({ brokers: KAFKA_BROKERS });
    uncommitted = new KafkaLog({ brokers: KAFKA_BROKERS, isolationLevel: 'read_uncommitted' });
  });
  after(async () => {
    await committed.close();
    await uncommitted.close();
  });

  it('produce prices: a whole-run transaction killed -9 leaves nothing visible, stats stops at the last stable offset, the rerun commits all once', async () => {
    const topic = unique('txn-prices');
    const first = await ok(['produce', 'prices', '-n', '1000', '--seed', '1', '--output', topic, '--transactional', '--json']);
    assert.deepEqual(JSON.parse(first).transactions, { transactionalId: `tickflow-produce-prices-${topic}`, committed: 1000, transactions: 1, aborted: 0 });
    const seed1 = await stdoutLines(['produce', 'prices', '-n', '1000', '--seed', '1']);
    await transactionsSettled(committed, topic);

    // A long timeout keeps the killed run's transaction open until the rerun takes the id over.
    const killed = startTickflow(['produce', 'prices', '-n', '5000000', '--seed', '2', '--output', topic, '--transactional', '--transaction-timeout', '10m', '--batch-size', '1000', ...BROKERS]);
    await waitFor(async () => killed.child.exitCode !== null || (await sum(uncommitted, topic)) > 1000 + 20_000, 'the killed run to write 20 000 records');
    await killNine(killed);

    assert.deepEqual(await kcatValues(B, topic, 'read_committed'), [...seed1].sort(), 'read_committed: only the committed run');
    const written = (await kcatRecords(B, topic, 'read_uncommitted')).length;
    assert.ok(written > 21_000, `read_uncommitted sees the open transaction's records too (${written})`);
    const [stable, high] = await Promise.all([committed.offsets(topic), uncommitted.offsets(topic)]);
    // Prices are keyed by symbol: the partitions that got records hold the open transaction's first record at their last stable offset.
    assert.ok(stable.some((p, i) => p.latest < high[i].latest), `the open transaction holds the last stable offset back: ${stable.map((p) => p.latest)} < ${high.map((p) => p.latest)}`);
    const stats = JSON.parse(await ok(['stats', '--input', topic, '--json'])) as { count: number; symbols: { symbol: string; count: number }[] };
    assert.equal(stats.count, 1000, 'stats reads up to the last stable offset');
    const bySymbol = new Map<string, number>();
    for (const line of seed1) {
      const symbol = (JSON.parse(line) as { symbol: string }).symbol;
      bySymbol.set(symbol, (bySymbol.get(symbol) ?? 0) + 1);
    }
    assert.deepEqual(new Map(stats.symbols.map((s) => [s.symbol, s.count])), bySymbol);

    // The rerun with the same (default) id aborts the killed run's transaction at its start.
    const rerun = JSON.parse(await ok(['produce', 'prices', '-n', '5000', '--seed', '2', '--output', topic, '--transactional', '--json'])) as { transactions: { committed: number } };
    assert.equal(rerun.transactions.committed, 5000);
    const seed2 = await stdoutLines(['produce', 'prices', '-n', '5000', '--seed', '2']);
    assert.ok(await transactionsSettled(committed, topic), 'no transaction left open');
    assert.deepEqual(await kcatValues(B, topic, 'read_committed'), [...seed1, ...seed2].sort(), 'read_committed: both runs, each record once');
    const all = (await kcatRecords(B, topic, 'read_uncommitted')).length;
    assert.ok(all - 6000 >= written - 1000, `the killed run's records stay in the log, aborted (${all - 6000})`);
    assert.equal(JSON.parse(await ok(['stats', '--input', topic, '--json'])).count, 6000);
  });

  it('generate stocks --transaction-size: a run killed -9 leaves only whole batches; the rerun aborts the open one', async () => {
    const topic = unique('txn-stocks');
    const common = ['--seed', '3', '--start', '2024-01-01T00:00:00Z', '--rate', '1000'];
    const killed = startTickflow(['generate', 'stocks', ...common, '--count', '1000000', '--output', topic, '--transactional', '--transaction-size', '100', '--transaction-timeout', '10m', ...BROKERS]);
    // At least four transactions committed (their records and markers below the last stable offset).
    await waitFor(async () => killed.child.exitCode !== null || ((await committed.listTopics()).includes(topic) && (await sum(committed, topic)) >= 404), 'four committed transactions');
    await killNine(killed);

    const visible = await kcatValues(B, topic, 'read_committed');
    assert.ok(visible.length >= 400, `${visible.length} committed`);
    assert.equal(visible.length % 100, 0, `read_committed sees whole batches of 100 only, got ${visible.length}`);
    assert.deepEqual(visible, (await stdoutLines(['generate', 'stocks', ...common, '--count', String(visible.length)])).sort(), 'the first batches of the stream, each message once');
    const written = (await kcatRecords(B, topic, 'read_uncommitted')).length;
    assert.ok(written >= visible.length);

    const rerun = JSON.parse(await ok(['generate', 'stocks', ...common, '--count', '250', '--output', topic, '--transactional', '--transaction-size', '100', '--json'])) as { transactions: { committed: number; transactions: number } };
    assert.deepEqual([rerun.transactions.committed, rerun.transactions.transactions], [250, 3]);
    assert.ok(await transactionsSettled(committed, topic), 'the killed run\'s open transaction is aborted');
    const expected = [...visible, ...(await stdoutLines(['generate', 'stocks', ...common, '--count', '250']))].sort();
    assert.deepEqual(await kcatValues(B, topic, 'read_committed'), expected);
    assert.ok((await kcatRecords(B, topic, 'read_uncommitted')).length >= written + 250);
  });

  it('replay --transaction-size 7: 100 records in 15 transactions, a commit marker after each, in file order', async () => {
    const topic = unique('txn-replay');
    const dir = mkdtempSync(join(tmpdir(), 'tickflow-txn-replay-'));
    try {
      const good = Array.from({ length: 100 }, (_, i) => JSON.stringify({ uid: `u${i}`, n: i }));
      const file = join(dir, 'frames.jsonl');
      writeFileSync(file, [...good.slice(0, 50), '{"broken": ', ...good.slice(50), 'not json', '[1,'].join('\n'));
      const out = await tickflow(['replay', file, '--output', topic, '--partitions', '1', '--transactional', '--transaction-size', '7', '--json', ...BROKERS]);
      const summary = JSON.parse(out.stdout) as { records: number; bad: number; transactions: unknown };
      assert.equal(summary.records, 100, out.stderr);
      assert.equal(summary.bad, 3);
      assert.deepEqual(summary.transactions, { transactionalId: `tickflow-replay-${topic}`, committed: 100, transactions: 15, aborted: 0 });
      assert.ok(await transactionsSettled(committed, topic));
      // One partition: 100 records and one commit marker per transaction.
      assert.deepEqual((await uncommitted.offsets(topic)).map((p) => p.latest), [115n]);
      const records = await kcatRecords(B, topic, 'read_committed');
      assert.deepEqual(records.map((r) => r.value), good);
      // Offsets skip one per marker: a transaction of 7 takes 8 offsets.
      assert.deepEqual(records.slice(0, 9).map((r) => r.offset), [0, 1, 2, 3, 4, 5, 6, 8, 9]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('a transaction open longer than --transaction-timeout: the coordinator aborts it, the run fails saying so, nothing of it is visible', async () => {
    const topic = unique('txn-timeout');
    // 5 messages a second in a transaction of up to 1000 with a 1 s timeout: the coordinator
    // (which looks for expired transactions every 10 s) aborts it long before the 40 s run ends.
    const r = await tickflow(['generate', 'stocks', '--rate', '5', '--count', '200', '--output', topic, '--transactional', '--transaction-size', '1000', '--transaction-timeout', '1s', ...BROKERS], { timeoutMs: 90_000 });
    assert.equal(r.code, 3, r.stderr);
    // The last line (a fresh topic may make the first send wait for its leader: a warning before it).
    assert.match(r.stderr.trimEnd().split('\n').at(-1)!, new RegExp(`^tickflow generate stocks: transaction of tickflow-generate-stocks-${topic} was open for [\\d.]+s, longer than --transaction-timeout 1s: the coordinator aborted it, so none of its \\d+ records is visible to read_committed readers; raise --transaction-timeout \\(at most the broker's transaction.max.timeout.ms, 15m by default\\) or commit every N records with --transaction-size N$`));
    assert.deepEqual(await kcatValues(B, topic, 'read_committed'), []);
    assert.ok((await kcatRecords(B, topic, 'read_uncommitted')).length > 0, 'its records are in the log, aborted');
  });

  it('a sink reading a transactional topic: --until-end ends past the last commit marker, every record once, the markers accounted as skipped', async () => {
    const topic = unique('txn-archive');
    await ok(['produce', 'prices', '-n', '1000', '--seed', '6', '--output', topic, '--transactional', '--transaction-size', '100']);
    assert.ok(await transactionsSettled(committed, topic));
    const archived = await tickflow(['archive', '--input', topic, '--until-end', '--json', '--database-url', TEST_DATABASE_URL, ...BROKERS], { timeoutMs: 120_000 });
    assert.equal(archived.code, 0, archived.stderr);
    assert.deepEqual(JSON.parse(archived.stdout), { read: 1000, inserted: 1000 });
    const db = new pg.Client({ connectionString: TEST_DATABASE_URL });
    await db.connect();
    try {
      const rows = await db.query<{ at: string }>(`SELECT partition || ' ' || "offset" AS at FROM archived_messages WHERE topic = $1 ORDER BY partition, "offset"`, [topic]);
      const visible = await kcatRecords(B, topic, 'read_committed');
      assert.equal(visible.length, 1000);
      assert.deepEqual(rows.rows.map((r) => r.at), visible.map((r) => `${r.partition} ${r.offset}`), 'the rows are exactly the committed records');
    } finally {
      await db.end();
    }
    // Per partition, the offsets that hold no record (one commit marker per transaction), from kcat and the high watermarks.
    const records = await kcatRecords(B, topic, 'read_uncommitted');
    const ends = await uncommitted.offsets(topic);
    const markers = ends.filter((p) => p.latest > 0n).map((p) => [p.partition, Number(p.latest) - records.filter((r) => r.partition === p.partition).length]);
    const monitor = await tickflow(['monitor', '--check', '--json', '--topics', topic, '--database-url', TEST_DATABASE_URL, ...BROKERS]);
    assert.equal(monitor.code, 0, monitor.stdout);
    const snapshot = JSON.parse(monitor.stdout) as { accounting: { partition: number; accepted: number; skipped: number; unaccounted: number }[]; consumers: { lag: number }[] };
    assert.deepEqual(snapshot.accounting.map((a) => [a.partition, a.skipped]), markers);
    assert.ok(snapshot.accounting.every((a) => a.unaccounted === 0));
    assert.equal(snapshot.accounting.reduce((n, a) => n + a.accepted, 0), 1000);
    assert.deepEqual(snapshot.consumers.map((c) => c.lag), [0], 'the stored offsets lie past the last markers');
  });

  it('a custom --transactional-id: a second run fences nothing of another id; the ids are independent', async () => {
    const topic = unique('txn-ids');
    await ok(['produce', 'prices', '-n', '300', '--seed', '4', '--output', topic, '--transactional', '--transactional-id', `${topic}-a`]);
    await ok(['produce', 'prices', '-n', '200', '--seed', '5', '--output', topic, '--transactional', '--transactional-id', `${topic}-b`, '--transaction-size', '50']);
    assert.ok(await transactionsSettled(committed, topic));
    assert.equal((await kcatValues(B, topic, 'read_committed')).length, 500);
  });
});

describe('producers --transactional: bad combinations, one line each', () => {
  const dataDir = mkdtempSync(join(tmpdir(), 'tickflow-txn-flags-'));
  const embedded = { env: { KAFKA_BROKERS: '', DATABASE_URL: '', TICKFLOW_DATA_DIR: dataDir } };
  after(() => rmSync(dataDir, { recursive: true, force: true }));

  const cases: Array<[string[], string]> = [
    [['produce', 'prices', '-n', '10', '--transactional'], 'tickflow produce prices: --transactional needs Kafka transactions, which the embedded log does not have: give --brokers (or KAFKA_BROKERS)\n'],
    [['generate', 'stocks', '-n', '10', '--transactional'], 'tickflow generate stocks: --transactional needs Kafka transactions, which the embedded log does not have: give --brokers (or KAFKA_BROKERS)\n'],
    [['replay', '-', '--transactional'], 'tickflow replay: --transactional needs Kafka transactions, which the embedded log does not have: give --brokers (or KAFKA_BROKERS)\n'],
    [['produce', 'prices', '--transactional', '--output', '-'], 'tickflow produce prices: --transactional: stdout (--output -) has no transactions: write to a topic (see --help)\n'],
    [['replay', '-', '--transaction-size', '10'], 'tickflow replay: --transaction-size: applies to transactions only: add --transactional (see --help)\n'],
    [['produce', 'prices', '--transactional', '--transaction-size', '0'], 'tickflow produce prices: --transaction-size: must be at least 1, got 0 (see --help)\n'],
    [['generate', 'stocks', '--transactional'], 'tickflow generate stocks: --transactional: without --transaction-size the whole run is one transaction, which an endless stream never commits: give --count, --duration or --transaction-size (see --help)\n'],
    [['generate', 'stocks', '--transactional', '--duration', '2m'], 'tickflow generate stocks: --transactional: the whole run (120s at --rate 10) is one transaction, longer than --transaction-timeout 60s: give --transaction-size, or a longer --transaction-timeout (see --help)\n'],
  ];
  for (const [args, stderr] of cases) {
    it(args.join(' '), async () => {
      const r = await tickflow(args, embedded);
      assert.equal(r.stderr, stderr);
      assert.equal(r.code, 2);
    });
  }

  it('the embedded log is left as it was: nothing produced', async () => {
    const r = await tickflow(['topics', '--json'], embedded);
    assert.equal(r.code, 0, r.stderr);
    assert.ok(!r.stdout.includes('"prices"'), r.stdout);
  });
});
