/**
 * Reads the `volatility` output back and holds it against the reference: every input
 * price has its output (found by the `source` header), every copy of a replayed output
 * is identical, and the values equal the direct windowed formulas.
 */
import assert from 'node:assert/strict';
import type { Log } from '../../src/log/types.ts';
import { readAll } from './fixtures.ts';
import type { PriceTick } from './fixtures.ts';
import { close, referenceEma, referencePoints, referenceVolatility } from './reference.ts';

export interface OutputCheck {
  /** Output records read, duplicates included. */
  records: number;
  /** Distinct input positions covered. */
  distinct: number;
}

export async function checkOutput(log: Log, outputTopic: string, ticks: readonly PriceTick[], walks: ReadonlyMap<string, number[]>, window = 100): Promise<OutputCheck> {
  const records = await readAll(log, outputTopic);
  const bySource = new Map<string, string>();
  for (const record of records) {
    const source = record.headers.find(([name]) => name === 'source')?.[1].toString();
    assert.ok(source, 'every output names its source');
    const value = record.value!.toString();
    const earlier = bySource.get(source);
    if (earlier !== undefined) assert.equal(value, earlier, `a replayed output of ${source} differs from the first`);
    bySource.set(source, value);
    const symbol = JSON.parse(value).symbol;
    assert.equal(record.key!.toString(), symbol, 'keyed by symbol');
  }
  // Per symbol, in input order (one symbol lives on one input partition: order by offset).
  const perSymbol = new Map<string, Array<{ offset: bigint; message: Record<string, unknown> }>>();
  for (const [source, value] of bySource) {
    const message = JSON.parse(value);
    const offset = BigInt(source.split('/').at(-1)!);
    const list = perSymbol.get(message.symbol) ?? [];
    list.push({ offset, message });
    perSymbol.set(message.symbol, list);
  }
  const expectedPerSymbol = new Map<string, PriceTick[]>();
  for (const tick of ticks) expectedPerSymbol.set(tick.symbol, [...(expectedPerSymbol.get(tick.symbol) ?? []), tick]);
  assert.deepEqual([...perSymbol.keys()].sort(), [...expectedPerSymbol.keys()].sort());
  for (const [symbol, list] of perSymbol) {
    list.sort((a, b) => (a.offset < b.offset ? -1 : a.offset > b.offset ? 1 : 0));
    const expected = expectedPerSymbol.get(symbol)!;
    assert.equal(list.length, expected.length, `${symbol}: one output per input price`);
    const prices = walks.get(symbol)!;
    list.forEach(({ message }, i) => {
      assert.equal(message.ts, expected[i].ts, `${symbol} #${i} ts`);
      assert.equal(message.price, prices[i], `${symbol} #${i} price`);
      assert.equal(message.points, referencePoints(window, i), `${symbol} #${i} points`);
      assert.ok(close(message.ema as number, referenceEma(prices, window, i), 1e-12), `${symbol} #${i} ema ${message.ema}`);
      assert.ok(close(message.volatility as number | null, referenceVolatility(prices, window, i), 1e-9), `${symbol} #${i} volatility ${message.volatility}`);
    });
  }
  return { records: records.length, distinct: bySource.size };
}
