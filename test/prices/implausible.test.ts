/**
 * Bad values and timestamps in prices, through `stats` and `indicators` on the real Kafka
 * and PostgreSQL: 1e300, 1e-300, 0, −1, "NaN" strings, a bare NaN token, year 2999, epoch
 * seconds where milliseconds belong, among good prices whose ts come in every layout
 * ordinary producers write (six-digit fractions first of all). Every record must be
 * accounted for exactly once, and the results must equal a recomputation done here with
 * plain arithmetic over the records the test knows to be good.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { seededRandom } from '../../src/core/random.ts';
import { KafkaLog } from '../../src/log/kafka.ts';
import { tickflow } from '../helpers/cli.ts';
import { KAFKA_BROKERS } from '../helpers/env.ts';
import { readTopicIndependently } from '../helpers/independent-reader.ts';
import { privateSchema, readAll, uniqueName } from '../indicators/fixtures.ts';
import type { PrivateSchema } from '../indicators/fixtures.ts';
import { close, referenceEma, referenceVolatility } from '../indicators/reference.ts';

const SYMBOLS = ['AAPL', 'MSFT', 'GOOG', 'TSLA'];
const START = Date.UTC(2026, 10, 30, 19, 31, 43, 15);
const pad = (n: number, w = 2) => String(n).padStart(w, '0');

/** `ts` in one of the layouts producers write, for an instant (all name the same millisecond). */
function layout(ms: number, which: number): string | number {
  const d = new Date(ms);
  const day = `${d.getUTCFullYear()}-${pad(d.getUTCMonth() + 1)}-${pad(d.getUTCDate())}`;
  const time = `${pad(d.getUTCHours())}:${pad(d.getUTCMinutes())}:${pad(d.getUTCSeconds())}`;
  const millis = pad(d.getUTCMilliseconds(), 3);
  switch (which % 5) {
    case 0:
    case 1:
      return `${day} ${time}.${millis}327`; // Python str(datetime.now()): six digits
    case 2:
      return d.toISOString(); // JavaScript: T, three digits, Z
    case 3: {
      const local = new Date(ms + 3_600_000);
      return `${local.toISOString().slice(0, 19)}.${millis}000000+01:00`; // nine digits, an offset
    }
    default:
      return ms; // epoch milliseconds
  }
}

interface Good {
  symbol: string;
  ms: number;
  price: number;
  ts: string | number;
  value: string;
}

interface Bad {
  symbol: string;
  value: string;
  reason: string;
  /** Counted by stats as invalid (malformed) or implausible. */
  kind: 'invalid' | 'implausible';
}

function dataset(): { records: Array<{ key: string; value: string }>; good: Good[]; bad: Bad[] } {
  const random = seededRandom('implausible');
  const levels = new Map(SYMBOLS.map((s, i) => [s, 50 + 120 * i]));
  const good: Good[] = [];
  const bad: Bad[] = [];
  const records: Array<{ key: string; value: string }> = [];
  const badMakers: Array<(symbol: string, ms: number) => Bad> = [
    (symbol, ms) => ({ symbol, reason: 'implausible-price', kind: 'implausible', value: `{"ts":"${layout(ms, 0)}","symbol":"${symbol}","price":1e300}` }),
    (symbol, ms) => ({ symbol, reason: 'implausible-price', kind: 'implausible', value: `{"ts":"${layout(ms, 0)}","symbol":"${symbol}","price":1e-300}` }),
    (symbol, ms) => ({ symbol, reason: 'bad-price', kind: 'invalid', value: `{"ts":"${layout(ms, 0)}","symbol":"${symbol}","price":0}` }),
    (symbol, ms) => ({ symbol, reason: 'bad-price', kind: 'invalid', value: `{"ts":"${layout(ms, 0)}","symbol":"${symbol}","price":-1}` }),
    (symbol, ms) => ({ symbol, reason: 'bad-price', kind: 'invalid', value: `{"ts":"${layout(ms, 0)}","symbol":"${symbol}","price":"NaN"}` }),
    (symbol, ms) => ({ symbol, reason: 'not-json', kind: 'invalid', value: `{"ts":"${layout(ms, 0)}","symbol":"${symbol}","price":NaN}` }),
    (symbol, ms) => ({ symbol, reason: 'bad-ts', kind: 'invalid', value: `{"ts":"${layout(ms, 0)}1234","symbol":"${symbol}","price":100}` }), // ten digits
    (symbol) => ({ symbol, reason: 'implausible-time', kind: 'implausible', value: `{"ts":"2999-11-30 19:31:43.015327","symbol":"${symbol}","price":${levels.get(symbol)}}` }),
    (symbol, ms) => ({ symbol, reason: 'implausible-time', kind: 'implausible', value: `{"ts":${Math.floor(ms / 1000)},"symbol":"${symbol}","price":${levels.get(symbol)}}` }), // epoch seconds
  ];
  let nextBad = 0;
  for (let i = 0; i < 2400; i++) {
    const symbol = SYMBOLS[Math.floor(random.next() * SYMBOLS.length)];
    const ms = START + i * 100;
    // Bad records now and then, never two in a row, each kind more than once.
    if (i > 40 && i % 97 === 0) {
      const made = badMakers[nextBad++ % badMakers.length](symbol, ms);
      bad.push(made);
      records.push({ key: symbol, value: made.value });
    }
    const level = Math.max(1, levels.get(symbol)! * Math.exp(random.normal() * 0.002));
    levels.set(symbol, level);
    const price = Math.round(level * 100) / 100;
    const ts = layout(ms, i);
    const value = JSON.stringify({ ts, symbol, price });
    good.push({ symbol, ms, price, ts, value });
    records.push({ key: symbol, value });
  }
  return { records, good, bad };
}

