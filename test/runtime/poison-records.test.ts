/**
 * Poison records on real Kafka: a 5 MB record among good ones, on an input topic that
 * allows it (max.message.bytes = 10 MB), never stops a pipeline. Each run dead-letters it
 * by reference (the dead-letter topic keeps Kafka's default limit) and processes every good
 * record; the service commits past it (in its consumer group, or in PostgreSQL for the
 * pipelines that keep their offsets there). Cases: clean-users, unique-users, indicators,
 * aggregate stocks (a service only), archive (with --max-record-bytes 1 MiB: by default it
 * archives records up to 64 MiB).
 *
 * One row per pipeline in POISON_CASES: how to make good records and the poison, the
 * command and its topic flags, and how to check the outputs against counts computed here.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { isTickflowError } from '../../src/core/errors.ts';
import { KafkaLog } from '../../src/log/kafka.ts';
import type { RecordToProduce } from '../../src/log/types.ts';
import { DEFAULT_DEAD_LETTER_LIMIT, recordBytes } from '../../src/runtime/dead-letters.ts';
import type { DeadLetterReference } from '../../src/runtime/dead-letters.ts';
import { isMessageTooLarge } from '../../src/runtime/dead-letter-producer.ts';
import { BIN } from '../helpers/cli.ts';
import type { CliResult } from '../helpers/cli.ts';
import { KAFKA_BROKERS } from '../helpers/env.ts';
import { BROKERS, readAll, unique } from '../users/helpers.ts';
import type { ReadRecord } from '../users/helpers.ts';
import { isolatedDatabase } from '../stocks/fixtures.ts';
import type { IsolatedDatabase } from '../stocks/fixtures.ts';

const POISON_BYTES = 5 * 1024 * 1024;
const TEN_MB = '10485760';
const GOOD = 600;

/** The topics of one run of a case: its flags name them. */
interface RunTopics {
  input: string;
  deadLetters: string;
  /** Other topics of the run by role (output, late, stats…). */
  other: Record<string, string>;
  group: string;
  /** The run's own PostgreSQL schema, for the pipelines that keep state there. */
  db?: IsolatedDatabase;
}

interface PoisonCase {
  name: string;
  /** The command words, e.g. ['clean-users'] or ['aggregate', 'stocks']. */
  command: readonly string[];
  /** x-pipeline of its dead letters (default: name). */
  pipeline?: string;
  /** The flag of a bounded run, or null when the pipeline is a service only. */
  bounded: string | null;
  /** Keeps its state and offsets in PostgreSQL (then the offsets are checked there, not in the group). */
  database?: boolean;
  /** Good records for the input: valid, on time, each one processed. */
  good(count: number): RecordToProduce[];
  /** A record of `bytes` that the pipeline would accept if it parsed it. */
  poison(bytes: number): RecordToProduce;
  /** Topic flags (and any other) for one run. */
  args(topics: RunTopics): string[];
  /** Extra flags for the service mode (short idle timeouts…). */
  serviceArgs?: readonly string[];
  /** Topic roles besides input and dead letters. */
  roles: readonly string[];
  /** Checks the outputs of a run that has seen `good` (and the poison); true when complete. */
  processed(log: KafkaLog, topics: RunTopics, good: RecordToProduce[]): Promise<string | null>;
}

/** Good user records: every field conforms. */
function users(count: number): RecordToProduce[] {
  return Array.from({ length: count }, (_, i) => ({
    key: String(i + 1),
    value: JSON.stringify({ id: i + 1, first_name: 'Ann', last_name: 'Lee', email: `ann${i}@example.com`, gender: 'F', ip_address: `10.0.${i % 256}.1`, date: '2020-03-14', country: i % 3 === 0 ? 'france' : 'Peru' }),
  }));
}

/** Good tracker frames: one per second from 2016-07-11 13:00 UTC, 40 users. */
const FRAMES_START = 1_468_242_000;
function frames(count: number): RecordToProduce[] {
  return Array.from({ length: count }, (_, i) => ({ key: `u${i % 40}`, value: JSON.stringify({ uid: `u${i % 40}`, ts: FRAMES_START + i, page: '/home' }) }));
}

/** Good prices: 4 symbols keyed by symbol, one a second from 2026-01-05 10:00. */
function prices(count: number): RecordToProduce[] {
  const symbols = ['AAPL', 'MSFT', 'AMZN', 'GOOG'];
  return Array.from({ length: count }, (_, i) => {
    const symbol = symbols[i % symbols.length]!;
    const ts = new Date(Date.UTC(2026, 0, 5, 10, 0, i)).toISOString().replace('T', ' ').slice(0, 19);
    return { key: symbol, value: JSON.stringify({ ts, symbol, price: 100 + (i % 13) + 0.25 }) };
  });
}

