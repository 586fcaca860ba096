/**
 * examples/vwap.ts — a user-defined pipeline on the public API — on the real Kafka and
 * PostgreSQL. Every row, every kept open minute, every dead letter and the accounting are
 * compared with a recomputation done here from the records as the log stores them (per
 * partition, in offset order, integer sums): after a clean run, after a crash and two
 * resumes, after a commit that failed once after writing, and with two members of one
 * group on the embedded log.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { KafkaLog, MemoryLog, TickflowError, collectSnapshot, isTickflowError } from 'tickflow';
import type { Database, Log, LogRecord, Queryable, RecordToProduce, TaskLogger } from 'tickflow';
import { runVwap } from '../../examples/vwap.ts';
import { KAFKA_BROKERS } from '../helpers/env.ts';
import { privateSchema, readAll, uniqueName, waitFor } from '../indicators/fixtures.ts';
import type { PrivateSchema } from '../indicators/fixtures.ts';
import { seededRandom } from '../indicators/reference.ts';

const LATENESS_MS = 5_000;
const PARTITIONS = 4;
const SYMBOLS = ['ACME', 'BOLT', 'CRAN', 'DYNA', 'EVER', 'FLUX', 'GRID', 'HALO', 'IRIS'];
const START = Date.UTC(2024, 2, 1, 9, 30);
const quiet: TaskLogger = { debug: () => undefined, info: () => undefined, warn: () => undefined };

type Spec = { kind: 'trade'; time: number; symbol: string; cents: number; qty: number } | { kind: 'malformed'; reason: string };

const tsText = (ms: number) => new Date(ms).toISOString().replace('T', ' ').slice(0, 23);

/**
 * Seeded trades over ~9 minutes of event time, in order within ±3 s (less than the allowed
 * lateness), with ~1% sent 2.5 minutes late and ~1.5% malformed (one of each reason). Every
 * value is unique, so a value read back names its spec.
 */
function trades(count: number, seed: number): { records: RecordToProduce[]; specs: Map<string | null, Spec> } {
  const random = seededRandom(seed);
  const cents = new Map(SYMBOLS.map((s, i) => [s, 1_000 + 1_700 * i]));
  const records: RecordToProduce[] = [];
  const specs = new Map<string | null, Spec>();
  const malformed: Array<[string, (i: number) => string | null]> = [
    ['not-json', (i) => `not json ${i}`],
    ['bad-ts', (i) => JSON.stringify({ ts: '2024-03-01T09:30:00Z', symbol: 'ACME', price: 1, qty: 1, id: i })],
    ['bad-symbol', (i) => JSON.stringify({ ts: tsText(START), symbol: '', price: 1, qty: 1, id: i })],
    ['bad-price', (i) => JSON.stringify({ ts: tsText(START), symbol: 'ACME', price: i % 2 ? -5 : 12.345, qty: 1, id: i })],
    ['bad-qty', (i) => JSON.stringify({ ts: tsText(START), symbol: 'ACME', price: 1, qty: i % 2 ? 0 : 2.5, id: i })],
    ['not-json', () => null],
  ];
  let nextMalformed = 0;
  for (let i = 0; i < count; i++) {
    if (random() < 0.015 || (i === count - 1 && nextMalformed < malformed.length)) {
      const [reason, make] = malformed[nextMalformed++ % malformed.length];
      const value = make(i);
      if (specs.has(value)) continue; // the null value, once
      specs.set(value, { kind: 'malformed', reason });
      records.push({ key: `bad-${i}`, value });
      continue;
    }
    const symbol = SYMBOLS[Math.floor(random() * SYMBOLS.length)];
    const price = Math.max(1, cents.get(symbol)! + Math.round((random() - 0.5) * 40));
    cents.set(symbol, price);
    const late = random() < 0.01;
    const time = START + i * 137 + Math.round((random() - 0.5) * 6_000) - (late ? 150_000 : 0);
    const qty = 1 + Math.floor(random() * 500);
    const value = JSON.stringify({ ts: tsText(time), symbol, price: price / 100, qty, id: i });
    specs.set(value, { kind: 'trade', time, symbol, cents: price, qty });
    records.push({ key: symbol, value });
  }
  return { records, specs };
}

