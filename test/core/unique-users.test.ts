import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { BoundedDistinct, ExactDistinct, HyperLogLog } from '../../src/core/hyperloglog.ts';
import { GRANULARITIES } from '../../src/core/calendar-windows.ts';
import { seededRandom } from '../../src/core/random.ts';
import { HELD, UniqueUsersWindows } from '../../src/core/unique-users.ts';
import type { HeldFrameSink, WindowCount } from '../../src/core/unique-users.ts';
import { userTrackerFrames } from '../../src/core/user-tracker-frames.ts';
import { referenceUniqueUsers, referenceWindows, zonedCalendarWindow } from '../users/reference.ts';

const T0 = 1468244340; // 2016-07-11T13:39:00Z, a minute boundary
const s = (seconds: number) => (T0 + seconds) * 1000;

function operator(options: { latenessS?: number } = {}) {
  return new UniqueUsersWindows({ allowedLatenessMs: (options.latenessS ?? 5) * 1000, counter: () => new ExactDistinct() });
}

/** The pipeline's operator: behind an event-time guard of 10 minutes. */
function guarded(sink: HeldFrameSink<string>, latenessS = 5) {
  return new UniqueUsersWindows<string>({ allowedLatenessMs: latenessS * 1000, maxTimeSkewMs: 600_000, counter: () => new ExactDistinct() }, sink);
}

/** Feeds frames through a guarded operator as the pipeline does; what the guard decides later is recorded. */
class GuardedRun {
  readonly released: Array<{ uid: string; verdict: string | null }> = [];
  readonly implausible: Array<{ uid: string; skewMs: number | null }> = [];
  readonly op = guarded({
    released: (uid, _t, verdict) => this.released.push({ uid, verdict: verdict?.reason ?? null }),
    implausible: (uid, _t, skewMs) => this.implausible.push({ uid, skewMs }),
  });

  /** The frame's verdict now: null (counted), 'held', or why it is late. */
  add(partition: number, seconds: number, uid: string, offset?: bigint): string | null {
    const verdict = this.op.add(partition, s(seconds), uid, offset);
    if (verdict === HELD) this.op.hold(partition, s(seconds), uid, offset, uid);
    return verdict?.reason ?? null;
  }
}

const minute = (offset: number, uniqueUsers: number, frames: number, late = 0): WindowCount => ({
  granularity: 'minute',
  window: new Date(s(offset)).toISOString().replace('.000Z', 'Z'),
  minute: new Date(s(offset)).toISOString().replace('.000Z', 'Z'),
  start: T0 + offset,
  end: T0 + offset + 60,
  uniqueUsers,
  frames,
  late,
});