/** Good stock ticks: one ticker each, 6 tickers keyed by name, 100 ms apart. */
const STOCKS_START = Date.UTC(2026, 0, 5, 10, 0, 0);
function stocks(count: number): RecordToProduce[] {
  return Array.from({ length: count }, (_, i) => {
    const name = `T${i % 6}`;
    return { key: name, value: JSON.stringify({ tickers: [{ name, price: 100 + (i % 17) }], ts: new Date(STOCKS_START + i * 100).toISOString() }) };
  });
}

/** A valid-looking JSON record padded to exactly `bytes`. */
function padded(fields: Record<string, unknown>, bytes: number): Buffer {
  const head = JSON.stringify({ ...fields, pad: '' });
  const value = `${head.slice(0, -2)}${'A'.repeat(bytes - head.length)}"}`;
  assert.equal(value.length, bytes);
  return Buffer.from(value);
}

/** Distinct users and frames per minute of the frames, computed here. */
function minutesOf(good: RecordToProduce[]): Array<{ start: number; uniqueUsers: number; frames: number }> {
  const byMinute = new Map<number, { users: Set<string>; frames: number }>();
  for (const r of good) {
    const { uid, ts } = JSON.parse(String(r.value)) as { uid: string; ts: number };
    const start = Math.floor(ts / 60) * 60;
    const minute = byMinute.get(start) ?? { users: new Set(), frames: 0 };
    minute.users.add(uid);
    minute.frames++;
    byMinute.set(start, minute);
  }
  return [...byMinute].sort(([a], [b]) => a - b).map(([start, m]) => ({ start, uniqueUsers: m.users.size, frames: m.frames }));
}

