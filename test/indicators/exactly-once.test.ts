import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { KafkaLog } from '../../src/log/kafka.ts';
import type { Database } from '../../src/db/types.ts';
import { runIndicators } from '../../src/pipelines/indicators.ts';
import { KAFKA_BROKERS } from '../helpers/env.ts';
import { outputsByKey } from './check-output.ts';
import { privateSchema, produceTicks, readAll, seededStream, startTickflow, transactionsSettled, uniqueName } from './fixtures.ts';
import type { PrivateSchema } from './fixtures.ts';

/**
 * `indicators` exactly once (the default) on the real Kafka and PostgreSQL: the node process
 * is killed -9 three times at random moments while it works through a price topic, and
 * restarted each time. The output topic, read at read_committed, must hold exactly one
 * record per input price — each input record (partition, offset) is the n-th price of its
 * symbol in its partition, which is the output's (symbol, seq) — with values identical to
 * an uninterrupted run; kcat (librdkafka, read_committed) must count the same.
 *
 * 120 000 prices by default (TICKFLOW_EXACTLY_ONCE_PRICES to change), streamed in over
 * about 45 s so that each kill lands mid-stream; small enough to run in the suite.
 */

const PRICES = Number(process.env.TICKFLOW_EXACTLY_ONCE_PRICES ?? 120_000);
const SYMBOLS = 50;
const KILLS = 3;

function kcatCount(topic: string, isolation: 'read_committed' | 'read_uncommitted'): number {
  const out = execFileSync('/usr/bin/kcat', ['-b', KAFKA_BROKERS[0], '-C', '-t', topic, '-X', `isolation.level=${isolation}`, '-e', '-q', '-f', '%p\\n'], { encoding: 'utf8', timeout: 120_000, maxBuffer: 64 << 20 });
  return out.split('\n').filter(Boolean).length;
}

/** Polls until a transaction holds records on `topic` (high watermark − last stable offset > 0); 0n after 60 s. */
async function openTransaction(committed: KafkaLog, uncommitted: KafkaLog, topic: string): Promise<bigint> {
  for (const started = Date.now(); Date.now() - started < 60_000;) {
    const [stable, high] = await Promise.all([committed.offsets(topic).catch(() => []), uncommitted.offsets(topic).catch(() => [])]);
    const open = high.reduce((n, p, i) => n + p.latest - (stable[i]?.latest ?? p.latest), 0n);
    if (open > 1n) return open;
  }
  return 0n;
}