describe('UniqueUsersWindows', () => {
  it('counts distinct uids per minute and emits a minute once the watermark passes its end', () => {
    const op = operator();
    op.expect(0);
    for (const [t, uid] of [[0, 'a'], [10, 'b'], [20, 'a'], [59, 'c'], [62, 'a']] as const) assert.equal(op.add(0, s(t), uid), null);
    assert.deepEqual(op.close(), [], 'watermark 62 − 5 = 57 has not passed 60');
    op.add(0, s(65), 'b');
    assert.deepEqual(op.close(), [minute(0, 3, 4)], 'watermark 60 closes the first minute');
    assert.equal(op.openWindows, 1);
    assert.deepEqual(op.flush(), [minute(60, 2, 2)]);
    assert.equal(op.openWindows, 0);
  });

  it('accepts frames up to the allowed lateness behind their partition, rejects and reports the rest', () => {
    const op = operator();
    op.add(0, s(30), 'a');
    assert.equal(op.add(0, s(25), 'b'), null, 'exactly 5 s behind is on time');
    assert.deepEqual(op.add(0, s(24.5), 'c'), { reason: 'beyond-lateness', lateByMs: 5500, watermarkMs: s(25) });
    op.add(0, s(90), 'd');
    assert.deepEqual(op.add(0, s(40), 'e'), { reason: 'beyond-lateness', lateByMs: 50_000, watermarkMs: s(85) });
    assert.deepEqual(op.close(), [minute(0, 2, 2, 1)], 'only the late frame that came before its partition passed the minute is in its count');
  });

  it('keeps one watermark per partition: a partition far ahead does not make another one late', () => {
    const op = operator();
    op.expect(0);
    op.expect(1);
    op.add(1, s(300), 'x');
    assert.equal(op.add(0, s(10), 'a'), null);
    assert.deepEqual(op.close(), [], 'partition 0 holds the combined watermark at 5 s');
    op.add(0, s(70), 'a');
    assert.deepEqual(op.close(), [minute(0, 1, 1)]);
    op.finish(0);
    assert.deepEqual(op.close(), [minute(60, 1, 1)], 'a finished partition no longer holds anything back');
    assert.deepEqual(op.flush(), [minute(300, 1, 1)]);
  });

  it('lets a declared partition hold the watermark until it delivers or finishes', () => {
    const op = operator();
    op.expect(0);
    op.expect(1);
    op.add(0, s(200), 'a');
    assert.deepEqual(op.close(), [], 'partition 1 has delivered nothing yet');
    op.add(1, s(10), 'b');
    assert.deepEqual(op.close(), [], 'partition 1 is at 10 − 5');
    op.finish(1);
    assert.deepEqual(op.close(), [minute(0, 1, 1)]);
  });

  it('stops waiting for a partition declared idle until its next frame; its later frames for emitted minutes are late', () => {
    const op = operator();
    op.expect(0);
    op.expect(1);
    op.add(0, s(10), 'a');
    op.add(1, s(10), 'b');
    assert.deepEqual(op.close(), []);
    op.add(0, s(130), 'a');
    assert.deepEqual(op.close(), [], 'partition 1 holds the watermark at 5 s');
    op.idle(1);
    op.add(0, s(131), 'a');
    assert.deepEqual(op.close(), [minute(0, 2, 2)], 'partition 1 idle: only partition 0 counts');
    assert.deepEqual(op.add(1, s(59), 'c'), { reason: 'window-closed', lateByMs: 0, watermarkMs: s(126) });
    assert.equal(op.add(1, s(126), 'c'), null, 'its frames for open minutes still count');
    op.add(0, s(200), 'a');
    assert.deepEqual(op.close(), [], 'a frame made partition 1 active again: it holds the watermark at 121 s');
  });

  it('after a flush, frames of the flushed minutes are late (window closed)', () => {
    const op = operator();
    op.add(0, s(10), 'a');
    assert.deepEqual(op.flush(), [minute(0, 1, 1)]);
    assert.equal(op.add(0, s(12), 'b')?.reason, 'window-closed');
    assert.equal(op.add(0, s(61), 'b'), null);
  });

  it('reports, per partition, the lowest offset an open minute still needs', () => {
    const op = operator();
    op.add(0, s(10), 'a', 100n);
    op.add(0, s(20), 'b', 101n);
    op.add(1, s(30), 'c', 7n);
    op.add(0, s(70), 'd', 102n);
    assert.deepEqual(op.pendingOffsets(), new Map([[0, 100n], [1, 7n]]));
    op.add(1, s(80), 'e', 8n);
    assert.deepEqual(op.close().map((m) => m.start), [T0]);
    assert.deepEqual(op.pendingOffsets(), new Map([[0, 102n], [1, 8n]]));
  });

  it('skips frames of minutes an earlier run emitted', () => {
    const op = operator();
    op.resumeAfter(s(120));
    assert.deepEqual(op.add(0, s(100), 'a'), { reason: 'already-emitted' });
    assert.deepEqual(op.add(0, s(10), 'a'), { reason: 'already-emitted' });
    assert.equal(op.add(0, s(125), 'a'), null);
    assert.deepEqual(op.flush(), [minute(120, 1, 1)]);
  });

  it('counts approximately with a HyperLogLog counter', () => {
    const op = new UniqueUsersWindows({ allowedLatenessMs: 5000, counter: () => new HyperLogLog(14) });
    for (let i = 0; i < 5000; i++) op.add(0, s((i * 60) / 5000), `user-${i % 4000}`);
    const [m] = op.flush();
    assert.equal(m.frames, 5000);
    assert.ok(Math.abs(m.uniqueUsers - 4000) < 4000 * 0.03, `${m.uniqueUsers} within 3% of 4000`);
  });

  it('gives the independent reference answer whatever the interleaving of partitions', () => {
    const partitions = 3;
    const perPartition: string[][] = Array.from({ length: partitions }, () => []);
    const generator = userTrackerFrames({ random: seededRandom('unique-users/interleave'), lateShare: 0.02, perSecond: 20, users: 300, bytes: 400 });
    const random = seededRandom('unique-users/partitioning');
    for (let i = 0; i < 6000; i++) perPartition[random.int(0, partitions - 1)].push(generator.next().value!.text);
    const expected = referenceUniqueUsers(perPartition.flatMap((texts, partition) => texts.map((text) => ({ partition, text }))));
    assert.ok(expected.late.length > 50, 'the data has late frames');

    for (const seed of ['a', 'b', 'c']) {
      const order = seededRandom(`unique-users/order/${seed}`);
      let late = 0;
      const op = guarded({ released: (_ref, _t, verdict) => void (verdict !== null && late++), implausible: () => assert.fail('no far-off ts in this data') });
      for (let p = 0; p < partitions; p++) op.expect(p);
      const next = new Array(partitions).fill(0);
      const emitted: WindowCount[] = [];
      while (next.some((n, p) => n < perPartition[p].length)) {
        const p = order.int(0, partitions - 1);
        // Deliver a random-sized run from one partition, as fetches do.
        for (let k = order.int(1, 200); k > 0 && next[p] < perPartition[p].length; k--) {
          const frame = JSON.parse(perPartition[p][next[p]++]) as { uid: string; ts: string | number };
          const verdict = op.add(p, Number(frame.ts) * 1000, frame.uid);
          if (verdict === HELD) op.hold(p, Number(frame.ts) * 1000, frame.uid, undefined, frame.uid);
          else if (verdict !== null) late++;
        }
        if (next[p] === perPartition[p].length) op.finish(p);
        emitted.push(...op.close());
      }
      emitted.push(...op.flush());
      assert.equal(late, expected.late.length, `late frames, order ${seed}`);
      assert.deepEqual(emitted, expected.minutes, `minutes, order ${seed}`);
    }
  });
});

