/**
 * The user sketch store on real PostgreSQL and on PGlite: minutes round-trip byte for byte,
 * rollups (quarter hours, hours, 3-hour blocks, days) hold exactly the registers of a sketch fed all their minutes' users
 * (recomputed here from the raw uids, not from the stored sketches), writes are idempotent
 * whatever their grouping, a replaced minute leaves no trace in its rollups, and a write in
 * a transaction that rolls back leaves nothing.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { BoundedDistinct, ExactDistinct, HyperLogLog } from '../../src/core/hyperloglog.ts';
import type { DistinctCounter } from '../../src/core/hyperloglog.ts';
import { seededRandom } from '../../src/core/random.ts';
import { decodeSketch } from '../../src/core/sketch-bytes.ts';
import { ROLLUP_SPANS, SKETCH_SPANS } from '../../src/core/user-ranges.ts';
import type { StoredSketch } from '../../src/core/user-ranges.ts';
import { minuteSketchRow } from '../../src/core/user-sketches.ts';
import type { MinuteSketchRow } from '../../src/core/user-sketches.ts';
import type { Database } from '../../src/db/types.ts';
import { readUserSketches, saveUserMinutes, writeUserMinutes } from '../../src/db/user-sketch-store.ts';
import { allBackends } from './backends.ts';

const T0 = Date.parse('2024-05-01T22:50:00Z') / 1000; // 70 minutes before 2024-05-02T00:00Z
const ALL = SKETCH_SPANS.map((seconds) => ({ seconds, start: -1e12, end: 1e12 }));

interface Minute {
  start: number;
  users: string[];
  row: MinuteSketchRow;
}

/** Minutes from T0, some skipped, users overlapping from one minute to the next; exact, bounded-switched and --approx counters. */
function minutes(count: number, seed: string): Minute[] {
  const random = seededRandom(seed);
  const out: Minute[] = [];
  for (let i = 0; i < count; i++) {
    if (i % 7 === 3) continue; // minutes without data
    const users = Array.from({ length: random.int(1, 400) }, () => `user-${random.int(0, 5_000 + i * 20)}`);
    const kind = i % 5;
    const counter: DistinctCounter = kind === 0 ? new HyperLogLog(14) : kind === 1 ? new BoundedDistinct(2048) : new ExactDistinct();
    for (const u of users) counter.add(u);
    const start = T0 + i * 60;
    out.push({ start, users, row: minuteSketchRow({ start, frames: users.length, late: i % 3 }, counter) });
  }
  return out;
}

/** The registers of a precision-12 sketch fed these users: what a rollup of their minutes must hold. */
function registersOf(users: Iterable<string>): Uint8Array {
  const sketch = new HyperLogLog(12);
  for (const u of users) sketch.add(u);
  return sketch.registers;
}

function expectedRollups(data: readonly Minute[], seconds: number): Map<number, { minutes: number; frames: number; late: number; exactUsers: number | null; registers: Uint8Array }> {
  const groups = new Map<number, Minute[]>();
  for (const m of data) {
    const start = Math.floor(m.start / seconds) * seconds;
    groups.set(start, [...(groups.get(start) ?? []), m]);
  }
  return new Map([...groups].map(([start, group]) => [start, {
    minutes: group.length,
    frames: group.reduce((n, m) => n + m.row.frames, 0),
    late: group.reduce((n, m) => n + m.row.late, 0),
    exactUsers: group.length === 1 ? group[0].row.exactUsers : null,
    registers: registersOf(group.flatMap((m) => m.users)),
  }]));
}

async function stored(db: Database): Promise<StoredSketch[]> {
  return (await readUserSketches(db, ALL)).sort((a, b) => a.seconds - b.seconds || a.start - b.start);
}

function assertRollups(rows: readonly StoredSketch[], data: readonly Minute[]): void {
  for (const seconds of ROLLUP_SPANS) {
    const expected = expectedRollups(data, seconds);
    const actual = rows.filter((r) => r.seconds === seconds);
    assert.deepEqual(actual.map((r) => r.start), [...expected.keys()].sort((a, b) => a - b), `the ${seconds} s rollups`);
    for (const r of actual) {
      const e = expected.get(r.start)!;
      assert.deepEqual([r.minutes, r.frames, r.late, r.exactUsers], [e.minutes, e.frames, e.late, e.exactUsers], `rollup ${seconds} s at ${r.start}`);
      assert.deepEqual(decodeSketch(r.sketch).registers, e.registers, `rollup ${seconds} s at ${r.start}: the registers of all its users`);
    }
  }
}

