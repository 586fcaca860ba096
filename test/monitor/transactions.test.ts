/**
 * `monitor` and open Kafka transactions, on the real broker: a transactional producer killed
 * -9 in the middle of its run leaves its transaction open; monitor lists it (id, state,
 * partitions, age, timeout), shows the partition's LAST STABLE offset below its END (high
 * watermark) — both checked against kcat's reading — and `--check` fails once it is older
 * than --max-transaction-age, in one line naming the id, its partitions and its age. A rerun
 * of the producer with the same id aborts it, and monitor is clean again.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { KafkaLog } from '../../src/log/kafka.ts';
import { startTickflow, tickflow } from '../helpers/cli.ts';
import { KAFKA_BROKERS, TEST_DATABASE_URL } from '../helpers/env.ts';
import { kcatRecords } from '../helpers/kcat.ts';
import { waitFor } from '../stocks/fixtures.ts';
import { unique } from '../users/helpers.ts';

const BROKERS = ['--brokers', KAFKA_BROKERS.join(',')];

interface MonitorJson {
  topics: { topic: string; partitions: { partition: number; latest: string; lastStable: string; highWatermark: string }[] }[];
  transactions: { transactionalId: string; state: string; ageMs: number; timeoutMs: number; partitions: string[]; hanging: boolean }[];
  problems: { where: string; message: string }[];
}

describe('monitor: open and hanging transactions, last stable offsets', { timeout: 240_000 }, () => {
  const topic = unique('monitor-txn');
  const id = `${topic}-producer`;
  let uncommitted: KafkaLog;
  const monitor = (extra: string[]) => tickflow(['monitor', '--topics', topic, '--database-url', TEST_DATABASE_URL, ...BROKERS, ...extra]);

  before(() => {
    uncommitted = new KafkaLog({ brokers: KAFKA_BROKERS, isolationLevel: 'read_uncommitted' });
  });
  after(async () => {
    await uncommitted.close();
  });

  it('lists a killed producer\'s open transaction, LAST STABLE below END; --check fails on it once it is too old; a rerun clears it', async () => {
    const first = await tickflow(['produce', 'prices', '-n', '100', '--seed', '1', '--output', topic, '--partitions', '1', '--transactional', '--transactional-id', id, ...BROKERS]);
    assert.equal(first.code, 0, first.stderr);
    // A long transaction timeout: the transaction stays open until the rerun takes the id over.
    const killed = startTickflow(['produce', 'prices', '-n', '5000000', '--seed', '2', '--output', topic, '--transactional', '--transactional-id', id, '--transaction-timeout', '10m', '--batch-size', '1000', ...BROKERS]);
    const written = async () => Number((await uncommitted.offsets(topic))[0].latest);
    await waitFor(async () => killed.child.exitCode !== null || (await written()) > 10_000, 'the producer to write 10 000 records');
    assert.equal(killed.child.exitCode, null, `the run ended before it was killed: ${killed.stderr()}`);
    killed.child.kill('SIGKILL');
    await killed.exited;

    // kcat's reading: the committed run (offsets 0..99, its commit marker at 100), then the open transaction's records.
    const visible = await kcatRecords(KAFKA_BROKERS.join(','), topic, 'read_committed');
    assert.deepEqual(visible.map((r) => r.offset), Array.from({ length: 100 }, (_, i) => i));
    const all = await kcatRecords(KAFKA_BROKERS.join(','), topic, 'read_uncommitted');
    const open = all.filter((r) => r.offset > 99);
    const lastStable = Math.min(...open.map((r) => r.offset));
    const highWatermark = Math.max(...open.map((r) => r.offset)) + 1;
    assert.equal(lastStable, 101);
    assert.equal(highWatermark - lastStable, open.length, 'no marker after the open transaction\'s records');

    const listed = await monitor(['--json', '--max-transaction-age', '1h']);
    assert.equal(listed.code, 0, listed.stderr);
    const snapshot = JSON.parse(listed.stdout) as MonitorJson;
    assert.deepEqual(snapshot.topics.map((t) => t.partitions.map((p) => [p.lastStable, p.highWatermark])), [[[String(lastStable), String(highWatermark)]]]);
    const txn = snapshot.transactions.find((t) => t.transactionalId === id);
    assert.ok(txn, JSON.stringify(snapshot.transactions));
    assert.deepEqual([txn.state, txn.partitions, txn.timeoutMs, txn.hanging], ['Ongoing', [`${topic}[0]`], 600_000, false]);
    assert.ok(txn.ageMs >= 0 && txn.ageMs < 3_600_000, String(txn.ageMs));
    assert.deepEqual(snapshot.problems, []);

    const table = await monitor(['--check', '--max-transaction-age', '1h']);
    assert.equal(table.code, 0, table.stdout + table.stderr);
    assert.match(table.stdout, /TOPIC +PARTITIONS +MESSAGES +END OFFSETS +LAST STABLE\n/);
    assert.match(table.stdout, new RegExp(`${topic} +1 +\\d+ +${highWatermark} +${lastStable}\\n`));
    assert.match(table.stdout, new RegExp(`${id} +Ongoing +[\\d.]+s +10m +\\d+/\\d+ +${topic}\\[0\\]\\n`));
    assert.match(table.stdout, new RegExp(`note: ${topic}\\[0\\]: last stable offset ${lastStable} < high watermark ${highWatermark}`));

    // Any age is over 0s: the transaction is hanging.
    const hanging = await monitor(['--check', '--max-transaction-age', '0s']);
    assert.equal(hanging.code, 1, hanging.stdout + hanging.stderr);
    assert.match(hanging.stdout, new RegExp(`${topic}\\[0\\]  HANGING\\n`));
    const problems = hanging.stdout.split('\n').filter((l) => l.startsWith('  ✗ '));
    assert.equal(problems.length, 1, hanging.stdout);
    assert.match(problems[0], new RegExp(`^  ✗ transaction ${id}: open for [\\dmhs. ]+ \\(over --max-transaction-age 0s\\) on ${topic}\\[0\\]: read_committed readers of those partitions are held at their last stable offset; a producer of the same transactional id aborts it, else the coordinator after its timeout of 10m$`));

    // The rerun takes the id over: the killed run's transaction is aborted, then its own commits.
    const rerun = await tickflow(['produce', 'prices', '-n', '10', '--seed', '3', '--output', topic, '--transactional', '--transactional-id', id, ...BROKERS]);
    assert.equal(rerun.code, 0, rerun.stderr);
    let after: MonitorJson | null = null;
    await waitFor(async () => {
      after = JSON.parse((await monitor(['--json', '--max-transaction-age', '0s'])).stdout) as MonitorJson;
      return after.transactions.length === 0;
    }, 'the aborted transaction to end', 60_000);
    const end = after!.topics[0].partitions[0];
    assert.equal(end.lastStable, end.highWatermark);
    assert.equal(Number(end.highWatermark), highWatermark + 1 + 10 + 1, 'the abort marker, the rerun\'s 10 records and its commit marker');
    const clean = await monitor(['--check', '--max-transaction-age', '0s']);
    assert.equal(clean.code, 0, clean.stdout);
    assert.match(clean.stdout, /no open transactions\n/);
    assert.equal((await kcatRecords(KAFKA_BROKERS.join(','), topic, 'read_committed')).length, 110);
  });
});
