import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { EventTimeGuard } from '../../src/core/event-time-guard.ts';
import type { EventTimeGuardOptions, EventTimeGuardSnapshot } from '../../src/core/event-time-guard.ts';
import { seededRandom } from '../../src/core/random.ts';
import type { Random } from '../../src/core/random.ts';

const SECOND = 1000;
const MINUTE = 60 * SECOND;
const DAY = 24 * 60 * MINUTE;
const YEAR = 365.25 * DAY;
const LATENESS = 5 * SECOND;
const WINDOW = 30 * SECOND;
const OPTIONS: EventTimeGuardOptions = { maxSkewMs: 10 * MINUTE, toleranceMs: LATENESS };

type Kind = 'good' | 'late' | 'far' | 'flip' | 'early';
interface Rec {
  i: number;
  t: number;
  kind: Kind;
}

interface Outcome {
  /** index → 'counted' | 'late' | 'implausible' */
  fate: Map<number, 'counted' | 'late' | 'implausible'>;
  streamTimes: number[];
  finalStreamTime: number | null;
}

/**
 * A consumer like a window operator: watermark = stream time − lateness, a record whose
 * 30 s window ended at or before the watermark is late. It sees exactly what the guard
 * lets through, in that order.
 */
function consume(records: readonly Rec[], options = OPTIONS, from?: { snapshot: EventTimeGuardSnapshot<Rec>; done: Outcome; at: number }): Outcome {
  const guard = new EventTimeGuard<Rec>(options, from?.snapshot);
  const fate = new Map(from?.done.fate);
  const streamTimes = [...(from?.done.streamTimes ?? [])];
  let watermark = guard.streamTime === null ? Number.NEGATIVE_INFINITY : guard.streamTime - LATENESS;
  const count = (r: Rec) => {
    assert.ok(!fate.has(r.i), `record ${r.i} decided twice`);
    const windowEnd = Math.floor(r.t / WINDOW) * WINDOW + WINDOW;
    fate.set(r.i, windowEnd <= watermark ? 'late' : 'counted');
  };
  const sink = {
    moved: (streamTime: number) => {
      watermark = streamTime - LATENESS;
      streamTimes.push(streamTime);
    },
    release: (r: Rec) => count(r),
    implausible: (r: Rec) => {
      assert.ok(!fate.has(r.i), `record ${r.i} decided twice`);
      fate.set(r.i, 'implausible');
    },
  };
  for (const r of records.slice(from?.at ?? 0)) {
    if (guard.check(r.t, sink)) count(r);
    else guard.hold(r.t, r, sink);
  }
  guard.drain(sink);
  return { fate, streamTimes, finalStreamTime: guard.streamTime };
}

/**
 * A partition's stream: records every 50–500 ms, each up to lateness/2 behind its slot
 * (disorder), 1% sent 15 s to 5 min late on purpose. With `bad`, ~1% extra records with
 * implausible times are injected, never more than two in a row: far off (2B to 1000 years,
 * either way), a flipped bit 12..31 of the unix seconds, or plausibly early (within B ahead).
 */
function stream(r: Random, n: number, bad: boolean, start = r.int(0, 100) * YEAR, from = 0): Rec[] {
  const records: Rec[] = [];
  let slot = start;
  let run = 0;
  for (let k = 0; records.length < n; k++) {
    if (bad && run < 2 && r.next() < 0.01) {
      run++;
      const choice = r.int(0, 2);
      let t: number;
      let kind: Kind;
      if (choice === 0) {
        kind = 'far';
        t = slot + (r.next() < 0.5 ? -1 : 1) * (2 * OPTIONS.maxSkewMs + 1 + r.next() * 1000 * YEAR);
      } else if (choice === 1) {
        kind = 'flip';
        const seconds = Math.floor(slot / SECOND);
        t = Number(BigInt(seconds) ^ (1n << BigInt(r.int(12, 31)))) * SECOND + (slot % SECOND);
      } else {
        kind = 'early';
        t = slot + LATENESS + 1 + r.next() * (OPTIONS.maxSkewMs - LATENESS - 1);
      }
      records.push({ i: from + records.length, t, kind });
      continue;
    }
    run = 0;
    slot += r.int(50, 500);
    const late = r.next() < 0.01;
    const t = late ? slot - r.int(15 * SECOND, 5 * MINUTE) : slot - r.int(0, LATENESS / 2);
    records.push({ i: from + records.length, t, kind: late ? 'late' : 'good' });
  }
  return records;
}

/** The same stream with the bad records left out (indices kept). */
const clean = (records: readonly Rec[]) => records.filter((r) => r.kind === 'good' || r.kind === 'late');