for (const backend of allBackends()) {
  describe(`user sketch store: ${backend.name}`, () => {
    let db: Database;
    before(async () => {
      db = await backend.open();
    });
    after(async () => {
      await db?.close();
      await backend.cleanup();
    });
    const clear = () => db.query('TRUNCATE user_minute_sketches, user_sketch_rollups');

    it('minutes round-trip byte for byte; every rollup holds the registers of all its users', async () => {
      await clear();
      const data = minutes(150, 'round-trip');
      await saveUserMinutes(db, data.map((m) => m.row));
      const rows = await stored(db);
      const minuteRows = rows.filter((r) => r.seconds === 60);
      assert.equal(minuteRows.length, data.length);
      for (const [i, r] of minuteRows.entries()) {
        const m = data[i];
        assert.deepEqual({ ...r, sketch: Buffer.from(r.sketch) }, { seconds: 60, start: m.start, minutes: 1, frames: m.row.frames, late: m.row.late, exactUsers: m.row.exactUsers, sketch: Buffer.from(m.row.sketch) });
      }
      assert.ok(data.some((m) => m.row.exactUsers === null) && data.some((m) => m.row.exactUsers !== null), 'both kinds of minute');
      assert.deepEqual(ROLLUP_SPANS.map((span) => rows.filter((r) => r.seconds === span).length), [11, 4, 2, 2], 'quarters 22:45 to 01:15, hours 22:00 to 01:00, blocks 21:00 and 00:00, two days');
      assertRollups(rows, data);
    });

    it('idempotent: the same minutes again, one by one or in other groupings, leave the same rows', async () => {
      await clear();
      const data = minutes(150, 'idempotent');
      await saveUserMinutes(db, data.map((m) => m.row));
      const once = await stored(db);
      await saveUserMinutes(db, data.map((m) => m.row));
      for (const m of [...data].reverse().slice(0, 40)) await saveUserMinutes(db, [m.row]);
      for (let i = 0; i < data.length; i += 17) await saveUserMinutes(db, data.slice(i, i + 17).map((m) => m.row));
      const again = await stored(db);
      assert.deepEqual(again.map((r) => ({ ...r, sketch: Buffer.from(r.sketch) })), once.map((r) => ({ ...r, sketch: Buffer.from(r.sketch) })));

      await clear();
      for (let i = data.length - 1; i >= 0; i--) await db.transaction((tx) => writeUserMinutes(tx, [data[i].row]));
      assertRollups(await stored(db), data);
    });

    it('a minute written again replaces the stored one, and no rollup holds its old users any more', async () => {
      await clear();
      const data = minutes(90, 'replace');
      await saveUserMinutes(db, data.map((m) => m.row));
      const target = data.find((m) => m.row.exactUsers !== null && m.users.length > 50)!;
      const exact = new ExactDistinct();
      exact.add('only-one');
      const replaced = { start: target.start, users: ['only-one'], row: minuteSketchRow({ start: target.start, frames: 1, late: 0 }, exact) };
      await saveUserMinutes(db, [replaced.row]);
      const now = data.map((m) => (m === target ? replaced : m));
      const rows = await stored(db);
      assert.deepEqual(rows.find((r) => r.seconds === 60 && r.start === target.start)?.exactUsers, 1);
      assertRollups(rows, now);
    });

    it('the same minute twice in one batch: the last one wins', async () => {
      await clear();
      const [a, b] = minutes(2, 'twice');
      const second = { ...b.row, start: a.start };
      await saveUserMinutes(db, [a.row, second]);
      const rows = await stored(db);
      assert.deepEqual(rows.filter((r) => r.seconds === 60).map((r) => Buffer.from(r.sketch)), [Buffer.from(second.sketch)]);
      assertRollups(rows, [{ start: a.start, users: b.users, row: second }]);
    });

    it('inside the caller\'s transaction: a rollback leaves no minute and no rollup', async () => {
      await clear();
      const data = minutes(10, 'rollback');
      await assert.rejects(db.transaction(async (tx) => {
        await writeUserMinutes(tx, data.map((m) => m.row));
        assert.equal((await tx.query<{ n: string }>('SELECT count(*) AS n FROM user_minute_sketches')).rows[0].n, String(data.length));
        throw new Error('the pipeline\'s commit failed');
      }), /the pipeline's commit failed/);
      assert.deepEqual(await stored(db), []);
    });

    it('refuses a minute that is not one, before writing anything', async () => {
      await clear();
      const [good] = minutes(1, 'bad');
      await assert.rejects(saveUserMinutes(db, [good.row, { ...good.row, start: good.row.start + 61 }]), /a minute starts at a multiple of 60 unix seconds, got 1714603861/);
      await assert.rejects(saveUserMinutes(db, [{ ...good.row, frames: -2 }]), /frames must be an integer >= 0, got -2/);
      await assert.rejects(saveUserMinutes(db, [{ ...good.row, sketch: Uint8Array.of(9, 12, 1, 0) }]), /format version 9/);
      assert.deepEqual(await stored(db), []);
    });

    it('reads only the rows whose start lies in the ranges asked for', async () => {
      await clear();
      const data = minutes(150, 'ranges');
      await saveUserMinutes(db, data.map((m) => m.row));
      const day = Date.parse('2024-05-02T00:00:00Z') / 1000;
      const rows = await readUserSketches(db, [
        { seconds: 60, start: T0, end: T0 + 600 },
        { seconds: 60, start: day + 3600, end: day + 3600 + 120 },
        { seconds: 900, start: day - 900, end: day },
        { seconds: 3600, start: day - 3600, end: day },
        { seconds: 10800, start: day, end: day + 10800 },
        { seconds: 86400, start: day, end: day + 86400 },
      ]);
      const keys = rows.map((r) => `${r.seconds}@${r.start}`).sort();
      const expected = [
        ...data.filter((m) => (m.start >= T0 && m.start < T0 + 600) || (m.start >= day + 3600 && m.start < day + 3720)).map((m) => `60@${m.start}`),
        `900@${day - 900}`,
        `3600@${day - 3600}`,
        `10800@${day}`,
        `86400@${day}`,
      ].sort();
      assert.deepEqual(keys, expected);
      assert.deepEqual(await readUserSketches(db, []), []);
    });
  });
}