describe('implausible and malformed prices through stats and indicators (real Kafka and PostgreSQL)', () => {
  const topic = uniqueName('prices-implausible');
  const brokers = ['--brokers', KAFKA_BROKERS.join(',')];
  const data = dataset();
  let log: KafkaLog;
  let schema: PrivateSchema;

  before(async () => {
    log = new KafkaLog({ brokers: KAFKA_BROKERS });
    await log.createTopics([{ name: topic, partitions: 3 }]);
    const producer = log.producer();
    await producer.send(topic, data.records);
    await producer.close();
    schema = await privateSchema('implausible_test');
  });
  after(async () => {
    await log.deleteTopics([topic, `${topic}-dlq`, `${topic}-out`]).catch(() => undefined);
    await log.close();
    await schema.drop();
  });

  it('the data holds every kind of bad record, more than once', () => {
    const reasons = new Map<string, number>();
    for (const b of data.bad) reasons.set(b.reason, (reasons.get(b.reason) ?? 0) + 1);
    assert.deepEqual([...reasons.keys()].sort(), ['bad-price', 'bad-ts', 'implausible-price', 'implausible-time', 'not-json']);
    assert.ok([...reasons.values()].every((n) => n >= 2));
  });

  it('stats: each record counted once — the good ones in the statistics (equal to a plain recomputation), the rest apart by reason', async () => {
    const run = await tickflow(['stats', '--input', topic, '--json', ...brokers]);
    assert.equal(run.code, 0, run.stderr);
    const stats = JSON.parse(run.stdout) as {
      count: number;
      symbols: Array<{ symbol: string; count: number; min: number; max: number; mean: number; stddev: number }>;
      outliers: Array<{ ts: string; symbol: string; price: number }>;
      invalid: number;
      invalidReasons: Record<string, number>;
      implausible: number;
      implausibleReasons: Record<string, number>;
    };
    const messages = await readTopicIndependently(KAFKA_BROKERS, topic);
    assert.equal(stats.count, messages.length);
    const tally = (kind: Bad['kind']) => {
      const out: Record<string, number> = {};
      for (const b of data.bad) if (b.kind === kind) out[b.reason] = (out[b.reason] ?? 0) + 1;
      return out;
    };
    assert.deepEqual(stats.invalidReasons, tally('invalid'));
    assert.deepEqual(stats.implausibleReasons, tally('implausible'));
    assert.equal(stats.count, data.good.length + stats.invalid + stats.implausible, 'every record accounted for once');

    // The recomputation: plain two-pass mean and sample stddev of the good prices only.
    const bySymbol = new Map<string, Good[]>();
    for (const g of data.good) bySymbol.set(g.symbol, [...(bySymbol.get(g.symbol) ?? []), g]);
    const outliers: Array<{ ts: string; symbol: string; price: number }> = [];
    for (const symbol of [...bySymbol.keys()].sort()) {
      const prices = bySymbol.get(symbol)!.map((g) => g.price);
      const mean = prices.reduce((a, b) => a + b, 0) / prices.length;
      const stddev = Math.sqrt(prices.reduce((a, p) => a + (p - mean) ** 2, 0) / (prices.length - 1));
      const actual = stats.symbols.find((s) => s.symbol === symbol)!;
      assert.deepEqual([actual.count, actual.min, actual.max], [prices.length, Math.min(...prices), Math.max(...prices)], symbol);
      assert.ok(Math.abs(actual.mean - mean) <= 1e-9 * mean && Math.abs(actual.stddev - stddev) <= 1e-9 * stddev, `${symbol} mean/stddev`);
      for (const g of bySymbol.get(symbol)!) {
        if (Math.abs(g.price - mean) > 3 * stddev) outliers.push({ ts: new Date(g.ms).toISOString().replace('T', ' ').slice(0, 23), symbol, price: g.price });
      }
    }
    assert.equal(stats.symbols.length, SYMBOLS.length);
    outliers.sort((a, b) => a.ts.localeCompare(b.ts) || a.symbol.localeCompare(b.symbol));
    assert.deepEqual(stats.outliers, outliers);

    const twoPasses = await tickflow(['stats', '--input', topic, '--json', '--memory-budget', '0', ...brokers]);
    assert.equal(twoPasses.stdout, run.stdout, 'the second pass decides exactly like the first');
    const human = await tickflow(['stats', '--input', topic, ...brokers]);
    assert.match(human.stdout, new RegExp(`implausible messages \\(well-formed, in no statistic above\\): ${stats.implausible}`));
    assert.match(human.stdout, /implausible-price/);
    assert.match(human.stdout, /years (ahead of|behind) the partition's stream time/);
  });

  it('indicators: the good prices get their EMA and volatility (equal to the reference), every bad one is dead-lettered with its reason, the accounting adds up', async () => {
    const group = uniqueName('indicators-implausible');
    const run = await tickflow([
      'indicators', '--input', topic, '--output', `${topic}-out`, '--dead-letter-topic', `${topic}-dlq`, '--group', group,
      '--until-end', '--json', ...brokers, '--database-url', schema.url,
    ]);
    assert.equal(run.code, 0, run.stderr);
    assert.deepEqual(JSON.parse(run.stdout), { read: data.records.length, published: data.good.length, deadLettered: data.bad.length });

    // Outputs: per symbol, the good prices in order, with the reference indicators over them only.
    const outputs = (await readAll(log, `${topic}-out`)).map((r) => JSON.parse(r.value!.toString()) as { symbol: string; ts: string | number; price: number; ema: number; volatility: number | null; seq: number });
    for (const symbol of SYMBOLS) {
      const expected = data.good.filter((g) => g.symbol === symbol);
      const got = outputs.filter((o) => o.symbol === symbol).sort((a, b) => a.seq - b.seq);
      assert.deepEqual(got.map((o) => [o.ts, o.price]), expected.map((g) => [g.ts, g.price]), `${symbol}: ts as it came, the good prices only`);
      const prices = expected.map((g) => g.price);
      got.forEach((o, i) => {
        assert.ok(close(o.ema, referenceEma(prices, 100, i)), `${symbol} ema ${i}`);
        const vol = referenceVolatility(prices, 100, i);
        assert.ok(vol === null ? o.volatility === null : close(o.volatility!, vol), `${symbol} volatility ${i}`);
      });
    }

    // Dead letters: exactly the bad records, each with its reason, byte for byte.
    const letters = await readAll(log, `${topic}-dlq`);
    const header = (r: (typeof letters)[number], name: string) => r.headers.find(([n]) => n === name)?.[1].toString();
    assert.deepEqual(
      letters.map((l) => `${header(l, 'x-reason')} ${l.value!.toString()}`).sort(),
      data.bad.map((b) => `${b.reason} ${b.value}`).sort(),
    );
    for (const l of letters.filter((x) => header(x, 'x-reason') === 'implausible-time')) assert.ok(Number.isFinite(Number(header(l, 'x-time-skew-ms'))));
    for (const l of letters.filter((x) => header(x, 'x-reason') === 'implausible-price')) assert.ok(Number(header(l, 'x-reference-price')) > 1);

    const counts = await schema.query<{ accepted: string; invalid: string; late: string }>('SELECT accepted, invalid, late FROM pipeline_counts WHERE consumer = $1', [group]);
    const sum = (field: 'accepted' | 'invalid' | 'late') => counts.reduce((n, c) => n + Number(c[field]), 0);
    assert.deepEqual([sum('accepted'), sum('invalid'), sum('late')], [data.good.length, data.bad.length, 0]);
    assert.equal((await schema.query('SELECT 1 FROM held_records WHERE consumer = $1', [group])).length, 0, 'nothing left held at the end');
  });
});
