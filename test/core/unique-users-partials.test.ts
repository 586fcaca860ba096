import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { BoundedDistinct, HyperLogLog } from '../../src/core/hyperloglog.ts';
import type { DistinctCounter } from '../../src/core/hyperloglog.ts';
import { seededRandom } from '../../src/core/random.ts';
import { decodeSketch, encodeSketch } from '../../src/core/sketch-bytes.ts';
import { HELD, UniqueUsersWindows } from '../../src/core/unique-users.ts';
import type { WindowCount } from '../../src/core/unique-users.ts';
import { CombinedWindow } from '../../src/core/unique-users-partials.ts';
import { userTrackerFrames } from '../../src/core/user-tracker-frames.ts';
import { calendarWindow, referenceUniqueUsers, referenceWindows } from '../users/reference.ts';

/**
 * The combiner's step of `unique-users --scale-out` (core/unique-users-partials.ts): a stream
 * split over members by partition, each member's windows combined. With sketches the merged
 * registers must be those of one sketch fed the whole stream's on-time uids (an independent
 * recount), and the record a single operator's over every partition.
 */

const PRECISION = 10;
const key = (w: Pick<WindowCount, 'granularity' | 'start'>) => `${w.granularity}/${w.start}`;

interface Emitted {
  record: WindowCount;
  counter: DistinctCounter;
}

/** The pipeline's operator over `partitions` (behind the event-time guard), fed their frames in order, interleaved at random; every window with its counter. */
function count(texts: readonly string[][], partitions: readonly number[], counter: () => DistinctCounter, order: string): Map<string, Emitted> {
  const out = new Map<string, Emitted>();
  const op = new UniqueUsersWindows<string>({
    allowedLatenessMs: 5000, maxTimeSkewMs: 600_000, granularities: ['minute', 'hour'], counter,
    emitted: (record, distinct) => out.set(key(record), { record, counter: distinct }),
  }, { released: () => undefined, implausible: () => assert.fail('no far-off ts in this data') });
  for (const p of partitions) op.expect(p);
  const next = new Map(partitions.map((p) => [p, 0]));
  const random = seededRandom(order);
  for (let open = [...partitions]; open.length > 0;) {
    const p = open[random.int(0, open.length - 1)]!;
    for (let k = random.int(1, 200); k > 0 && next.get(p)! < texts[p]!.length; k--) {
      const frame = JSON.parse(texts[p]![next.get(p)!]!) as { uid: string; ts: string | number };
      next.set(p, next.get(p)! + 1);
      const ms = Number(frame.ts) * 1000;
      if (op.add(p, ms, frame.uid) === HELD) op.hold(p, ms, frame.uid, undefined, frame.uid);
    }
    if (next.get(p) === texts[p]!.length) {
      op.finish(p);
      open = open.filter((q) => q !== p);
    }
    op.close();
  }
  op.flush();
  return out;
}

/** Each member's windows combined as the combiner does, each partial's sketch through its stored bytes. */
function combine(members: ReadonlyArray<Map<string, Emitted>>): Map<string, CombinedWindow> {
  const combined = new Map<string, CombinedWindow>();
  for (const windows of members) {
    for (const [k, { record, counter }] of windows) {
      const own = counter instanceof HyperLogLog ? counter : counter instanceof BoundedDistinct ? counter.sketch : null;
      const sketch = own === null ? null : decodeSketch(encodeSketch(own));
      const known = combined.get(k);
      if (known === undefined) combined.set(k, new CombinedWindow(record, sketch));
      else known.add(record, sketch);
    }
  }
  return combined;
}

