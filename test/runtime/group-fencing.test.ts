import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { KafkaLog } from '../../src/log/kafka.ts';
import { BIN } from '../helpers/cli.ts';
import { KAFKA_BROKERS } from '../helpers/env.ts';
import { transactionsSettled } from '../helpers/transactions.ts';
import { BROKERS, readAll, run, unique } from '../users/helpers.ts';

/**
 * Zombie fencing across a rebalance (KIP-447), on the real broker: two members of one
 * `clean-users` group (exactly once, Kafka transactions) share a 4-partition topic while
 * records stream in. The older member is paused (SIGSTOP) until the group has given all
 * partitions to the other one — a new partition set, so a new transactional id: no producer
 * epoch fences the paused one — and then resumed (SIGCONT) with records of its old
 * partitions in hand. Its transaction's offsets carry its member id and generation, which
 * the group refuses: it must abort and rejoin instead of committing. read_committed readers
 * (ours and kcat) then see every record exactly once, as an uninterrupted run has them.
 */

const RECORDS = 60_000;
const PARTITIONS = 4;

interface Member {
  child: ChildProcess;
  log(): string;
  /** Partition lists of its claims so far, oldest first. */
  claims(): number[][];
  exited: Promise<number | NodeJS.Signals | null>;
}

function start(args: readonly string[]): Member {
  const child = spawn(process.execPath, [BIN, ...args], { env: { ...process.env, LOG_LEVEL: 'info' }, stdio: ['ignore', 'ignore', 'pipe'] });
  let text = '';
  child.stderr!.on('data', (d: Buffer) => (text += d.toString()));
  const exited = new Promise<number | NodeJS.Signals | null>((resolve) => child.on('close', (code, signal) => resolve(signal ?? code)));
  const claims = () => text.split('\n').filter((l) => l.includes('partitions claimed') || l.includes('no partitions assigned')).map((l) => {
    const { partitions } = JSON.parse(l) as { partitions: string[] };
    return partitions.map((p) => Number(/\/(\d+)@/.exec(p)![1])).sort((a, b) => a - b);
  });
  return { child, log: () => text, claims, exited };
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

async function until(what: string, check: () => boolean | Promise<boolean>, timeoutMs: number, context: () => string): Promise<void> {
  const started = Date.now();
  while (!(await check())) {
    if (Date.now() - started > timeoutMs) assert.fail(`${what}: not within ${timeoutMs / 1000} s\n${context()}`);
    await sleep(100);
  }
}

describe('zombie fencing across a rebalance', { timeout: 600_000 }, () => {
  let log: KafkaLog;
  const created: string[] = [];
  before(() => {
    log = new KafkaLog({ brokers: KAFKA_BROKERS });
  });
  after(async () => {
    await log.deleteTopics(created).catch(() => undefined);
    await log.close();
  });

  it('a member paused past the rebalance that gave its partitions away cannot commit its transaction: it aborts and rejoins; every record once', async () => {
    const input = unique('fence-in');
    const [output, dead, stats] = [unique('fence-clean'), unique('fence-dead'), unique('fence-stats')];
    const group = unique('fence-group');
    created.push(input, output, dead, stats);
    const generated = await run(['generate', 'users', '--count', String(RECORDS), '--seed', 'group-fencing']);
    assert.equal(generated.code, 0, generated.stderr);
    const lines = generated.stdout.split('\n').filter((l) => l !== '');
    await log.createTopics([{ name: input, partitions: PARTITIONS }]);
    const committed = async () => await log.committed(group, input).catch(() => new Map<number, bigint>());
    const total = async () => [...(await committed()).values()].reduce((n, o) => n + o, 0n);

    // The records stream in over about 30 s, while the members come, pause and go on.
    const feeding = (async () => {
      const producer = log.producer();
      for (let i = 0; i < lines.length; i += 2000) {
        await producer.send(input, lines.slice(i, i + 2000).map((value, j) => ({ key: String(i + j), value })));
        await sleep(1000);
      }
      await producer.close();
    })();
    const args = ['clean-users', '--input', input, '--output', output, '--dead-letter-topic', dead, '--stats-topic', stats, '--group', group, '--window', '1h', ...BROKERS];
    const older = start(args);
    const started: { newer?: Member } = {};
    const context = () => `older member:\n${older.log().slice(-3000)}\nnewer member:\n${started.newer?.log().slice(-3000) ?? ''}`;
    await until('the older member commits', async () => (await total()) > 0n, 60_000, context);
    const newer = (started.newer = start(args));
    // The group splits the partitions between the two, and both commit.
    await until('the partitions split between the members', () => newer.claims().some((c) => c.length > 0) && (older.claims().at(-1)?.length ?? PARTITIONS) < PARTITIONS, 60_000, context);
    const split = { older: older.claims().at(-1)!, newer: newer.claims().at(-1)! };
    const atSplit = await committed();
    await until('both members commit', async () => {
      const now = await committed();
      return [...split.older, ...split.newer].every((p) => (now.get(p) ?? 0n) > (atSplit.get(p) ?? 0n));
    }, 60_000, context);

    older.child.kill('SIGSTOP');
    const atPause = await committed();
    // Its session expires (10 s): the group gives every partition to the newer member, which goes on with the older one's.
    await until('the newer member takes every partition', () => newer.claims().at(-1)?.length === PARTITIONS, 60_000, context);
    await until('the newer member commits the older one\'s partitions', async () => {
      const now = await committed();
      return split.older.every((p) => (now.get(p) ?? 0n) > (atPause.get(p) ?? 0n));
    }, 60_000, context);
    const claimsBefore = older.claims().length;
    const logBefore = older.log().length;
    older.child.kill('SIGCONT');

    // The older member, still holding records of its old partitions, tries to commit them: refused.
    const afterPause = () => older.log().slice(logBefore);
    await until('the older member learns that the group moved on', () => /refused the offsets of member/.test(afterPause()), 60_000, context);
    await until('the older member rejoins', () => older.claims().length > claimsBefore, 60_000, context);
    await feeding;
    await until('every record committed', async () => (await total()) >= BigInt(lines.length), 180_000, context);
    older.child.kill('SIGTERM');
    newer.child.kill('SIGTERM');
    assert.equal(await older.exited, 0, older.log().slice(-2000));
    assert.equal(await newer.exited, 0, newer.log().slice(-2000));

    // An uninterrupted run over the same records.
    const whole = unique('fence-whole');
    created.push(whole, `${whole}-dead`, `${whole}-stats`);
    const reference = await run(['clean-users', '--until-end', '--input', input, '--output', whole, '--dead-letter-topic', `${whole}-dead`, '--stats-topic', `${whole}-stats`, '--window', '1h', ...BROKERS]);
    assert.equal(reference.code, 0, reference.stderr);

    for (const topic of [output, dead]) assert.ok(await transactionsSettled(log, topic, 90_000), `no transaction left open on ${topic}`);
    const clean = await readAll(log, output);
    const rejected = await readAll(log, dead);
    assert.equal(clean.length + rejected.length, lines.length, 'clean + dead-lettered = produced');
    const sources = new Set(rejected.map((r) => `${r.headers['x-source-partition']}@${r.headers['x-source-offset']}`));
    assert.equal(sources.size, rejected.length, 'each dead letter once');
    const sorted = (records: Array<{ value: string }>) => records.map((r) => r.value).sort();
    assert.deepEqual(sorted(clean), sorted(await readAll(log, whole)), 'the clean records of an uninterrupted run, each once');
    assert.deepEqual(sorted(rejected), sorted(await readAll(log, `${whole}-dead`)), 'the dead letters of an uninterrupted run, each once');
    const kcat = execFileSync('/usr/bin/kcat', ['-b', KAFKA_BROKERS[0], '-C', '-t', output, '-X', 'isolation.level=read_committed', '-e', '-q', '-f', '%k\\n'], { encoding: 'utf8', maxBuffer: 64 << 20 });
    assert.equal(kcat.split('\n').filter(Boolean).length, clean.length, 'kcat at read_committed');
    const refusal = afterPause().split('\n').find((l) => /refused the offsets of member/.test(l)) ?? '';
    console.log(`# ${RECORDS} records; split ${JSON.stringify(split)}; older member paused, then refused: ${(JSON.parse(refusal) as { err: string }).err}`);
  });
});