describe('indicators exactly once under kill -9', { timeout: 900_000 }, () => {
  let log: KafkaLog;
  let uncommitted: KafkaLog;
  let schema: PrivateSchema;
  let db: Database;
  const created: string[] = [];

  before(async () => {
    log = new KafkaLog({ brokers: KAFKA_BROKERS });
    uncommitted = new KafkaLog({ brokers: KAFKA_BROKERS, isolationLevel: 'read_uncommitted' });
    schema = await privateSchema('exactly_once');
    db = await schema.open();
  });
  after(async () => {
    await log.deleteTopics(created).catch(() => undefined);
    await log.close();
    await uncommitted.close();
    await db.close();
    await schema.drop();
  });

  it(`killed -9 ${KILLS} times and restarted: one output per input price, values as an uninterrupted run, kcat agrees`, async () => {
    const input = uniqueName('prices-eo');
    const output = uniqueName('volatility-eo');
    const reference = uniqueName('volatility-eo-ref');
    created.push(input, output, reference, `${input}-dlq`, `${input}-ref-dlq`);
    await log.createTopics([{ name: input, partitions: 3 }]);
    const { ticks } = seededStream(SYMBOLS, PRICES / SYMBOLS, 7);
    const group = uniqueName('indicators-eo');
    const args = ['indicators', '--input', input, '--output', output, '--dead-letter-topic', `${input}-dlq`,
      '--group', group, '--brokers', KAFKA_BROKERS.join(','), '--database-url', schema.url];

    // The prices stream in while the runs are killed and restarted (about 45 s), so that
    // every kill lands while there is work in flight.
    const feeding = (async () => {
      const chunk = Math.ceil(PRICES / 20);
      for (let i = 0; i < ticks.length; i += chunk) {
        await produceTicks(log, input, ticks.slice(i, i + chunk));
        await new Promise((resolve) => setTimeout(resolve, 2200));
      }
    })();
    let fed = false;
    void feeding.then(() => (fed = true), () => undefined);
    const committed = async () => [...(await log.committed(group, input).catch(() => new Map<number, bigint>())).values()].reduce((n, o) => n + o, 0n);
    const kills: string[] = [];
    for (let kill = 0; kill < KILLS; kill++) {
      const before = await committed();
      const running = startTickflow(args);
      // This run committed something (the group's offsets moved; nothing to wait for once
      // all is fed and done), then a random moment more.
      for (let i = 0; (await committed()) <= before && !(fed && before >= BigInt(PRICES)); i++) {
        if (i > 1200) assert.fail(`run ${kill + 1} committed nothing in 2 minutes: ${(await Promise.race([running.exited, Promise.resolve(null)]))?.stderr ?? 'still running'}`);
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
      let moment: string;
      if (kill === 1) {
        // The second kill waits for a transaction holding outputs (high watermark above the
        // last stable offset): the worst moment, which random ones rarely hit. (It may have
        // been decided already, markers not yet written: then it commits.)
        const found = await openTransaction(log, uncommitted, output);
        running.child.kill('SIGKILL');
        moment = found > 0n ? `in a transaction holding ${found} records` : 'no open transaction seen in 60 s';
      } else {
        const delay = Math.floor(Math.random() * 1500);
        await new Promise((resolve) => setTimeout(resolve, delay));
        running.child.kill('SIGKILL');
        moment = `${delay} ms after its first commit`;
      }
      const exit = await running.exited;
      assert.equal(exit.signal, 'SIGKILL', exit.stderr);
      kills.push(`kill ${kill + 1}: ${moment}, ${await committed()} prices committed`);
    }
    await feeding;

    // The uninterrupted run, into a topic of its own.
    const silent = { info() {}, warn() {}, debug() {}, error() {} } as never;
    const uninterrupted = await runIndicators({
      log, db, logger: silent, signal: new AbortController().signal, inputTopic: input, outputTopic: reference,
      deadLetterTopic: `${input}-ref-dlq`, group: uniqueName('indicators-ref'), window: 100, stopAtEnd: true,
    });
    assert.equal(uninterrupted.published, PRICES);

    const last = await startTickflow([...args, '--until-end', '--json']).exited;
    assert.equal(last.code, 0, last.stderr);
    const lastReport = JSON.parse(last.stdout) as { published: number };
    assert.ok(lastReport.published < PRICES, 'the killed runs committed part of the output');
    assert.equal(await committed(), BigInt(PRICES), 'every input offset committed');

    assert.ok(await transactionsSettled(log, output), 'no transaction left open');
    const records = await readAll(log, output);
    assert.equal(records.length, PRICES, 'one output record per input price at read_committed');
    const got = outputsByKey(records);
    assert.equal(got.size, PRICES, 'no (symbol, seq) twice');
    // Each input record (partition, offset) is the n-th price of its symbol: exactly that output exists.
    const seen = new Map<string, number>();
    for (const record of await readAll(log, input)) {
      const symbol = record.key!.toString();
      const seq = (seen.get(symbol) ?? 0) + 1;
      seen.set(symbol, seq);
      assert.ok(got.has(`${symbol}/${seq}`), `input ${record.partition}@${record.offset} (${symbol} #${seq}) has its output`);
    }
    const expected = outputsByKey(await readAll(log, reference));
    assert.equal(expected.size, PRICES);
    for (const [k, value] of expected) assert.equal(got.get(k), value, `${k} as in the uninterrupted run`);

    // An independent reader (librdkafka) agrees on the count.
    assert.equal(kcatCount(output, 'read_committed'), PRICES, 'kcat at read_committed');
    const inLog = kcatCount(output, 'read_uncommitted');
    assert.ok(inLog >= PRICES);
    console.log(`# ${PRICES} prices; ${kills.join('; ')}; last run published ${lastReport.published}; aborted records in the log (read_uncommitted − read_committed): ${inLog - PRICES}`);
  });
});