export const POISON_CASES: PoisonCase[] = [
  {
    name: 'clean-users',
    command: ['clean-users'],
    bounded: '--until-end',
    roles: ['output', 'stats'],
    good: users,
    poison: (bytes) => ({ key: 'poison', value: padded({ id: 999_999, email: 'p@example.com', ip_address: '1.2.3.4', date: '2020-01-01', country: 'Peru' }, bytes) }),
    args: (t) => ['--input', t.input, '--output', t.other.output!, '--stats-topic', t.other.stats!, '--dead-letter-topic', t.deadLetters, '--group', t.group, '--window', '1h'],
    serviceArgs: ['--idle-timeout', '1s'],
    processed: async (log, t, good) => {
      const clean = await readAll(log, t.other.output!);
      const wanted = new Set(good.map((r) => String(r.key)));
      const got = new Set(clean.map((r) => r.key!));
      if (clean.length < good.length) return `${clean.length} of ${good.length} clean records`;
      assert.equal(clean.length, good.length, 'every good record once, nothing else');
      assert.deepEqual(got, wanted);
      return null;
    },
  },
  {
    name: 'unique-users',
    command: ['unique-users'],
    bounded: '--until-end',
    roles: ['output', 'late'],
    good: frames,
    poison: (bytes) => ({ key: 'poison', value: padded({ uid: 'poison', ts: FRAMES_START + 1 }, bytes) }),
    args: (t) => ['--input', t.input, '--output', t.other.output!, '--late-topic', t.other.late!, '--dead-letter-topic', t.deadLetters, '--group', t.group],
    serviceArgs: ['--idle-timeout', '1s'],
    processed: async (log, t, good) => {
      const minutes = (await readAll(log, t.other.output!)).map((r) => JSON.parse(r.value) as { start: number; uniqueUsers: number; frames: number });
      const expected = minutesOf(good);
      if (minutes.length < expected.length) return `${minutes.length} of ${expected.length} minutes`;
      assert.deepEqual(minutes.map(({ start, uniqueUsers, frames }) => ({ start, uniqueUsers, frames })), expected, 'the poison frame (user "poison") counted nowhere');
      assert.equal((await readAll(log, t.other.late!)).length, 0);
      return null;
    },
  },
  {
    name: 'indicators',
    command: ['indicators'],
    bounded: '--until-end',
    database: true,
    roles: ['output'],
    good: prices,
    poison: (bytes) => ({ key: 'poison', value: padded({ ts: '2026-01-05 10:00:00', symbol: 'POISON', price: 1 }, bytes) }),
    args: (t) => ['--input', t.input, '--output', t.other.output!, '--dead-letter-topic', t.deadLetters, '--group', t.group, '--database-url', t.db!.url],
    processed: async (log, t, good) => {
      const outputs = await readAll(log, t.other.output!);
      if (outputs.length < good.length) return `${outputs.length} of ${good.length} indicator records`;
      // One output per good price, in order per symbol: the points count up 1, 2, 3… per symbol.
      assert.equal(outputs.length, good.length, 'one output per good price, nothing for the poison');
      const perSymbol = new Map<string, number[]>();
      for (const r of outputs) {
        const { symbol, points } = JSON.parse(r.value) as { symbol: string; points: number };
        perSymbol.set(symbol, [...(perSymbol.get(symbol) ?? []), points]);
      }
      const expected = new Map<string, number>();
      for (const r of good) expected.set(String(r.key), (expected.get(String(r.key)) ?? 0) + 1);
      assert.deepEqual(new Map([...perSymbol].map(([s, points]) => [s, points.length])), expected);
      for (const points of perSymbol.values()) assert.deepEqual(points, points.map((_, i) => Math.min(i + 1, 100)));
      return null;
    },
  },
  {
    name: 'aggregate stocks',
    command: ['aggregate', 'stocks'],
    pipeline: 'aggregate-stocks',
    bounded: null,
    database: true,
    roles: [],
    good: stocks,
    poison: (bytes) => ({ key: 'poison', value: padded({ tickers: [{ name: 'POISON', price: 1 }], ts: new Date(STOCKS_START + 1000).toISOString() }, bytes) }),
    args: (t) => ['--input', t.input, '--dead-letter-topic', t.deadLetters, '--group', t.group, '--database-url', t.db!.url],
    serviceArgs: ['--idle-timeout', '1s'],
    processed: async (_log, t, good) => {
      const { rows } = await t.db!.admin(`SELECT ticker, sum(sample_count)::int AS n FROM ${t.db!.schema}.stock_windows GROUP BY ticker ORDER BY ticker`);
      const open = await t.db!.admin(`SELECT count(*)::int AS n FROM ${t.db!.schema}.stock_window_state`);
      const expected = new Map<string, number>();
      for (const r of good) expected.set(String(r.key), (expected.get(String(r.key)) ?? 0) + 1);
      const stored = new Map(rows.map((r: { ticker: string; n: number }) => [r.ticker, r.n]));
      const total = [...stored.values()].reduce((a, b) => a + b, 0);
      if (total < good.length || open.rows[0].n > 0) return `${total} of ${good.length} samples in closed windows, ${open.rows[0].n} windows open`;
      assert.deepEqual(stored, new Map([...expected].sort(([a], [b]) => (a < b ? -1 : 1))), 'every good sample in a window once, none of the poison');
      return null;
    },
  },
  {
    name: 'archive',
    command: ['archive'],
    bounded: '--until-end',
    database: true,
    roles: [],
    good: prices,
    poison: (bytes) => ({ key: 'poison', value: padded({ ts: '2026-01-05 10:00:00', symbol: 'POISON', price: 1 }, bytes) }),
    args: (t) => ['--input', t.input, '--dead-letter-topic', t.deadLetters, '--group', t.group, '--database-url', t.db!.url, '--max-record-bytes', '1048576'],
    processed: async (_log, t, good) => {
      const { rows } = await t.db!.admin(`SELECT key, value FROM ${t.db!.schema}.archived_messages WHERE topic = $1`, [t.input]);
      if (rows.length < good.length) return `${rows.length} of ${good.length} archived`;
      const archived = rows.map((r: { key: Buffer; value: Buffer }) => `${r.key.toString()} ${r.value.toString()}`).sort();
      assert.deepEqual(archived, good.map((r) => `${String(r.key)} ${String(r.value)}`).sort(), 'every good record byte for byte, once; not the poison');
      return null;
    },
  },
];