describe('CombinedWindow: partials of one window, combined', () => {
  it('merges the sketches of a stream split over members by partition into the sketch of the whole stream', () => {
    // Every frame on a random one of 4 partitions: each user's frames on all of them, so the members' users overlap.
    const partitions = 4;
    const texts: string[][] = Array.from({ length: partitions }, () => []);
    const generator = userTrackerFrames({ random: seededRandom('partials/frames'), lateShare: 0.02, perSecond: 25, users: 20_000, bytes: 300 });
    const random = seededRandom('partials/partitions');
    for (let i = 0; i < 60_000; i++) texts[random.int(0, partitions - 1)]!.push(generator.next().value!.text);
    const reference = referenceUniqueUsers(texts.flatMap((list, partition) => list.map((text) => ({ partition, text }))));
    assert.ok(reference.late.length > 500, 'the data has late frames');

    // The independent recount: per window, one sketch fed its on-time uids, and the exact counts.
    const expectedSketches = new Map<string, HyperLogLog>();
    for (const { uid, ts } of reference.onTime) {
      for (const granularity of ['minute', 'hour'] as const) {
        const k = key({ granularity, start: calendarWindow(granularity, ts).start });
        if (!expectedSketches.has(k)) expectedSketches.set(k, new HyperLogLog(PRECISION));
        expectedSketches.get(k)!.add(uid);
      }
    }
    const expected = referenceWindows(reference, ['minute', 'hour']);
    assert.ok(expected.filter((w) => w.granularity === 'hour').length >= 2, 'more than one hour');

    const sketch = () => new HyperLogLog(PRECISION);
    const whole = count(texts, [0, 1, 2, 3], sketch, 'partials/whole');
    const combined = combine([count(texts, [0, 2], sketch, 'partials/a'), count(texts, [1, 3], sketch, 'partials/b')]);
    assert.deepEqual([...combined.keys()].sort(), expected.map(key).sort(), 'every window of the recount, from the partials');
    let saturated = 0;
    for (const w of expected) {
      const k = key(w);
      const merged = combined.get(k)!;
      assert.deepEqual(merged.sketch!.registers, expectedSketches.get(k)!.registers, `${k}: the registers of the whole stream's sketch`);
      const record = merged.record();
      assert.equal(JSON.stringify(record), JSON.stringify(whole.get(k)!.record), `${k}: the record of one operator over every partition, text for text`);
      assert.deepEqual({ frames: record.frames, late: record.late }, { frames: w.frames, late: w.late }, `${k}: frames and late of the recount`);
      assert.ok(Math.abs(record.uniqueUsers - w.uniqueUsers) <= 3 * record.standardError! * w.uniqueUsers, `${k}: ${record.uniqueUsers} within 3 standard errors of ${w.uniqueUsers}`);
      if (w.uniqueUsers > 2 * 2 ** PRECISION) saturated++;
    }
    assert.ok(saturated >= 2, 'windows well past the sketch\'s linear-counting range');
  });

  it('over --max-exact-memory: merged when every partial went over, summed (approximate) otherwise, summed exactly when none did', () => {
    // Keyed: user k on partition k mod 2, so the members' users are disjoint and exact counts add up.
    const texts: string[][] = [[], []];
    const T = 1_468_244_400; // 2016-07-11T14:00:00Z
    const users = [3000, 600]; // distinct users of partition 0 and 1 in the window
    for (let i = 0; i < 6000; i++) {
      const p = i % 2;
      texts[p]!.push(JSON.stringify({ uid: `user-${2 * (Math.floor(i / 2) % users[p]!) + p}`, ts: T + Math.floor(i / 200) }));
    }
    const run = (budget: number) => {
      const bounded = () => new BoundedDistinct(budget, PRECISION);
      const partials = [count(texts, [0], bounded, 'over/a'), count(texts, [1], bounded, 'over/b')];
      return { whole: count(texts, [0, 1], bounded, 'over/whole'), partials, combined: combine(partials) };
    };
    const k = key({ granularity: 'minute', start: T });
    const exactCount = users[0]! + users[1]!;

    // A budget both partials' sets go over.
    const low = run(4096);
    assert.deepEqual(low.partials.map((m) => m.get(k)!.record.approximate), [true, true]);
    const merged = low.combined.get(k)!;
    assert.deepEqual(merged.sketch!.registers, (low.whole.get(k)!.counter as BoundedDistinct).sketch!.registers, 'the registers of the single operator\'s switched sketch');
    assert.equal(JSON.stringify(merged.record()), JSON.stringify(low.whole.get(k)!.record), 'the single operator\'s record, text for text');

    // A budget only the larger partial goes over: the counts are summed, and the sum is approximate.
    const mid = run(40_000);
    assert.deepEqual(mid.partials.map((m) => m.get(k)!.record.approximate), [true, undefined]);
    const summed = mid.combined.get(k)!;
    assert.equal(summed.sketch, null);
    const [a, b] = mid.partials.map((m) => m.get(k)!.record);
    assert.deepEqual(summed.record(), { ...a!, uniqueUsers: a!.uniqueUsers + users[1]!, frames: 6000 });
    assert.equal(b!.uniqueUsers, users[1]);

    // A budget neither goes over: exact, the sum of the exact counts.
    const high = run(1 << 30);
    const exact = high.combined.get(k)!.record();
    assert.equal(exact.approximate, undefined);
    assert.equal(exact.uniqueUsers, exactCount);
    assert.equal(JSON.stringify(exact), JSON.stringify(high.whole.get(k)!.record));
  });

  it('sketches of two precisions merge at the lower: the registers of a sketch of that precision fed both', () => {
    const fine = new HyperLogLog(14);
    const coarse = new HyperLogLog(12);
    const both = new HyperLogLog(12);
    for (let i = 0; i < 30_000; i++) {
      (i % 3 === 0 ? coarse : fine).add(`u${i}`);
      both.add(`u${i}`);
    }
    const partial = (users: number, standardError: number): WindowCount => ({ granularity: 'minute', window: 'w', start: 0, end: 60, uniqueUsers: users, frames: 1, late: 0, approximate: true, standardError });
    for (const [first, second] of [[fine, coarse], [coarse, fine]] as const) {
      const combined = new CombinedWindow(partial(first.count(), first.standardError), decodeSketch(encodeSketch(first)));
      combined.add(partial(second.count(), second.standardError), decodeSketch(encodeSketch(second)));
      assert.deepEqual(combined.sketch!.registers, both.registers);
      assert.deepEqual(combined.record(), { ...partial(both.count(), both.standardError), frames: 2 });
    }
  });
});