interface Sums { trades: number; volume: number; notionalCents: number }
interface Expected {
  /** `symbol minute-ms` → sums of the closed minutes. */
  rows: Map<string, Sums>;
  /** Per partition: stream time and its open minutes (`symbol minute-ms` → sums). */
  open: Map<number, { streamTime: number | null; minutes: Map<string, Sums> }>;
  /** `partition/offset` → reason. */
  rejected: Map<string, string>;
  counts: Map<number, { accepted: number; invalid: number; late: number }>;
}

/** What the VWAP must be, from the stored records alone: a per-partition walk in offset order. */
function recompute(records: readonly LogRecord[], specs: Map<string | null, Spec>): Expected {
  const expected: Expected = { rows: new Map(), open: new Map(), rejected: new Map(), counts: new Map() };
  const byPartition = new Map<number, LogRecord[]>();
  for (const r of records) byPartition.set(r.partition, [...(byPartition.get(r.partition) ?? []), r]);
  for (const [partition, list] of byPartition) {
    list.sort((a, b) => (a.offset < b.offset ? -1 : 1));
    let streamTime = Number.NEGATIVE_INFINITY;
    const minutes = new Map<string, Sums>();
    const counts = { accepted: 0, invalid: 0, late: 0 };
    for (const record of list) {
      const spec = specs.get(record.value === null ? null : record.value.toString('utf8'));
      assert.ok(spec, `a record the test did not produce at ${partition}/${record.offset}`);
      const where = `${partition}/${record.offset}`;
      if (spec.kind === 'malformed') {
        expected.rejected.set(where, spec.reason);
        counts.invalid++;
        continue;
      }
      const minute = Math.floor(spec.time / 60_000) * 60_000;
      if (minute + 60_000 <= streamTime - LATENESS_MS) {
        expected.rejected.set(where, 'late');
        counts.late++;
        continue;
      }
      counts.accepted++;
      streamTime = Math.max(streamTime, spec.time);
      const key = `${spec.symbol} ${minute}`;
      const sums = minutes.get(key) ?? { trades: 0, volume: 0, notionalCents: 0 };
      minutes.set(key, { trades: sums.trades + 1, volume: sums.volume + spec.qty, notionalCents: sums.notionalCents + spec.cents * spec.qty });
    }
    const open = new Map<string, Sums>();
    for (const [key, sums] of minutes) {
      if (Number(key.split(' ')[1]) + 60_000 <= streamTime - LATENESS_MS) expected.rows.set(key, sums);
      else open.set(key, sums);
    }
    expected.open.set(partition, { streamTime: Number.isFinite(streamTime) ? streamTime : null, minutes: open });
    expected.counts.set(partition, counts);
  }
  return expected;
}

/** numeric round(notional / volume / 100, 6), exactly, as PostgreSQL prints it. */
function vwapText({ volume, notionalCents }: Sums): string {
  const v = BigInt(volume);
  const q = (2n * BigInt(notionalCents) * 10_000n + v) / (2n * v);
  return `${q / 1_000_000n}.${String(q % 1_000_000n).padStart(6, '0')}`;
}

async function assertRows(db: Queryable, expected: Expected): Promise<void> {
  const { rows } = await db.query<{ symbol: string; minute: Date; trades: number; volume: string; notional_cents: string; vwap: string }>(
    'SELECT symbol, minute, trades, volume, notional_cents, vwap FROM vwap_minutes ORDER BY symbol, minute');
  const want = [...expected.rows].map(([key, sums]) => ({ key, ...sums, vwap: vwapText(sums) })).sort((a, b) => a.key.localeCompare(b.key));
  const got = rows.map((r) => ({ key: `${r.symbol} ${r.minute.getTime()}`, trades: r.trades, volume: Number(r.volume), notionalCents: Number(r.notional_cents), vwap: r.vwap }))
    .sort((a, b) => a.key.localeCompare(b.key));
  assert.ok(want.length >= 30, `enough closed minutes to mean something (${want.length})`);
  assert.deepEqual(got, want);
}

