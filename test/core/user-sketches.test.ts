import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { BoundedDistinct, ExactDistinct, HyperLogLog } from '../../src/core/hyperloglog.ts';
import { decodeSketch } from '../../src/core/sketch-bytes.ts';
import { MINUTE_SKETCH_PRECISION, minuteSketchRow } from '../../src/core/user-sketches.ts';
import { UniqueUsersWindows } from '../../src/core/unique-users.ts';
import type { DistinctCounter } from '../../src/core/hyperloglog.ts';

const MINUTE = { granularity: 'minute', start: 1_468_244_340, frames: 11_900, late: 64 };
const ids = (n: number, prefix = 'u') => Array.from({ length: n }, (_, i) => `${prefix}${i}`);

/** The registers a sketch of `precision` fed `values` holds: what every row's sketch must equal. */
function reference(precision: number, values: readonly string[]): Uint8Array {
  const sketch = new HyperLogLog(precision);
  for (const value of values) sketch.add(value);
  return sketch.registers;
}

function fill<C extends DistinctCounter>(counter: C, values: readonly string[]): C {
  for (const value of values) counter.add(value);
  return counter;
}

describe('minuteSketchRow: the row a pipeline stores for an emitted minute', () => {
  const users = [...ids(3_000), 'ünïcödé', '用户'];

  it('an exact minute keeps its exact count and a precision-12 sketch of its users', () => {
    const row = minuteSketchRow(MINUTE, fill(new ExactDistinct(), [...users, ...users.slice(0, 500)]));
    assert.equal(row.start, MINUTE.start);
    assert.equal(row.frames, 11_900);
    assert.equal(row.late, 64);
    assert.equal(row.exactUsers, 3_002);
    assert.equal(MINUTE_SKETCH_PRECISION, 12);
    assert.deepEqual(decodeSketch(row.sketch).registers, reference(12, users));
  });

  it('a BoundedDistinct still exact is the same as an ExactDistinct', () => {
    const row = minuteSketchRow(MINUTE, fill(new BoundedDistinct(64 << 20), users));
    assert.equal(row.exactUsers, users.length);
    assert.deepEqual(decodeSketch(row.sketch).registers, reference(12, users));
  });

  it('a BoundedDistinct that switched to a sketch is folded to precision 12, without an exact count', () => {
    const counter = fill(new BoundedDistinct(16 << 10, 14), users);
    assert.equal(counter.approximate, true, 'the budget forced the switch');
    const row = minuteSketchRow(MINUTE, counter);
    assert.equal(row.exactUsers, null);
    assert.deepEqual(decodeSketch(row.sketch).registers, reference(12, users));
  });

  it('a HyperLogLog (--approx) is folded to precision 12; one of a lower precision is kept as it is', () => {
    const at14 = minuteSketchRow(MINUTE, fill(new HyperLogLog(14), users));
    assert.equal(at14.exactUsers, null);
    assert.deepEqual(decodeSketch(at14.sketch).registers, reference(12, users));
    const at10 = minuteSketchRow(MINUTE, fill(new HyperLogLog(10), users));
    assert.equal(decodeSketch(at10.sketch).precision, 10);
    assert.deepEqual(decodeSketch(at10.sketch).registers, reference(10, users));
  });

  it('another precision may be asked for', () => {
    const row = minuteSketchRow(MINUTE, fill(new ExactDistinct(), users), 14);
    assert.deepEqual(decodeSketch(row.sketch).registers, reference(14, users));
  });

  it('an empty minute is a four-byte sketch and zero users', () => {
    const row = minuteSketchRow({ start: 0, frames: 0, late: 3 }, new ExactDistinct());
    assert.deepEqual([...row.sketch], [1, 12, 1, 0]);
    assert.equal(row.exactUsers, 0);
  });

  it('works on the records and counters of the counting core, in the order they are emitted', () => {
    const windows = new UniqueUsersWindows({ allowedLatenessMs: 0, counter: () => new ExactDistinct() });
    const frames: Array<[number, string]> = [[0, 'a'], [10, 'b'], [20, 'a'], [65, 'c'], [70, 'a']];
    for (const [second, uid] of frames) windows.add(0, (MINUTE.start + second) * 1000, uid);
    const records = windows.flush();
    assert.deepEqual(records.map((r) => [r.start, r.uniqueUsers, r.frames]), [[MINUTE.start, 2, 3], [MINUTE.start + 60, 2, 2]]);
    const counters = [fill(new ExactDistinct(), ['a', 'b']), fill(new ExactDistinct(), ['c', 'a'])];
    const rows = records.map((r, i) => minuteSketchRow(r, counters[i]));
    assert.deepEqual(rows.map((r) => [r.start, r.frames, r.late, r.exactUsers]), [[MINUTE.start, 3, 0, 2], [MINUTE.start + 60, 2, 0, 2]]);
  });

  it('refuses what is not a minute, with the reason', () => {
    const exact = new ExactDistinct();
    assert.throws(() => minuteSketchRow({ ...MINUTE, granularity: 'hour' }, exact), /made of a minute record, got granularity "hour"/);
    assert.throws(() => minuteSketchRow({ ...MINUTE, start: MINUTE.start + 1 }, exact), /multiple of 60 unix seconds, got 1468244341/);
    assert.throws(() => minuteSketchRow({ ...MINUTE, frames: -1 }, exact), /frames must be an integer >= 0, got -1/);
    assert.throws(() => minuteSketchRow({ ...MINUTE, late: 0.5 }, exact), /late must be an integer >= 0, got 0.5/);
    const other: DistinctCounter = { add: () => true, addAscii: () => true, count: () => 0, approximate: false };
    assert.throws(() => minuteSketchRow(MINUTE, other), /needs an ExactDistinct, BoundedDistinct or HyperLogLog counter/);
  });
});