describe('UniqueUsersWindows behind the event-time guard', () => {
  const YEAR = 365.25 * 86_400;

  it('holds a frame 100 years ahead: the watermark and the later frames are untouched, it is refused once the stream moved on by the skew', () => {
    const run = new GuardedRun();
    run.op.expect(0);
    assert.deepEqual([run.add(0, 0, 'a'), run.add(0, 1, 'b')], ['held', 'held'], 'before the first agreement');
    assert.equal(run.add(0, 2, 'c'), null, 'three agree: stream time 0');
    assert.deepEqual(run.released, [{ uid: 'a', verdict: null }, { uid: 'b', verdict: null }]);
    assert.equal(run.add(0, 3 + 100 * YEAR, 'x'), 'held', 'the flipped frame');
    for (let t = 3; t < 700; t++) assert.equal(run.add(0, t, `u${t % 50}`), null, `the frame at ${t} s counts`);
    assert.deepEqual(run.implausible.map((f) => f.uid), ['x']);
    assert.ok(run.implausible[0].skewMs! > 99 * YEAR * 1000, 'with how far ahead it was');
    const closed = run.op.close();
    assert.equal(run.op.watermarkMs, s(697 - 5), 'the watermark: the stream time agreed by the last frames, minus the lateness');
    const minutes = [...closed, ...run.op.flush()];
    assert.deepEqual(minutes.map((m) => m.start - T0), Array.from({ length: 12 }, (_, i) => i * 60), 'no minute outside the real range');
    assert.equal(minutes.reduce((n, m) => n + m.frames, 0), 700, 'every good frame counted');
  });

  it('counts a frame ahead by more than the skew once the stream reaches it', () => {
    const run = new GuardedRun();
    for (let t = 0; t < 10; t++) run.add(0, t, 'a');
    assert.equal(run.add(0, 10 + 900, 'early'), 'held', '15 minutes ahead');
    for (let t = 10; t < 400; t++) assert.equal(run.add(0, t, 'a'), null);
    assert.deepEqual(run.released, [{ uid: 'a', verdict: null }, { uid: 'a', verdict: null }, { uid: 'early', verdict: null }], 'released when the stream came within 10 minutes');
    assert.deepEqual(run.implausible, []);
    const minutes = [...run.op.close(), ...run.op.flush()];
    assert.deepEqual(minutes.at(-1), { ...minute(900, 1, 1), late: 0 }, 'counted in its own minute');
  });

  it('follows a stream that really jumps a day ahead: nothing after the jump is dropped, the minutes before it close', () => {
    const run = new GuardedRun();
    for (let t = 0; t < 120; t++) run.add(0, t, `u${t}`);
    for (let t = 86_400; t < 86_520; t++) run.add(0, t, `v${t}`);
    assert.deepEqual(run.released.slice(2).map((r) => r.verdict), [null, null], 'the first two after the jump were held, then counted');
    assert.deepEqual(run.implausible, []);
    assert.deepEqual(run.op.close().map((m) => [m.start - T0, m.frames]), [[0, 60], [60, 60], [86_400, 60]], 'the stream time followed the jump');
    assert.deepEqual(run.op.flush().map((m) => [m.start - T0, m.frames]), [[86_460, 60]]);
  });

  it('decides what is still held at the end of the input, and keeps a held frame\'s offset pending until then', () => {
    const run = new GuardedRun();
    for (let t = 0; t < 5; t++) run.add(0, t, 'a', BigInt(t));
    run.add(0, 5 - 4096, 'flipped', 5n);
    run.add(0, 6, 'a', 6n);
    run.op.close();
    assert.deepEqual(run.op.pendingOffsets(), new Map([[0, 0n]]));
    run.op.flush();
    assert.deepEqual(run.op.pendingOffsets(), new Map([[0, 5n]]), 'the held frame still needs its offset');
    run.op.finish(0);
    assert.deepEqual(run.implausible, [{ uid: 'flipped', skewMs: (5 - 4096 - 2) * 1000 }], 'implausible, with its skew from the stream time (2 s: the flipped frame kept 3 and 4 from agreeing)');
    assert.deepEqual(run.op.pendingOffsets(), new Map());
  });

  it('on random streams with 0.1% to 2% of ts hit by a flipped bit (12 to 31): minutes equal the reference over the untouched frames', () => {
    for (const seed of ['a', 'b', 'c', 'd', 'e', 'f']) {
      const random = seededRandom(`unique-users/bitflip/${seed}`);
      const share = [0.001, 0.005, 0.02][random.int(0, 2)];
      const partitions = random.int(1, 3);
      const generator = userTrackerFrames({ random: seededRandom(`unique-users/bitflip-frames/${seed}`), perSecond: 10, users: 300, bytes: 200 });
      const untouched: Array<{ partition: number; text: string }> = [];
      const all: Array<{ partition: number; uid: string; ts: number; flipped: boolean }> = [];
      for (let i = 0; i < 8000; i++) {
        const frame = generator.next().value!;
        const partition = random.int(0, partitions - 1);
        if (random.next() < share) {
          all.push({ partition, uid: frame.uid, ts: frame.ts ^ (1 << random.int(12, 31)), flipped: true });
        } else {
          all.push({ partition, uid: frame.uid, ts: frame.ts, flipped: false });
          untouched.push({ partition, text: JSON.stringify({ uid: frame.uid, ts: frame.ts }) });
        }
      }
      const expected = referenceUniqueUsers(untouched);
      const run = new GuardedRun();
      for (let p = 0; p < partitions; p++) run.op.expect(p);
      const minutes: WindowCount[] = [];
      let late = 0;
      for (const f of all) {
        const verdict = run.add(f.partition, (f.ts >>> 0) - T0, f.flipped ? `flipped-${f.uid}` : f.uid);
        if (verdict !== null && verdict !== 'held') late++;
        minutes.push(...run.op.close());
      }
      for (let p = 0; p < partitions; p++) run.op.finish(p);
      minutes.push(...run.op.close(), ...run.op.flush());
      const flipped = all.filter((f) => f.flipped).length;
      assert.equal(late + run.released.filter((r) => r.verdict !== null).length, expected.late.length, `late, seed ${seed}`);
      assert.deepEqual(minutes, expected.minutes, `minutes, seed ${seed} (${flipped} flipped of ${all.length}, ${partitions} partitions)`);
      assert.deepEqual(run.implausible.map((f) => f.uid).sort(), all.filter((f) => f.flipped).map((f) => `flipped-${f.uid}`).sort(), `every flipped frame refused, seed ${seed}`);
    }
  });
});