async function assertState(db: Queryable, group: string, expected: Expected): Promise<void> {
  const { rows } = await db.query<{ partition: number; state: { streamTime: number | null; open: Array<Sums & { symbol: string; start: number }> } }>(
    'SELECT partition, state FROM vwap_open_minutes WHERE consumer = $1', [group]);
  const got = new Map(rows.map((r) => [r.partition, {
    streamTime: r.state.streamTime,
    minutes: new Map(r.state.open.map(({ symbol, start, trades, volume, notionalCents }) => [`${symbol} ${start}`, { trades, volume, notionalCents }])),
  }]));
  assert.deepEqual(got, new Map([...expected.open].filter(([, o]) => o.streamTime !== null)));
}

/** Dead letters by source position; `atLeastOnce` allows a position twice (a crash resent it). */
async function assertDeadLetters(log: Log, topic: string, expected: Expected, atLeastOnce = false): Promise<void> {
  const seen = new Map<string, string>();
  let total = 0;
  for (const letter of await readAll(log, topic)) {
    const header = (name: string) => letter.headers.find(([k]) => k === name)?.[1].toString('utf8');
    assert.equal(header('x-pipeline'), 'vwap');
    seen.set(`${header('x-source-partition')}/${header('x-source-offset')}`, header('x-reason')!);
    total++;
  }
  assert.deepEqual(seen, expected.rejected);
  if (atLeastOnce) assert.ok(total >= expected.rejected.size);
  else assert.equal(total, expected.rejected.size);
}

async function assertAccounting(log: Log, db: Queryable, topic: string, group: string, expected: Expected): Promise<void> {
  const snapshot = await collectSnapshot(log, db, { topics: [topic] });
  assert.deepEqual(snapshot.problems, []);
  const counts = new Map(snapshot.accounting.filter((a) => a.consumer === group).map((a) => [a.partition, { accepted: a.accepted, invalid: a.invalid, late: a.late }]));
  assert.deepEqual(counts, expected.counts);
}

/** The database, except that one transaction fails after its writes (so it rolls back). */
function failingOnce(db: Database, shouldFail: (rowsWritten: number) => boolean, error: () => Error): Database {
  let failed = false;
  return {
    kind: db.kind,
    description: db.description,
    query: (sql, params) => db.query(sql, params),
    close: () => db.close(),
    transaction: (fn) => db.transaction(async (tx) => {
      const result = await fn(tx);
      // A commit transaction returns the rows the processor wrote; the claim returns claims.
      if (!failed && typeof result === 'number' && shouldFail(result)) {
        failed = true;
        throw error();
      }
      return result;
    }),
  };
}

