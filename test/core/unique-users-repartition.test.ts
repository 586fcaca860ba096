import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { ExactDistinct } from '../../src/core/hyperloglog.ts';
import type { Granularity } from '../../src/core/calendar-windows.ts';
import { partitionForKey } from '../../src/core/murmur2.ts';
import { seededRandom } from '../../src/core/random.ts';
import { HELD, UniqueUsersWindows } from '../../src/core/unique-users.ts';
import type { WindowCount } from '../../src/core/unique-users.ts';

/**
 * The two stages of a repartitioned count on the windows alone (no Kafka): a `judge`
 * operator judges frames spread over input partitions regardless of uid, the frames judged
 * on time (and the late ones, as late) go to `judged` operators by uid, with every input
 * partition's time after them; the partials summed per window must equal one operator's
 * windows over the same frames, in the same order — counts, frames and late counts.
 */

const GRANULARITIES: Granularity[] = ['minute', 'hour'];
const INPUT = 4;
const COUNTING = 3;
const T0 = 1_468_244_340_000;

interface Frame {
  partition: number;
  uid: string;
  ts: number;
}

function frames(seed: string, count: number): Frame[] {
  const random = seededRandom(seed);
  const out: Frame[] = [];
  for (let i = 0; i < count; i++) {
    const partition = random.int(0, INPUT - 1);
    // The last partition runs 30 s behind the others (its frames are not late: each partition has its own watermark).
    const base = T0 + (i * 1000) / 40 - (partition === INPUT - 1 ? 30_000 : 0);
    const r = random.next();
    // A few frames late, a few ten years off, the others a few seconds out of order.
    const ts = r < 0.01 ? base - 20_000 - random.next() * 70_000 : r < 0.012 ? base + 3.15e11 : base + (random.next() - 0.5) * 4000;
    out.push({ partition, uid: `user-${random.int(0, 999)}`, ts: Math.round(ts) });
  }
  return out;
}

const key = (w: WindowCount) => `${w.granularity}/${w.start}`;

function single(all: readonly Frame[], batch: number): WindowCount[] {
  const out: WindowCount[] = [];
  const op = new UniqueUsersWindows<Frame>({ allowedLatenessMs: 5000, maxTimeSkewMs: 600_000, granularities: GRANULARITIES, counter: () => new ExactDistinct() }, {
    released: () => undefined,
    implausible: () => undefined,
  });
  for (let p = 0; p < INPUT; p++) op.expect(p);
  all.forEach((f, i) => {
    if (op.add(f.partition, f.ts, f.uid, BigInt(i)) === HELD) op.hold(f.partition, f.ts, f.uid, BigInt(i), f);
    if (i % batch === batch - 1) out.push(...op.close());
  });
  for (let p = 0; p < INPUT; p++) op.finish(p);
  out.push(...op.close(), ...op.flush());
  return out;
}

type Message = { kind: 'frame' | 'late'; from: number; uid: string; ts: number; watermark?: number } | { kind: 'time'; from: number; watermark: number; idle: boolean };

function repartitioned(all: readonly Frame[], batch: number): WindowCount[] {
  const queues: Message[][] = Array.from({ length: COUNTING }, () => []);
  const to = (uid: string) => partitionForKey(Buffer.from(uid), COUNTING);
  const judge = new UniqueUsersWindows<Frame>({ allowedLatenessMs: 5000, maxTimeSkewMs: 600_000, granularities: GRANULARITIES, counter: () => new ExactDistinct(), mode: 'judge' }, {
    released: (f, _t, verdict) => {
      if (verdict === null) queues[to(f.uid)]!.push({ kind: 'frame', from: f.partition, uid: f.uid, ts: f.ts });
    },
    implausible: () => undefined,
  });
  for (let p = 0; p < INPUT; p++) judge.expect(p);
  const counting = Array.from({ length: COUNTING }, () => new UniqueUsersWindows({ allowedLatenessMs: 5000, granularities: GRANULARITIES, counter: () => new ExactDistinct(), mode: 'judged' }));
  const times = Array.from({ length: COUNTING }, () => new Map<number, { watermark: number; idle: boolean }>());
  const partials: WindowCount[] = [];
  let offset = 0n;
  const deliver = (flush: boolean) => {
    for (let p = 0; p < INPUT; p++) {
      const time = judge.timeOf(p)!;
      for (const queue of queues) queue.push({ kind: 'time', from: p, watermark: time.watermarkMs, idle: time.idle });
    }
    queues.forEach((queue, q) => {
      const op = counting[q]!;
      for (const m of queue.splice(0)) {
        if (m.kind === 'time') times[q]!.set(m.from, { watermark: m.watermark, idle: m.idle });
        else if (m.kind === 'late') op.addLate(q, m.ts, m.watermark!, offset++);
        else assert.equal(op.add(q, m.ts, m.uid, offset++), null, 'a frame judged on time is counted');
      }
      const known = [...times[q]!.values()];
      const holding = known.filter((t) => !t.idle);
      const watermark = known.length < INPUT ? Number.NEGATIVE_INFINITY : holding.length > 0 ? Math.min(...holding.map((t) => t.watermark)) : Math.max(...known.map((t) => t.watermark));
      op.setTime(q, watermark, known.length === INPUT && holding.length === 0);
      partials.push(...op.close(), ...(flush ? op.flush() : []));
    });
  };
  all.forEach((f, i) => {
    const verdict = judge.add(f.partition, f.ts, f.uid, BigInt(i));
    if (verdict === HELD) judge.hold(f.partition, f.ts, f.uid, BigInt(i), f);
    else if (verdict === null) queues[to(f.uid)]!.push({ kind: 'frame', from: f.partition, uid: f.uid, ts: f.ts });
    else if (verdict.reason === 'beyond-lateness') queues[to(f.uid)]!.push({ kind: 'late', from: f.partition, uid: f.uid, ts: f.ts, watermark: verdict.watermarkMs });
    if (i % batch === batch - 1) deliver(false);
  });
  for (let p = 0; p < INPUT; p++) judge.finish(p);
  deliver(true);
  // The combiner: partials summed per window.
  const sums = new Map<string, WindowCount>();
  for (const w of partials) {
    const sum = sums.get(key(w));
    if (sum === undefined) sums.set(key(w), { ...w });
    else {
      sum.uniqueUsers += w.uniqueUsers;
      sum.frames += w.frames;
      sum.late += w.late;
    }
  }
  return [...sums.values()];
}

describe('UniqueUsersWindows judge and judged: a repartitioned count', () => {
  for (const batch of [1, 37, 500]) {
    it(`partials over uid-keyed partitions add up to one operator's windows (batches of ${batch})`, () => {
      const all = frames(`repartition-${batch}`, 20_000);
      const one = single(all, batch).sort((a, b) => key(a).localeCompare(key(b)));
      const two = repartitioned(all, batch).sort((a, b) => key(a).localeCompare(key(b)));
      assert.ok(one.some((w) => w.late > 0), 'some windows count late frames');
      assert.ok(one.length > 8);
      assert.deepEqual(two, one);
    });
  }
});
