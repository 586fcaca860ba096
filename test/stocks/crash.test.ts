/**
 * kill -9 at random moments: the aggregator runs as a child process (the real CLI) while
 * the generator streams; it is killed without warning several times and restarted each
 * time. At the end the table must equal the recomputation from the raw topic exactly:
 * no sample lost, none counted twice. Records the aggregator dead-lettered as late (a
 * stalled generator on a busy machine can cause that) are accounted for by their source
 * offsets: each record is in the table or in the dead-letter topic, never both.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { after, before, describe, it } from 'node:test';
import type { Database } from '../../src/db/types.ts';
import { collectSnapshot } from '../../src/observability/reconciliation.ts';
import { KafkaLog } from '../../src/log/kafka.ts';
import { BIN } from '../helpers/cli.ts';
import { KAFKA_BROKERS } from '../helpers/env.ts';
import { aggregatorCaughtUp, assertSameWindows, isolatedDatabase, readAll, recompute, recordId, storedWindows, uniqueName, waitFor } from './fixtures.ts';
import type { IsolatedDatabase } from './fixtures.ts';

const KILLS = 3;

function start(args: string[], env: NodeJS.ProcessEnv = {}): { child: ChildProcess; output: () => string; exited: Promise<number | null> } {
  const child = spawn(process.execPath, [BIN, ...args], { env: { ...process.env, LOG_LEVEL: 'info', ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  child.stdout!.on('data', (d) => (output += d));
  child.stderr!.on('data', (d) => (output += d));
  const exited = once(child, 'exit').then(([code]) => code as number | null);
  return { child, output: () => output, exited };
}

describe('aggregate stocks: kill -9 while data flows', () => {
  let isolated: IsolatedDatabase;
  let db: Database;
  const log = new KafkaLog({ brokers: KAFKA_BROKERS });
  const children: ChildProcess[] = [];
  before(async () => {
    isolated = await isolatedDatabase('stocks_crash');
    db = await isolated.open();
  });
  after(async () => {
    for (const child of children) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    await log.close();
    await db?.close();
    await isolated?.drop();
  });

  it(`loses and duplicates nothing across ${KILLS} kills and restarts`, async () => {
    const topic = uniqueName('stocks-crash');
    const group = uniqueName('crash');
    const brokers = KAFKA_BROKERS.join(',');
    await log.createTopics([{ name: topic, partitions: 3 }]);
    const generator = start(['generate', 'stocks', '--output', topic, '--rate', '40', '--count', '1000', '--seed', 'crash', '--brokers', brokers, '--json']);
    children.push(generator.child);
    const aggregate = ['aggregate', 'stocks', '--input', topic, '--group', group, '--window', '2s', '--allowed-lateness', '1s', '--idle-timeout', '2s',
      '--commit-interval', '300ms', '--session-timeout', '6s', '--brokers', brokers, '--database-url', isolated.url];

    const kills: number[] = [];
    const resumedFrom: bigint[] = [];
    const claimedOffsets = (output: string) =>
      output.split('\n').filter((line) => line.includes('partitions claimed')).flatMap((line) => (JSON.parse(line).partitions as string[]).map((p) => BigInt(p.split('@')[1])));
    for (let i = 0; i < KILLS; i++) {
      const run = start(aggregate);
      children.push(run.child);
      await waitFor(() => run.output().includes('partitions claimed') || run.child.exitCode !== null, 'the aggregator to claim its partitions', 60_000);
      assert.equal(run.child.exitCode, null, run.output());
      const delay = Math.floor(Math.random() * 2500);
      await new Promise((r) => setTimeout(r, delay));
      run.child.kill('SIGKILL');
      await run.exited;
      kills.push(delay);
      if (i > 0) resumedFrom.push(...claimedOffsets(run.output()));
    }
    assert.equal(generator.child.exitCode, null, 'the generator was still streaming during every kill');

    const last = start(aggregate);
    children.push(last.child);
    assert.equal(await generator.exited, 0, generator.output());
    await waitFor(() => aggregatorCaughtUp(db, log, group, topic), 'the last aggregator to finish', 120_000);
    last.child.kill('SIGTERM');
    assert.equal(await last.exited, 0, last.output());
    resumedFrom.push(...claimedOffsets(last.output()));
    assert.ok(resumedFrom.some((offset) => offset > 0n), 'restarts resumed from offsets stored by killed runs');

    const letters = await readAll(log, `${topic}-dlq`);
    const header = (r: (typeof letters)[number], name: string) => r.headers.find(([k]) => k === name)?.[1].toString();
    assert.deepEqual([...new Set(letters.map((r) => header(r, 'x-reason')))].filter((reason) => reason !== 'late'), [], 'only late records are dead-lettered');
    const deadLettered = new Set(letters.map((r) => recordId(Number(header(r, 'x-source-partition')), header(r, 'x-source-offset')!)));
    const records = await readAll(log, topic);
    assert.equal(records.length, 1000);
    const expected = recompute(records, 2_000, deadLettered);
    assert.ok(expected.length >= 3 * 10, 'the stream spans at least ten windows');
    assertSameWindows(await storedWindows(db), expected);
    // The accounting kept with the offsets survived every kill: all 1000 records, each once.
    const snapshot = await collectSnapshot(log, db, { topics: [topic] });
    assert.deepEqual(snapshot.problems, []);
    const accounting = snapshot.accounting.filter((a) => a.consumer === group);
    assert.equal(accounting.reduce((n, a) => n + a.accepted + a.late + a.invalid, 0), 1000);
    assert.equal(accounting.reduce((n, a) => n + a.late, 0), deadLettered.size);
    // For the record: where the kills fell, and how many records came too late.
    process.stdout.write(`# killed after ${kills.join(', ')} ms; ${deadLettered.size} late records dead-lettered\n`);
  });
});