describe('examples/vwap.ts on the real Kafka and PostgreSQL', () => {
  let log: KafkaLog;
  let topic: string;
  let specs: Map<string | null, Spec>;
  let expected: Expected;
  const topics: string[] = [];
  const schemas: PrivateSchema[] = [];

  before(async () => {
    log = new KafkaLog({ brokers: KAFKA_BROKERS });
    topic = uniqueName('vwap-trades');
    topics.push(topic);
    await log.createTopics([{ name: topic, partitions: PARTITIONS }]);
    const made = trades(4_000, 20240301);
    specs = made.specs;
    const producer = log.producer();
    await producer.send(topic, made.records);
    await producer.close();
    expected = recompute(await readAll(log, topic), specs);
    assert.equal(expected.open.size, PARTITIONS, 'every partition has trades');
    assert.ok([...expected.rejected.values()].filter((r) => r === 'late').length >= 10, 'late trades');
    assert.deepEqual(new Set(expected.rejected.values()), new Set(['late', 'not-json', 'bad-ts', 'bad-symbol', 'bad-price', 'bad-qty']));
  });
  after(async () => {
    await log.deleteTopics(topics).catch(() => undefined);
    await log.close();
    for (const schema of schemas) await schema.drop();
  });

  async function fresh(name: string) {
    const schema = await privateSchema('vwap_test');
    schemas.push(schema);
    const deadLetterTopic = uniqueName(`vwap-dead-letters-${name}`);
    topics.push(deadLetterTopic);
    return { schema, db: await schema.open(), group: uniqueName(`vwap-${name}`), deadLetterTopic };
  }

  it('one run to the end: every row, open minute, dead letter and count as recomputed', async () => {
    const { db, group, deadLetterTopic } = await fresh('clean');
    try {
      const report = await runVwap({ log, db, topic, group, deadLetterTopic, logger: quiet, signal: new AbortController().signal, untilEnd: true, allowedLatenessMs: LATENESS_MS });
      assert.equal(report.read, [...expected.counts.values()].reduce((n, c) => n + c.accepted + c.invalid + c.late, 0));
      assert.equal(report.rows, expected.rows.size);
      assert.equal(report.deadLettered, expected.rejected.size);
      await assertRows(db, expected);
      await assertState(db, group, expected);
      await assertDeadLetters(log, deadLetterTopic, expected);
      await assertAccounting(log, db, topic, group, expected);
      // Run again: nothing new to read, nothing written.
      const again = await runVwap({ log, db, topic, group, deadLetterTopic, logger: quiet, signal: new AbortController().signal, untilEnd: true, allowedLatenessMs: LATENESS_MS });
      assert.deepEqual([again.read, again.rows, again.deadLettered], [0, 0, 0]);
      await assertRows(db, expected);
    } finally {
      await db.close();
    }
  });

  it('crashed mid-run (the database dies after writing), resumed, stopped after one commit, resumed: the same rows', async () => {
    const { db, group, deadLetterTopic } = await fresh('crash');
    try {
      const options = { log, topic, group, deadLetterTopic, logger: quiet, untilEnd: true, allowedLatenessMs: LATENESS_MS, sliceRecords: 250 };
      let rowCommits = 0;
      const dying = failingOnce(db, (rows) => rows > 0 && ++rowCommits === 2, () => new TickflowError('DB_ERROR', 'injected: the server crashed before COMMIT'));
      await assert.rejects(runVwap({ ...options, db: dying, signal: new AbortController().signal }), (error) => isTickflowError(error, 'DB_ERROR'));
      const [{ n: afterCrash }] = (await db.query<{ n: string }>('SELECT count(*) AS n FROM vwap_minutes')).rows;
      assert.ok(Number(afterCrash) > 0 && Number(afterCrash) < expected.rows.size, `the first commit kept its rows (${afterCrash}), the rest was lost with the crash`);

      const stop = new AbortController();
      const stopped = await runVwap({ ...options, db, signal: stop.signal, onCommitted: () => stop.abort() });
      assert.ok(stopped.commits >= 1 && stopped.read < 4_000, `stopped after ${stopped.commits} commits, ${stopped.read} records`);

      await runVwap({ ...options, db, signal: new AbortController().signal });
      await assertRows(db, expected);
      await assertState(db, group, expected);
      await assertAccounting(log, db, topic, group, expected);
      // Dead letters are sent before the commit: the crash resent some (at least once).
      await assertDeadLetters(log, deadLetterTopic, expected, true);
    } finally {
      await db.close();
    }
  });

  it('a commit that fails once after writing is rolled back and retried: no loss, no duplicate', async () => {
    const { db, group, deadLetterTopic } = await fresh('retry');
    try {
      let rowCommits = 0;
      const flaky = failingOnce(db, (rows) => rows > 0 && ++rowCommits === 2, () => new TickflowError('DB_UNAVAILABLE', 'injected: connection lost before COMMIT'));
      const report = await runVwap({ log, db: flaky, topic, group, deadLetterTopic, logger: quiet, signal: new AbortController().signal, untilEnd: true, allowedLatenessMs: LATENESS_MS, sliceRecords: 250 });
      assert.equal(report.rows, expected.rows.size);
      assert.ok(rowCommits >= 2, 'the failure was injected');
      await assertRows(db, expected);
      await assertState(db, group, expected);
      await assertDeadLetters(log, deadLetterTopic, expected);
      await assertAccounting(log, db, topic, group, expected);
    } finally {
      await db.close();
    }
  });
  it('a COMMIT whose answer is lost (committed, then the connection drops) is not written twice', async () => {
    const { db, group, deadLetterTopic } = await fresh('lost-commit');
    try {
      let rowCommits = 0;
      let lost = 0;
      // The transaction commits, then the caller hears "connection lost": the commit is in doubt.
      const inDoubt: Database = {
        kind: db.kind,
        description: db.description,
        query: (sql, params) => db.query(sql, params),
        close: () => db.close(),
        transaction: async (fn) => {
          const result = await db.transaction(fn);
          if (typeof result === 'number' && result > 0 && ++rowCommits === 2) {
            lost++;
            throw new TickflowError('DB_UNAVAILABLE', 'injected: connection lost after COMMIT');
          }
          return result;
        },
      };
      await runVwap({ log, db: inDoubt, topic, group, deadLetterTopic, logger: quiet, signal: new AbortController().signal, untilEnd: true, allowedLatenessMs: LATENESS_MS, sliceRecords: 250 });
      assert.equal(lost, 1, 'the lost answer was injected');
      // vwap adds minute parts into their rows: a second write would double them.
      await assertRows(db, expected);
      await assertState(db, group, expected);
      await assertAccounting(log, db, topic, group, expected);
    } finally {
      await db.close();
    }
  });
});