describe('UniqueUsersWindows: hours, days, ISO weeks, months, years from the same frames', () => {
  const ALL = [...GRANULARITIES];
  const HOUR = 3600;

  it('every window of every granularity equals the calendar reference over 26 hours across a year end, whatever the interleaving', () => {
    const partitions = 3;
    const perPartition: string[][] = Array.from({ length: partitions }, () => []);
    // 2016-12-31T23:00Z, 20 frames a minute for 26 hours: across days, a year, a month and a week (Monday 2 January).
    const generator = userTrackerFrames({ random: seededRandom('unique-users/frames'), start: 1483225200, perSecond: 1 / 3, lateShare: 0.01, users: 400, bytes: 200 });
    const random = seededRandom('unique-users/frames/partitioning');
    for (let i = 0; i < 31_200; i++) perPartition[random.int(0, partitions - 1)].push(generator.next().value!.text);
    const reference = referenceUniqueUsers(perPartition.flatMap((texts, partition) => texts.map((text) => ({ partition, text }))));
    assert.ok(reference.late.length > 150, `the data has late frames (${reference.late.length})`);
    const expected = referenceWindows(reference, ALL);
    const count = (g: string) => expected.filter((w) => w.granularity === g).length;
    assert.deepEqual(ALL.slice(2).map(count), [3, 2, 2, 2], 'days, weeks, months, years in the data');

    for (const seed of ['a', 'b']) {
      const order = seededRandom(`unique-users/frames/order/${seed}`);
      const op = new UniqueUsersWindows<string>({ allowedLatenessMs: 5000, maxTimeSkewMs: 600_000, granularities: ALL, counter: () => new BoundedDistinct(64 << 20) }, {
        released: () => undefined,
        implausible: () => assert.fail('no far-off ts in this data'),
      });
      for (let p = 0; p < partitions; p++) op.expect(p);
      const next = new Array(partitions).fill(0);
      const emitted: WindowCount[] = [];
      while (next.some((n, p) => n < perPartition[p].length)) {
        const p = order.int(0, partitions - 1);
        for (let k = order.int(1, 300); k > 0 && next[p] < perPartition[p].length; k--) {
          const frame = JSON.parse(perPartition[p][next[p]++]) as { uid: string; ts: string | number };
          const verdict = op.add(p, Number(frame.ts) * 1000, frame.uid);
          if (verdict === HELD) op.hold(p, Number(frame.ts) * 1000, frame.uid, undefined, frame.uid);
        }
        if (next[p] === perPartition[p].length) op.finish(p);
        emitted.push(...op.close());
      }
      emitted.push(...op.flush());
      assert.deepEqual(emitted, expected, `windows, order ${seed}`);
    }
  });

  it('in a time zone: days and coarser from local midnight (a 25-hour day in Zurich, days starting at 18:30 UTC in Kolkata) equal the search-based reference', () => {
    // 2016-10-29T12:00Z to 2016-10-31T12:00Z, 20 frames a minute: Zurich's clocks go back on the 30th.
    const texts: string[] = [];
    const generator = userTrackerFrames({ random: seededRandom('unique-users/zoned'), start: 1477742400, perSecond: 1 / 3, lateShare: 0.01, users: 400, bytes: 200 });
    for (let i = 0; i < 57_600; i++) texts.push(generator.next().value!.text);
    const reference = referenceUniqueUsers(texts.map((text) => ({ partition: 0, text })));
    for (const zone of ['Europe/Zurich', 'Asia/Kolkata']) {
      const expected = referenceWindows(reference, ALL, zonedCalendarWindow(zone));
      const op = new UniqueUsersWindows<string>({ allowedLatenessMs: 5000, maxTimeSkewMs: 600_000, granularities: ALL, timeZone: zone, counter: () => new ExactDistinct() }, {
        released: () => undefined,
        implausible: () => assert.fail('no far-off ts in this data'),
      });
      const emitted: WindowCount[] = [];
      for (const text of texts) {
        const frame = JSON.parse(text) as { uid: string; ts: string | number };
        if (op.add(0, Number(frame.ts) * 1000, frame.uid) === HELD) op.hold(0, Number(frame.ts) * 1000, frame.uid, undefined, frame.uid);
        emitted.push(...op.close());
      }
      op.finish(0);
      emitted.push(...op.close(), ...op.flush());
      for (const w of emitted) assert.equal(Date.parse(w.window), w.start * 1000, `${zone}: ${w.window} is the start`);
      const days = emitted.filter((w) => w.granularity === 'day').map((w) => [w.window, (w.end - w.start) / 3600]);
      if (zone === 'Europe/Zurich') assert.deepEqual(days[1], ['2016-10-30T00:00:00+02:00', 25]);
      else assert.equal(days[1][0], '2016-10-30T00:00:00+05:30');
      assert.deepEqual(emitted.map((w) => ({ ...w, window: '' })), expected.map((w) => ({ ...w, window: '' })), zone);
    }
  });

  it('a week is not inside a month: a user seen on 31 December and 1 January counts in both months and once in the week', () => {
    const op = new UniqueUsersWindows({ allowedLatenessMs: 5000, granularities: ['day', 'week', 'month'], counter: () => new ExactDistinct() });
    assert.equal(op.add(0, Date.parse('2016-12-31T10:00:00Z'), 'a'), null);
    assert.equal(op.add(0, Date.parse('2017-01-01T10:00:00Z'), 'a'), null);
    assert.deepEqual(op.flush().map((w) => [w.granularity, w.window, w.uniqueUsers]), [
      ['day', '2016-12-31T00:00:00Z', 1],
      ['month', '2016-12-01T00:00:00Z', 1],
      ['day', '2017-01-01T00:00:00Z', 1],
      ['week', '2016-12-26T00:00:00Z', 1],
      ['month', '2017-01-01T00:00:00Z', 1],
    ]);
  });

  it('in a time zone, a UTC hour is not inside a local day: a user seen in one hour on both sides of local midnight counts in both days', () => {
    const op = new UniqueUsersWindows({ allowedLatenessMs: 5000, granularities: ['hour', 'day'], timeZone: 'Asia/Kolkata', counter: () => new ExactDistinct() });
    const at = (iso: string) => Date.parse(iso);
    assert.equal(op.add(0, at('2016-10-29T18:10:00Z'), 'a'), null); // 23:40 on the 29th in Kolkata
    assert.equal(op.add(0, at('2016-10-29T18:40:00Z'), 'a'), null); // 00:10 on the 30th, the same UTC hour
    assert.deepEqual(op.flush().map((w) => [w.granularity, w.window, w.uniqueUsers, w.frames]), [
      ['day', '2016-10-29T00:00:00+05:30', 1, 1],
      ['hour', '2016-10-29T18:00:00Z', 1, 2],
      ['day', '2016-10-30T00:00:00+05:30', 1, 1],
    ]);
  });

  it('a window over --max-exact-memory switches to a sketch seeded with its set: within 3 standard errors, and says so', () => {
    const op = new UniqueUsersWindows({ allowedLatenessMs: 5000, granularities: ['minute', 'hour'], counter: () => new BoundedDistinct(256 * 1024, 14) });
    const exact = new Set<string>();
    const perMinute = new Map<number, Set<string>>();
    const random = seededRandom('unique-users/budget');
    for (let i = 0; i < 60_000; i++) {
      const t = Math.ceil(T0 / HOUR) * HOUR - T0 + Math.floor((i * HOUR) / 60_000); // within one hour
      const uid = `user-${random.int(0, 49_999)}`;
      exact.add(uid);
      const m = Math.floor((T0 + t) / 60);
      if (!perMinute.has(m)) perMinute.set(m, new Set());
      perMinute.get(m)!.add(uid);
      assert.equal(op.add(0, s(t), uid), null);
    }
    const records = op.flush();
    const hour = records.find((r) => r.granularity === 'hour')!;
    const minutes = records.filter((r) => r.granularity === 'minute');
    assert.equal(minutes.length, 60);
    minutes.forEach((m) => {
      assert.equal(m.approximate, undefined, 'a minute of ~1,000 users stays exact');
      assert.equal(m.uniqueUsers, perMinute.get(m.start / 60)!.size);
    });
    assert.equal(hour.approximate, true);
    assert.equal(hour.standardError, 1.04 / 128);
    assert.equal(hour.frames, 60_000);
    const error = Math.abs(hour.uniqueUsers - exact.size) / exact.size;
    assert.ok(error <= 3 * hour.standardError!, `${hour.uniqueUsers} vs ${exact.size}: ${(error * 100).toFixed(2)}% over 3 standard errors`);
  });

  it('resumes after a minute that ends with its hour: the minute is skipped, the hour still counts its frames', () => {
    const op = new UniqueUsersWindows({ allowedLatenessMs: 5000, granularities: ['minute', 'hour'], counter: () => new ExactDistinct() });
    const h = Math.ceil(T0 / HOUR) * HOUR; // the next hour boundary, unix seconds
    const at = (seconds: number) => (h + seconds) * 1000;
    op.resumeAfter(at(0), 'minute');
    assert.equal(op.add(0, at(-90), 'a'), null, 'its minute was emitted, its hour was not');
    assert.equal(op.add(0, at(-10), 'b'), null);
    assert.equal(op.add(0, at(10), 'c'), null);
    assert.deepEqual(op.flush().map((r) => [r.granularity, r.start - h, r.uniqueUsers, r.frames]), [['hour', -HOUR, 2, 2], ['minute', 0, 1, 1], ['hour', 0, 1, 1]]);
    const again = new UniqueUsersWindows({ allowedLatenessMs: 5000, granularities: ['minute', 'hour'], counter: () => new ExactDistinct() });
    again.resumeAfter(at(0), 'hour');
    assert.deepEqual(again.add(0, at(-10), 'b'), { reason: 'already-emitted' }, 'the hour went out too');
  });

  it('an idle flush emits the open minutes; hours wait for the watermark to pass their end', () => {
    const op = new UniqueUsersWindows({ allowedLatenessMs: 5000, granularities: ['minute', 'hour'], counter: () => new ExactDistinct() });
    const h = Math.ceil(T0 / HOUR) * HOUR;
    op.add(0, (h + 100) * 1000, 'a');
    op.add(0, (h + 200) * 1000, 'b');
    assert.deepEqual(op.flushMinutes().map((r) => [r.granularity, r.start - h]), [['minute', 60], ['minute', 180]]);
    assert.equal(op.openWindows, 1);
    op.add(0, (h + HOUR + 10) * 1000, 'c');
    assert.deepEqual(op.close().map((r) => [r.granularity, r.start - h, r.uniqueUsers]), [['hour', 0, 2]]);
  });
});
