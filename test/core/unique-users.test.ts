import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { ExactDistinct, HyperLogLog } from '../../src/core/hyperloglog.ts';
import { seededRandom } from '../../src/core/random.ts';
import { UniqueUsersPerMinute } from '../../src/core/unique-users.ts';
import type { MinuteCount } from '../../src/core/unique-users.ts';
import { userTrackerFrames } from '../../src/core/user-tracker-frames.ts';
import { referenceUniqueUsers } from '../users/reference.ts';

const T0 = 1468244340; // 2016-07-11T13:39:00Z, a minute boundary
const s = (seconds: number) => (T0 + seconds) * 1000;

function operator(options: { latenessS?: number } = {}) {
  return new UniqueUsersPerMinute({ allowedLatenessMs: (options.latenessS ?? 5) * 1000, counter: () => new ExactDistinct() });
}

const minute = (offset: number, uniqueUsers: number, frames: number, late = 0): MinuteCount => ({
  minute: new Date(s(offset)).toISOString().replace('.000Z', 'Z'),
  start: T0 + offset,
  uniqueUsers,
  frames,
  late,
});

describe('UniqueUsersPerMinute', () => {
  it('counts distinct uids per minute and emits a minute once the watermark passes its end', () => {
    const op = operator();
    op.expect(0);
    for (const [t, uid] of [[0, 'a'], [10, 'b'], [20, 'a'], [59, 'c'], [62, 'a']] as const) assert.equal(op.add(0, s(t), uid), null);
    assert.deepEqual(op.close(), [], 'watermark 62 − 5 = 57 has not passed 60');
    op.add(0, s(65), 'b');
    assert.deepEqual(op.close(), [minute(0, 3, 4)], 'watermark 60 closes the first minute');
    assert.equal(op.openMinutes, 1);
    assert.deepEqual(op.flush(), [minute(60, 2, 2)]);
    assert.equal(op.openMinutes, 0);
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
    op.resumeAfter(s(60));
    assert.deepEqual(op.add(0, s(100), 'a'), { reason: 'already-emitted' });
    assert.deepEqual(op.add(0, s(10), 'a'), { reason: 'already-emitted' });
    assert.equal(op.add(0, s(125), 'a'), null);
    assert.deepEqual(op.flush(), [minute(120, 1, 1)]);
  });

  it('counts approximately with a HyperLogLog counter', () => {
    const op = new UniqueUsersPerMinute({ allowedLatenessMs: 5000, counter: () => new HyperLogLog(14) });
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
      const op = operator();
      for (let p = 0; p < partitions; p++) op.expect(p);
      const next = new Array(partitions).fill(0);
      const emitted: MinuteCount[] = [];
      let late = 0;
      while (next.some((n, p) => n < perPartition[p].length)) {
        const p = order.int(0, partitions - 1);
        // Deliver a random-sized run from one partition, as fetches do.
        for (let k = order.int(1, 200); k > 0 && next[p] < perPartition[p].length; k--) {
          const frame = JSON.parse(perPartition[p][next[p]++]) as { uid: string; ts: string | number };
          if (op.add(p, Number(frame.ts) * 1000, frame.uid) !== null) late++;
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