describe('EventTimeGuard', () => {
  it('one record 980 years ahead: held, never moves the stream time, refused; every later record counts', () => {
    const t0 = Date.UTC(2019, 0, 1);
    const records: Rec[] = Array.from({ length: 50 }, (_, i) => ({ i, t: t0 + i * 100, kind: 'good' as Kind }));
    records.splice(20, 0, { i: 1000, t: t0 + 980 * YEAR, kind: 'far' });
    const { fate, streamTimes } = consume(records);
    assert.equal(fate.get(1000), 'implausible');
    for (const r of records) if (r.kind === 'good') assert.equal(fate.get(r.i), 'counted', `record ${r.i}`);
    assert.ok(streamTimes.every((t) => t < t0 + DAY), 'the stream time never went near year 2999');
  });

  it('a first record in 2999 or in 1970 cannot poison a partition that has no stream time yet', () => {
    const t0 = Date.UTC(2024, 5, 1);
    for (const bad of [Date.UTC(2999, 0, 1), 0]) {
      const records: Rec[] = [{ i: 0, t: bad, kind: 'far' }, ...Array.from({ length: 10 }, (_, k) => ({ i: k + 1, t: t0 + k * 1000, kind: 'good' as Kind }))];
      const { fate, streamTimes } = consume(records);
      assert.equal(fate.get(0), 'implausible', String(bad));
      for (let i = 1; i <= 10; i++) assert.equal(fate.get(i), 'counted', `${bad}: record ${i}`);
      assert.equal(streamTimes[0], t0, 'the first stream time is the first record that the next two agree with');
    }
  });

  it('a record ahead by between the skew and twice the skew waits until the stream reaches it, then counts', () => {
    const t0 = Date.UTC(2024, 5, 1);
    // every second for 20 minutes; at 0:10 one record says 0:25 (15 minutes ahead of its stream)
    const records: Rec[] = Array.from({ length: 1200 }, (_, i) => ({ i, t: t0 + i * SECOND, kind: 'good' as Kind }));
    records.splice(600, 0, { i: 5000, t: t0 + 25 * MINUTE, kind: 'early' });
    const guard = new EventTimeGuard<number>(OPTIONS);
    const released: number[] = [];
    let streamTime: number | null = null;
    const sink = {
      release: (i: number) => {
        if (i === 5000) assert.ok(streamTime! >= t0 + 15 * MINUTE, 'not before the stream came within 10 minutes of it');
        released.push(i);
      },
      moved: (t: number) => void (streamTime = t),
      implausible: () => assert.fail('nothing is implausible'),
    };
    for (const r of records) if (!guard.check(r.t, sink)) guard.hold(r.t, r.i, sink);
    assert.deepEqual(released, [0, 1, 5000], 'the first two (until the first agreement), then the early one');
  });

  it('follows a stream that really jumps a day ahead, and one that jumps a day back (history replayed): nothing dropped, nothing late', () => {
    const r = seededRandom('jumps');
    for (const jump of [DAY, -DAY, 30 * MINUTE, 365 * DAY]) {
      const before = stream(r, 500, true);
      const last = Math.max(...clean(before).map((x) => x.t));
      const after = stream(r, 1500, true, last + jump, before.length);
      const { fate, finalStreamTime } = consume([...before, ...after]);
      for (const x of after) {
        if (x.kind === 'good') assert.equal(fate.get(x.i), 'counted', `jump ${jump}: record ${x.i} after the jump`);
      }
      const lastAfter = Math.max(...clean(after).map((x) => x.t));
      assert.ok(finalStreamTime! <= lastAfter && finalStreamTime! > lastAfter - MINUTE, `jump ${jump}: the stream time followed (${finalStreamTime} vs ${lastAfter})`);
    }
  });

  it('property: on 300 random streams with ~1% injected bad times, a bad record never makes a good one late, every good one counts, every far-off one is refused', () => {
    const r = seededRandom('event-time-guard');
    let badSeen = 0;
    for (let s = 0; s < 300; s++) {
      const records = stream(r, 600 + r.int(0, 600), true);
      const withBad = consume(records);
      const without = consume(clean(records));
      const maxGood = Math.max(...clean(records).map((x) => x.t));
      for (const x of records) {
        const fate = withBad.fate.get(x.i);
        if (x.kind === 'good' || x.kind === 'late') {
          assert.notEqual(fate, 'implausible', `stream ${s}: good record ${x.i} refused`);
          if (fate === 'late') assert.equal(without.fate.get(x.i), 'late', `stream ${s}: record ${x.i} late only because of a bad one`);
          if (x.kind === 'good') assert.equal(fate, 'counted', `stream ${s}: record ${x.i}`);
        } else {
          badSeen++;
          if (x.kind === 'far' || x.kind === 'flip') assert.equal(fate, 'implausible', `stream ${s}: ${x.kind} record ${x.i} (${x.t}) was ${fate}`);
          else assert.equal(fate, 'counted', 'plausibly early records count at once');
        }
      }
      assert.ok(withBad.streamTimes.every((t) => t <= maxGood), `stream ${s}: a bad time became the stream time`);
    }
    assert.ok(badSeen > 1000, `bad records were injected (${badSeen})`);
  });

  it('restored from its snapshot after any record, decides exactly as the uninterrupted guard', () => {
    const r = seededRandom('event-time-guard-restore');
    const records = stream(r, 400, true);
    records.splice(100, 0, ...stream(r, 5, false, records[99].t + DAY, 10_000)); // a jump that is not followed
    records.forEach((x, i) => (x.i = i));
    const whole = consume(records);
    for (let cut = 0; cut <= records.length; cut += 7) {
      // Run to the cut, snapshot through JSON (as PostgreSQL keeps it), restore, run on.
      const guard = new EventTimeGuard<Rec>(OPTIONS);
      const fate = new Map<number, 'counted' | 'late' | 'implausible'>();
      const streamTimes: number[] = [];
      let watermark = Number.NEGATIVE_INFINITY;
      const sink = {
        moved: (t: number) => {
          watermark = t - LATENESS;
          streamTimes.push(t);
        },
        release: (x: Rec) => void fate.set(x.i, Math.floor(x.t / WINDOW) * WINDOW + WINDOW <= watermark ? 'late' : 'counted'),
        implausible: (x: Rec) => void fate.set(x.i, 'implausible'),
      };
      for (const x of records.slice(0, cut)) {
        if (guard.check(x.t, sink)) sink.release(x);
        else guard.hold(x.t, x, sink);
      }
      const snapshot = JSON.parse(JSON.stringify(guard.snapshot())) as EventTimeGuardSnapshot<Rec>;
      const resumed = consume(records, OPTIONS, { snapshot, done: { fate, streamTimes, finalStreamTime: null }, at: cut });
      assert.deepEqual(resumed.fate, whole.fate, `cut at ${cut}`);
      assert.deepEqual(resumed.streamTimes, whole.streamTimes, `cut at ${cut}`);
    }
  });

  it('bounds what it holds: beyond maxHeld the oldest is refused', () => {
    const guard = new EventTimeGuard<number>({ ...OPTIONS, maxHeld: 3 });
    const refused: number[] = [];
    const sink = { release: () => assert.fail('nothing agrees'), implausible: (i: number) => void refused.push(i) };
    for (let i = 0; i < 6; i++) {
      const t = i * YEAR; // a year apart: no two agree
      if (!guard.check(t, sink)) guard.hold(t, i, sink);
    }
    assert.deepEqual(refused, [0, 1, 2]);
    assert.equal(guard.held, 3);
  });

  it('settles a quiet partition whose first records never agreed: the median of what is held becomes its stream time', () => {
    const guard = new EventTimeGuard<number>(OPTIONS);
    const released: number[] = [];
    const refused: number[] = [];
    const sink = { release: (i: number) => void released.push(i), implausible: (i: number) => void refused.push(i) };
    const t0 = Date.UTC(2024, 0, 1);
    for (const [i, t] of [[0, t0], [1, t0 + 1000], [2, Date.UTC(2999, 0, 1)]] as const) if (!guard.check(t, sink)) guard.hold(t, i, sink);
    guard.settle({ release: sink.release });
    assert.deepEqual(released, [0, 1]);
    assert.equal(guard.streamTime, t0 + 1000);
    guard.drain(sink);
    assert.deepEqual(refused, [2]);
  });

  it('advancing the stream time without records (an idle timer) releases but refuses nothing', () => {
    const guard = new EventTimeGuard<number>(OPTIONS);
    const sink = { release: () => undefined, implausible: () => assert.fail('not now') };
    const t0 = Date.UTC(2024, 0, 1);
    for (let i = 0; i < 5; i++) guard.check(t0 + i * 1000, sink);
    assert.equal(guard.check(t0 + 15 * MINUTE, sink), false);
    guard.hold(t0 + 15 * MINUTE, 99, sink);
    assert.equal(guard.check(t0 + 400 * DAY, sink), false);
    guard.hold(t0 + 400 * DAY, 100, sink);
    const released: number[] = [];
    guard.advanceTo(t0 + 6 * MINUTE, { release: (i) => void released.push(i) });
    assert.deepEqual(released, [99]);
    assert.equal(guard.held, 1, 'the far one waits for the next record to be refused');
  });

  it('refuses options that make no sense', () => {
    assert.throws(() => new EventTimeGuard({ maxSkewMs: 0, toleranceMs: 0 }), /> 0 ms/);
    assert.throws(() => new EventTimeGuard({ maxSkewMs: 1000, toleranceMs: 2000 }), /tolerance/);
    assert.throws(() => new EventTimeGuard({ maxSkewMs: 1000, toleranceMs: 0, confirmations: 0 }), /confirmations/);
  });
});