describe('poison records on real Kafka', () => {
  let log: KafkaLog;
  before(() => {
    // The test's own producer must send a 5 MB record in one request.
    log = new KafkaLog({ brokers: KAFKA_BROKERS, maxRequestBytes: 16 << 20 });
  });
  after(async () => {
    await log.close();
  });

  for (const c of POISON_CASES) {
    it(`${c.name}: a 5 MB record is dead-lettered by reference, every good record processed, bounded and as a service`, async () => {
      const input = unique(`poison-${c.name.replace(' ', '-')}`);
      await log.createTopics([{ name: input, partitions: 3, configs: { 'max.message.bytes': TEN_MB } }]);
      const good = c.good(GOOD);
      const poison = c.poison(POISON_BYTES);
      const producer = log.producer();
      await producer.send(input, good.slice(0, GOOD / 2));
      await producer.send(input, [poison]);
      await producer.send(input, good.slice(GOOD / 2));
      await producer.close();
      const stored = (await readAll(log, input)).filter((r) => r.key === String(poison.key));
      assert.equal(stored.length, 1);
      assert.equal(stored[0]!.value.length, POISON_BYTES, 'the broker holds the 5 MB record');
      const ends = new Map((await log.offsets(input)).map((p) => [p.partition, p.latest]));

      const name = c.name.replace(' ', '-');
      const schemas: IsolatedDatabase[] = [];
      const topicsFor = async (run: string): Promise<RunTopics> => {
        const db = c.database ? await isolatedDatabase(`poison_${run}`) : undefined;
        if (db) schemas.push(db);
        return {
          input,
          deadLetters: unique(`poison-${name}-${run}-dlq`),
          other: Object.fromEntries(c.roles.map((role) => [role, unique(`poison-${name}-${run}-${role}`)])),
          group: unique(`poison-${name}-${run}`),
          db,
        };
      };
      /** The next offsets the run has committed: in its PostgreSQL schema, or in its consumer group. */
      const committedOf = async (t: RunTopics): Promise<Map<number, bigint>> => {
        if (!t.db) return log.committed(t.group, input);
        const { rows } = await t.db.admin(`SELECT partition, next_offset FROM ${t.db.schema}.stored_offsets WHERE consumer = $1 AND topic = $2`, [t.group, input]);
        return new Map(rows.map((r: { partition: number; next_offset: string }) => [r.partition, BigInt(r.next_offset)]));
      };
      const pipeline = c.pipeline ?? c.name;

      try {
        if (c.bounded) {
          const bounded = await topicsFor('bounded');
          const result = await cli([...c.command, c.bounded, ...c.args(bounded), ...BROKERS]);
          assert.equal(result.code, 0, result.stderr);
          assert.equal(await c.processed(log, bounded, good), null, 'a bounded run processes every good record');
          checkReference(await readAll(log, bounded.deadLetters), stored[0]!, input, pipeline);
        }

        // Service: it must read past the poison, process what follows and commit past it.
        const service = await topicsFor('service');
        const running = startCli([...c.command, ...c.args(service), ...(c.serviceArgs ?? []), ...BROKERS]);
        try {
          await eventually(async () => {
            const missing = await c.processed(log, service, good);
            const committed = await committedOf(service);
            const behind = [...ends].filter(([p, end]) => (committed.get(p) ?? -1n) < end);
            return missing ?? (behind.length > 0 ? `behind on partitions ${behind.map(([p]) => p).join(',')}` : null);
          }, running);
        } finally {
          const stopped = await running.stop();
          assert.equal(stopped.code, 0, stopped.stderr);
        }
        checkReference(await readAll(log, service.deadLetters), stored[0]!, input, pipeline);
      } finally {
        for (const db of schemas) await db.drop();
      }
    });
  }
});

describe('dead-letter limits on real Kafka', () => {
  let log: KafkaLog;
  before(() => {
    log = new KafkaLog({ brokers: KAFKA_BROKERS, maxRequestBytes: 16 << 20 });
  });
  after(async () => {
    await log.close();
  });

  it('a topic with Kafka\'s default max.message.bytes takes a dead letter of exactly DEFAULT_DEAD_LETTER_LIMIT bytes, not one more', async () => {
    const topic = unique('dlq-limit');
    await log.createTopics([{ name: topic, partitions: 1 }]);
    const producer = log.producer();
    try {
      const headers = { 'x-reason': 'not-json' };
      const sized = (bytes: number): RecordToProduce => {
        const record: RecordToProduce = { key: 'k', value: Buffer.alloc(bytes - 64, 0x61), headers };
        const value = Buffer.alloc((record.value as Buffer).length + bytes - recordBytes(record), 0x61);
        const exact = { ...record, value };
        assert.equal(recordBytes(exact), bytes);
        return exact;
      };
      await producer.send(topic, [sized(DEFAULT_DEAD_LETTER_LIMIT)]);
      const refused = await producer.send(topic, [sized(DEFAULT_DEAD_LETTER_LIMIT + 1)]).then(() => null, (error: unknown) => error);
      assert.ok(isMessageTooLarge(refused), `one byte more is refused as MESSAGE_TOO_LARGE: ${String(refused)}`);
    } finally {
      await producer.close();
    }
  });

  it('clean-users falls back to a reference when its dead-letter topic takes less than the default', async () => {
    const input = unique('dlq-small-in');
    const dead = unique('dlq-small');
    await log.createTopics([{ name: input, partitions: 1 }, { name: dead, partitions: 1, configs: { 'max.message.bytes': '100000' } }]);
    const producer = log.producer();
    const large = Buffer.from(JSON.stringify({ id: 7, email: 'no-at-sign', ip_address: '1.2.3.4', date: '2020-01-01', country: 'Peru', note: 'x'.repeat(300_000) }));
    await producer.send(input, [{ key: '7', value: '{"id": 8, "email": "bad"}' }, { key: '7', value: large }, ...users(3)]);
    await producer.close();
    const result = await cli(['clean-users', '--until-end', '--input', input, '--output', unique('dlq-small-out'), '--stats-topic', unique('dlq-small-stats'), '--dead-letter-topic', dead, '--json', ...BROKERS]);
    assert.equal(result.code, 0, result.stderr);
    const letters = await readAll(log, dead);
    assert.deepEqual(letters.map((r) => [r.headers['x-source-offset'], r.headers['x-reason'], r.headers['x-original-reason']]), [['0', 'bad-email', undefined], ['1', 'too-large', 'bad-email']]);
    const reference = JSON.parse(letters[1]!.value) as DeadLetterReference;
    assert.deepEqual([reference.offset, reference.reason, reference.size], ['1', 'bad-email', recordBytes({ key: '7', value: large })]);
    assert.equal(letters[1]!.key, '7');
  });
});

