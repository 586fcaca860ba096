/**
 * indicators (the service) under each fault: the leader of a partition it reads killed,
 * PostgreSQL restarted, PostgreSQL's postmaster killed. Every input price has its output —
 * the same values as a recomputation here (EMA by its recurrence, volatility straight from
 * its window); a replayed output (at least once) is an identical copy — and the state
 * committed with the offsets accounts for every price once.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { forEachMessageIndependently } from '../helpers/independent-reader.ts';
import { BROKERS_FLAG, FAULT_BROKERS, createTopics, deleteTopics } from './cluster.ts';
import { FaultRun, KAFKA_LEADER_KILL, PG_KILL, PG_RESTART, killLeader, killPostgres, restartPostgres } from './fault-run.ts';
import { accounting, committedOffsets, freshDatabase, suitePostgres, unique } from './suite.ts';
import { tickflow } from './tickflow-process.ts';

const COUNT = 400_000;
const WINDOW = 100;

interface Expected {
  ts: string;
  price: number;
  ema: number;
  volatility: number | null;
  points: number;
}

/** Per symbol, in input order: EMA (mean of the points so far up to WINDOW, then the recurrence) and the sample stddev of the log returns in the last WINDOW prices. */
function recompute(prices: ReadonlyArray<{ ts: string; price: number }>): Expected[] {
  const alpha = 2 / (WINDOW + 1);
  let ema = 0;
  let sum = 0;
  return prices.map(({ ts, price }, i) => {
    if (i < WINDOW) {
      sum += price;
      ema = sum / (i + 1);
    } else {
      ema = alpha * price + (1 - alpha) * ema;
    }
    const returns: number[] = [];
    for (let k = Math.max(1, i - WINDOW + 2); k <= i; k++) returns.push(Math.log(prices[k].price / prices[k - 1].price));
    let volatility: number | null = null;
    if (returns.length >= 2) {
      const mean = returns.reduce((a, b) => a + b, 0) / returns.length;
      volatility = Math.sqrt(returns.reduce((a, r) => a + (r - mean) ** 2, 0) / (returns.length - 1));
    }
    return { ts, price, ema, volatility, points: Math.min(i + 1, WINDOW) };
  });
}

const close = (a: number | null, b: number | null) => (a === null || b === null ? a === b : Math.abs(a - b) <= 1e-9 * Math.max(Math.abs(a), Math.abs(b), 1e-12));

describe('fault: indicators', () => {
  const input = unique('indicators-in');
  const expected = new Map<string, Expected[]>();
  before(async () => {
    await createTopics([input]);
    const produced = await tickflow(['produce', 'prices', '--output', input, '-n', String(COUNT), '--seed', 'faults-indicators', ...BROKERS_FLAG]);
    assert.equal(produced.code, 0, produced.stderr);
    const bySymbol = new Map<string, Array<{ ts: string; price: number }>>();
    await forEachMessageIndependently(FAULT_BROKERS, input, (m) => {
      const { ts, symbol, price } = JSON.parse(m.value!) as { ts: string; symbol: string; price: number };
      let list = bySymbol.get(symbol);
      if (!list) bySymbol.set(symbol, (list = []));
      list.push({ ts, price });
    });
    for (const [symbol, prices] of bySymbol) expected.set(symbol, recompute(prices));
  });
  const created: string[] = [input];
  after(() => deleteTopics(created));

  const faults = [
    { fault: KAFKA_LEADER_KILL, inject: () => killLeader(input, 0) },
    { fault: PG_RESTART, inject: () => restartPostgres(suitePostgres()) },
    { fault: PG_KILL, inject: () => killPostgres(suitePostgres()) },
  ];
  for (const { fault, inject } of faults) {
    it(`${fault} 1 s in: every price's indicators as recomputed, state and accounting exact`, async () => {
      const run = new FaultRun('indicators', fault);
      try {
        const output = unique('indicators-out');
        const deadLetters = unique('indicators-dead');
        created.push(output, deadLetters);
        await createTopics([output, deadLetters]);
        const url = await freshDatabase('indicators');
        const group = unique('indicators');
        await run.start('indicators', ['indicators', '--input', input, '--output', output, '--dead-letter-topic', deadLetters, '--group', group, '--points', String(WINDOW),
          '--database-url', url, ...BROKERS_FLAG]);
        const progress = committedOffsets(url, group);
        run.watch(progress);
        await run.strike(inject, { total: COUNT });
        await run.waitUntil(async () => (await progress()) === COUNT, `all ${COUNT} offsets committed`);
        await run.stopAll();
        await run.verify(async () => {
          const outputs = new Map<string, string>();
          let copies = 0;
          const differing: string[] = [];
          await forEachMessageIndependently(FAULT_BROKERS, output, (m) => {
            const { symbol, seq } = JSON.parse(m.value!) as { symbol: string; seq: number };
            const key = `${symbol}/${seq}`;
            const earlier = outputs.get(key);
            if (earlier === undefined) outputs.set(key, m.value!);
            else if (earlier === m.value) copies++;
            else differing.push(key);
          });
          assert.deepEqual(differing, [], 'a replayed output is an identical copy');
          assert.equal(outputs.size, COUNT, 'one distinct output per input price');
          let wrong = 0;
          let firstWrong = '';
          for (const [symbol, list] of expected) {
            list.forEach((e, i) => {
              const text = outputs.get(`${symbol}/${i + 1}`);
              const got = text === undefined ? null : (JSON.parse(text) as Expected);
              if (!got || got.ts !== e.ts || got.price !== e.price || got.points !== e.points || !close(got.ema, e.ema) || !close(got.volatility, e.volatility)) {
                if (wrong++ === 0) firstWrong = `${symbol} #${i + 1}: ${text} vs ${JSON.stringify(e)}`;
              }
            });
          }
          assert.equal(wrong, 0, `outputs equal the recomputation (first difference: ${firstWrong})`);
          assert.deepEqual(await accounting(url, group), { accepted: COUNT, invalid: 0, late: 0, dropped: 0 }, 'each price accounted for once');
          if (copies > 0) run.observe(`${copies} outputs sent twice (at least once, identical)`);
        });
      } finally {
        await run.finish();
      }
    });
  }
});
