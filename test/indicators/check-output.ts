/**
 * Reads the `volatility` output back and holds it against the reference: every input
 * price has its output (found by symbol and `seq`), every copy of a replayed output is
 * identical, and the values equal the direct windowed formulas.
 */
import assert from 'node:assert/strict';
import type { Log, LogRecord } from '../../src/log/types.ts';
import { readAll } from './fixtures.ts';
import type { PriceTick } from './fixtures.ts';
import { close, referenceEma, referencePoints, referenceVolatility } from './reference.ts';

export interface OutputCheck {
  /** Output records read, duplicates included. */
  records: number;
  /** Distinct (symbol, seq) covered. */
  distinct: number;
}

/** symbol/seq → the output's JSON text; throws if two copies differ. */
export function outputsByKey(records: readonly LogRecord[]): Map<string, string> {
  const byKey = new Map<string, string>();
  for (const record of records) {
    const value = record.value!.toString();
    const { symbol, seq } = JSON.parse(value);
    assert.equal(record.key!.toString(), symbol, 'keyed by symbol');
    const key = `${symbol}/${seq}`;
    const earlier = byKey.get(key);
    if (earlier !== undefined) assert.equal(value, earlier, `a replayed output of ${key} differs from the first`);
    byKey.set(key, value);
  }
  return byKey;
}

export async function distinctOutputs(log: Log, topic: string): Promise<number> {
  return outputsByKey(await readAll(log, topic).catch(() => [])).size;
}

export async function checkOutput(log: Log, outputTopic: string, ticks: readonly PriceTick[], walks: ReadonlyMap<string, number[]>, window = 100): Promise<OutputCheck> {
  const records = await readAll(log, outputTopic);
  const byKey = outputsByKey(records);
  const expectedPerSymbol = new Map<string, PriceTick[]>();
  for (const tick of ticks) expectedPerSymbol.set(tick.symbol, [...(expectedPerSymbol.get(tick.symbol) ?? []), tick]);
  assert.equal(byKey.size, ticks.length, 'one distinct output per input price');
  for (const [symbol, expected] of expectedPerSymbol) {
    const prices = walks.get(symbol)!;
    expected.forEach((tick, i) => {
      const text = byKey.get(`${symbol}/${i + 1}`);
      assert.ok(text, `${symbol} #${i} has its output`);
      const message = JSON.parse(text);
      assert.equal(message.ts, tick.ts, `${symbol} #${i} ts`);
      assert.equal(message.price, prices[i], `${symbol} #${i} price`);
      assert.equal(message.points, referencePoints(window, i), `${symbol} #${i} points`);
      assert.ok(close(message.ema, referenceEma(prices, window, i), 1e-12), `${symbol} #${i} ema ${message.ema}`);
      assert.ok(close(message.volatility, referenceVolatility(prices, window, i), 1e-9), `${symbol} #${i} volatility ${message.volatility}`);
    });
  }
  // Output order per symbol is input order (one symbol, one output partition, one producer).
  const seqs = new Map<string, number>();
  for (const record of records) {
    const { symbol, seq } = JSON.parse(record.value!.toString());
    const last = seqs.get(symbol) ?? 0;
    assert.ok(seq === last + 1 || seq <= last, `${symbol}: seq ${seq} after ${last} skips prices`);
    seqs.set(symbol, Math.max(last, seq));
  }
  return { records: records.length, distinct: byKey.size };
}