/** Exactly one dead letter: the reference to the poison record. */
function checkReference(letters: ReadRecord[], poison: ReadRecord, input: string, pipeline: string): void {
  assert.equal(letters.length, 1, 'the poison record, once');
  const [letter] = letters;
  assert.deepEqual(letter!.headers, {
    'x-reason': 'too-large',
    'x-original-reason': 'too-large',
    'x-error': `value of ${5 * 1024 * 1024} bytes is over --max-record-bytes 1048576; not parsed`,
    'x-source-topic': input,
    'x-source-partition': String(poison.partition),
    'x-source-offset': String(poison.offset),
    'x-pipeline': pipeline,
  });
  assert.equal(letter!.key, 'poison', 'keyed like the source');
  const reference = JSON.parse(letter!.value) as DeadLetterReference;
  assert.deepEqual(reference, {
    topic: input,
    partition: poison.partition,
    offset: String(poison.offset),
    size: recordBytes({ key: 'poison', value: Buffer.from(poison.value) }),
    reason: 'too-large',
    firstBytes: Buffer.from(poison.value).subarray(0, 1024).toString('base64'),
  });
  assert.ok(Buffer.byteLength(letter!.value) < 2048 && Buffer.byteLength(letter!.value) < DEFAULT_DEAD_LETTER_LIMIT);
}

function cli(args: readonly string[]): Promise<CliResult> {
  return startCli(args).done;
}

interface Running {
  done: Promise<CliResult>;
  exited: () => boolean;
  stop(): Promise<CliResult>;
}

/** Starts the real entry; `stop()` sends SIGINT (graceful shutdown) and waits for the exit. */
function startCli(args: readonly string[]): Running {
  const child = spawn(process.execPath, [BIN, ...args], { env: { ...process.env, LOG_LEVEL: 'warn' }, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  let exited = false;
  child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
  child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
  const timer = setTimeout(() => child.kill('SIGKILL'), 180_000);
  const done = new Promise<CliResult>((resolve, reject) => {
    child.on('error', reject);
    child.on('close', (code) => {
      exited = true;
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
  return {
    done,
    exited: () => exited,
    stop: () => {
      if (!exited) child.kill('SIGINT');
      return done;
    },
  };
}

/** Polls `check` (null = done, else what is missing) until done; fails if the process exits first. */
async function eventually(check: () => Promise<string | null>, running: Running, timeoutMs = 90_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let missing: string | null = 'not checked';
  while (Date.now() < deadline) {
    if (running.exited()) {
      const r = await running.done;
      assert.fail(`the service exited (code ${r.code}) before it was done: ${r.stderr}`);
    }
    // The service creates its output topics and its tables as it starts: until then there is nothing to check.
    missing = await check().catch((error: unknown) => {
      if (isTickflowError(error, 'UNKNOWN_TOPIC')) return `topic ${String(error.details.topic)} not created yet`;
      if ((error as { code?: string }).code === '42P01') return 'tables not created yet';
      throw error;
    });
    if (missing === null) return;
    await new Promise((resolve) => setTimeout(resolve, 500));
  }
  assert.fail(`the service did not get there in ${timeoutMs} ms: ${missing}`);
}