describe('examples/vwap.ts as two members of one group (embedded log, real PostgreSQL)', () => {
  it('splits the partitions, hands state over on the rebalance, and writes the recomputed rows', async () => {
    const log = new MemoryLog();
    const schema = await privateSchema('vwap_pair');
    const db = await schema.open();
    const stops = [new AbortController(), new AbortController()];
    const runs: Promise<unknown>[] = [];
    try {
      await log.createTopics([{ name: 'trades', partitions: PARTITIONS }]);
      const { records, specs } = trades(3_000, 7);
      const producer = log.producer();
      await producer.send('trades', records.slice(0, 1_500));
      const assigned: number[][] = [[], []];
      let commits = 0;
      const member = (i: number) => runVwap({
        log, db, topic: 'trades', group: 'vwap-pair', logger: quiet, signal: stops[i].signal, allowedLatenessMs: LATENESS_MS, sliceRecords: 100, idleMs: 200,
        onAssigned: ({ partitions }) => (assigned[i] = partitions.map((p) => p.partition)),
        onCommitted: () => commits++,
      });
      runs.push(member(0));
      await waitFor('the first member to commit', async () => commits > 0);
      runs.push(member(1));
      await waitFor('the second member to get partitions', async () => assigned[1].length > 0);
      await producer.send('trades', records.slice(1_500));
      const ends = new Map((await log.offsets('trades')).map((p) => [p.partition, String(p.latest)]));
      await waitFor('every partition consumed and committed', async () => {
        const { rows } = await db.query<{ partition: number; next_offset: string }>("SELECT partition, next_offset FROM stored_offsets WHERE consumer = 'vwap-pair'");
        return rows.length === PARTITIONS && rows.every((r) => ends.get(r.partition) === r.next_offset);
      });
      const split = assigned.map((partitions) => [...partitions]); // before stopping: the first to leave hands its partitions over
      for (const stop of stops) stop.abort();
      await Promise.all(runs);
      assert.deepEqual(split.flat().sort(), [0, 1, 2, 3], `each partition to one member: ${JSON.stringify(split)}`);
      assert.ok(split[0].length > 0 && split[1].length > 0);
      const expected = recompute(await readAll(log, 'trades'), specs);
      await assertRows(db, expected);
      await assertState(db, 'vwap-pair', expected);
      await assertAccounting(log, db, 'trades', 'vwap-pair', expected);
    } finally {
      for (const stop of stops) stop.abort();
      await Promise.allSettled(runs);
      await db.close();
      await schema.drop();
      await log.close();
    }
  });
});
