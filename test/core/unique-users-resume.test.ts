import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { ExactDistinct } from '../../src/core/hyperloglog.ts';
import { seededRandom } from '../../src/core/random.ts';
import { ALREADY_EMITTED, HELD, UniqueUsersWindows } from '../../src/core/unique-users.ts';
import type { JudgingEvent, LateFrame, PartitionTime, WindowCount } from '../../src/core/unique-users.ts';
import type { Granularity } from '../../src/core/calendar-windows.ts';
import { T0, schedule } from './unique-users-schedule.ts';
import type { Ref, Step } from './unique-users-schedule.ts';

/**
 * Resuming exactly from committed resume points (what the exactly-once service commits with
 * its offsets), in process: a schedule of frames (late ones, far-off ones the event-time
 * guard holds), idle partitions and quiet moments runs once without interruption, and once
 * with crashes — everything since the last commit lost, a fresh operator restored from that
 * commit's resume points, the partitions' frames from their resume offset to the commit's
 * read position judged again with their side records held back (as the runtime does), then
 * the schedule continued. The windows and the side records committed must be the
 * uninterrupted run's, each once.
 */

interface Commit {
  step: number;
  points: Map<number, { offset?: bigint; time: PartitionTime; events: JudgingEvent[]; idle: boolean }>;
  closed: number;
  read: Map<number, bigint>;
}

/** The pipeline around the operator, as the runtime drives it: outputs and side records per commit. */
class Service {
  readonly op: UniqueUsersWindows<Ref>;
  /** What commits made durable. */
  readonly windows: WindowCount[] = [];
  readonly side: string[] = [];
  pendingWindows: WindowCount[] = [];
  pendingSide: string[] = [];
  silent = false;
  readonly next = new Map<number, bigint>();
  last: Commit | null;

  constructor(granularities: readonly Granularity[], partitions: number, restoreFrom: Commit | null, committed?: { windows: WindowCount[]; side: string[] }) {
    this.op = new UniqueUsersWindows<Ref>({ allowedLatenessMs: 5000, maxTimeSkewMs: 600_000, granularities, counter: () => new ExactDistinct() }, {
      released: (ref, _t, verdict) => {
        if (verdict !== null && verdict !== ALREADY_EMITTED) this.#late(ref, verdict.reason);
      },
      implausible: (ref) => this.#late(ref, 'implausible-time'),
    });
    this.last = restoreFrom;
    if (committed) {
      this.windows.push(...committed.windows);
      this.side.push(...committed.side);
    }
    if (restoreFrom) {
      for (const [partition, point] of restoreFrom.points) {
        const read = restoreFrom.read.get(partition)!;
        const from = point.offset ?? read;
        this.op.restore(partition, { from, time: point.time, events: point.events, idle: point.idle, replayUntil: read > from ? read : null });
      }
      this.op.restoreClosed(restoreFrom.closed);
    }
    for (let p = 0; p < partitions; p++) this.op.expect(p);
  }

  #late(ref: Ref, reason: string): void {
    if (!this.silent) this.pendingSide.push(`${ref.partition}@${ref.offset} ${reason}`);
  }

  frame(step: Extract<Step, { kind: 'frame' }>): void {
    const verdict = this.op.add(step.partition, step.ms, step.uid, step.offset);
    if (verdict === HELD) this.op.hold(step.partition, step.ms, step.uid, step.offset, { partition: step.partition, offset: step.offset });
    else if (verdict !== null && verdict !== ALREADY_EMITTED) this.#late({ partition: step.partition, offset: step.offset }, (verdict as LateFrame).reason);
    this.next.set(step.partition, step.offset + 1n);
    this.pendingWindows.push(...this.op.close());
  }

  run(step: Step, index: number): void {
    if (step.kind === 'frame') this.frame(step);
    else if (step.kind === 'idle') {
      this.op.idle(step.partition);
      this.pendingWindows.push(...this.op.close());
    } else if (step.kind === 'quiet') {
      this.op.decideHeld();
      this.pendingWindows.push(...this.op.close(), ...this.op.flushMinutes());
    } else {
      this.commit(index);
    }
  }

  commit(index: number): void {
    const read = new Map(this.last?.read ?? []);
    for (const [p, n] of this.next) read.set(p, n > (read.get(p) ?? -1n) ? n : read.get(p)!);
    const points = this.op.resumePoints();
    // A resume point's state goes through JSON, as in the offset metadata.
    const stored = JSON.parse(JSON.stringify([...points].map(([p, v]) => [p, { ...v, offset: v.offset?.toString(), events: v.events.map((e) => ({ ...e, at: String(e.at) })) }]))) as Array<[number, { offset?: string; time: PartitionTime; events: Array<Omit<JudgingEvent, 'at'> & { at: string }>; idle: boolean }]>;
    const all: Commit['points'] = new Map();
    for (const [p, v] of stored) all.set(p, { ...(v.offset === undefined ? {} : { offset: BigInt(v.offset) }), time: v.time, events: v.events.map((e) => ({ ...e, at: BigInt(e.at) }) as JudgingEvent), idle: v.idle });
    this.last = { step: index, points: all, closed: this.op.watermarkMs, read };
    this.windows.push(...this.pendingWindows);
    this.side.push(...this.pendingSide);
    this.pendingWindows = [];
    this.pendingSide = [];
  }
}

function uninterrupted(steps: readonly Step[], granularities: readonly Granularity[]): Service {
  const service = new Service(granularities, 3, null);
  steps.forEach((step, i) => service.run(step, i));
  return service;
}

/** Runs the schedule, crashing at `crashes` (step indexes): each time a new service resumes from the last commit. */
function withCrashes(steps: readonly Step[], granularities: readonly Granularity[], crashes: readonly number[], interleave: (() => number) | null): { service: Service; replayed: number } {
  let service = new Service(granularities, 3, null);
  let replayed = 0;
  let i = 0;
  for (const crash of [...crashes, steps.length]) {
    for (; i < crash; i++) service.run(steps[i], i);
    if (crash === steps.length) break;
    const last = service.last;
    service = new Service(granularities, 3, last, { windows: service.windows, side: service.side });
    i = last === null ? 0 : last.step + 1;
    if (last === null) continue;
    // Each partition's frames from its resume offset to the read position, judged again with side records held back.
    const replay = new Map<number, Array<Extract<Step, { kind: 'frame' }>>>();
    for (const step of steps.slice(0, i)) {
      if (step.kind !== 'frame') continue;
      const point = last.points.get(step.partition);
      const read = last.read.get(step.partition) ?? 0n;
      const from = point?.offset ?? read;
      if (step.offset >= from && step.offset < read) replay.set(step.partition, [...(replay.get(step.partition) ?? []), step]);
    }
    const queues = [...replay.values()];
    while (queues.some((q) => q.length > 0)) {
      const open = queues.filter((q) => q.length > 0);
      const queue = interleave === null ? open[0] : open[Math.floor(interleave() * open.length)];
      const step = queue.shift()!;
      service.silent = true;
      service.frame(step);
      replayed++;
      if (queue.length === 0) {
        service.op.endReplay(step.partition);
        service.pendingWindows.push(...service.op.close());
      }
      service.silent = false;
    }
  }
  return { service, replayed };
}

const key = (w: WindowCount) => JSON.stringify(w);

describe('UniqueUsersWindows resumed from committed resume points', () => {
  // Hours over 3 s a frame per partition: about two hours, so that resume points fall inside hours too.
  for (const [name, granularities, idle, secondsPerFrame] of [
    ['minutes, with idle partitions and quiet moments', ['minute'], true, 0.6],
    ['minutes and hours, with idle partitions and quiet moments', ['minute', 'hour'], true, 3],
    ['minutes, hours and days', ['minute', 'hour', 'day'], false, 3],
  ] as const) {
    it(`${name}: crashed three times at random steps, the committed windows and side records are the uninterrupted run's, each once`, () => {
      for (let seed = 1; seed <= 12; seed++) {
        const steps = schedule(seed, { frames: 4000, idle, secondsPerFrame });
        const expected = uninterrupted(steps, granularities);
        const rng = seededRandom(seed * 7919);
        const random = () => rng.next();
        const crashes = [0, 0, 0].map(() => Math.floor(random() * steps.length)).sort((a, b) => a - b);
        // Replayed partition by partition, and interleaved at random (no idle steps then: their timing is the interleaving's).
        const interleaving = seededRandom(seed);
        const modes = idle ? [null] : [null, () => interleaving.next()];
        for (const mode of modes) {
          const { service, replayed } = withCrashes(steps, granularities, crashes, mode);
          const label = `seed ${seed}, crashes at ${crashes.join(', ')} of ${steps.length}, ${mode === null ? 'replay first' : 'interleaved'}`;
          assert.ok(expected.windows.length > 10 && expected.side.length > 20, `${label}: a schedule with windows and side records`);
          assert.equal(new Set(service.windows.map(key)).size, service.windows.length, `${label}: no window twice`);
          assert.deepEqual(service.windows.map(key).sort(), expected.windows.map(key).sort(), `${label}: the windows of the uninterrupted run`);
          assert.equal(new Set(service.side).size, service.side.length, `${label}: no side record twice`);
          assert.deepEqual([...service.side].sort(), [...expected.side].sort(), `${label}: the side records of the uninterrupted run (${replayed} frames judged again)`);
        }
      }
    });
  }

  it('a partition idle when the commit was made stays idle after the restart: the windows that close past it are the same', () => {
    const frame = (partition: number, offset: number, seconds: number, uid: string): Step => ({ kind: 'frame', partition, offset: BigInt(offset), ms: (T0 + seconds) * 1000, uid });
    const steps: Step[] = [{ kind: 'idle', partition: 2 }]; // partition 2 has no frames
    for (let i = 0; i < 20; i++) steps.push(frame(0, i, i * 4, `a${i % 5}`), frame(1, i, i * 1.5, `b${i % 5}`));
    // Partition 1 goes quiet at 28.5 s; partition 0 goes on to 76 s and closes the first minute past it.
    steps.push({ kind: 'idle', partition: 1 });
    steps.push({ kind: 'commit' });
    for (let i = 20; i < 40; i++) steps.push(frame(0, i, i * 4, `a${i % 5}`));
    // Partition 1 comes back with a frame of the second minute, which partition 0 has closed meanwhile.
    steps.push(frame(1, 20, 100, 'b-late'), { kind: 'quiet' }, { kind: 'commit' });
    const expected = uninterrupted(steps, ['minute']);
    assert.ok(expected.side.includes('1@20 window-closed'), `the frame of partition 1 finds its minute closed: ${expected.side.join(', ')}`);
    const commit = steps.findIndex((step) => step.kind === 'commit');
    const { service } = withCrashes(steps, ['minute'], [commit + 1], null);
    assert.deepEqual(service.windows.map(key).sort(), expected.windows.map(key).sort());
    assert.deepEqual([...service.side].sort(), [...expected.side].sort());
  });

  it('a resume point is small: it carries the partition\'s time, not its frames', () => {
    const service = uninterrupted(schedule(3, { frames: 2000, idle: true, secondsPerFrame: 3 }), ['minute', 'hour']);
    for (const point of service.last!.points.values()) assert.ok(JSON.stringify({ ...point, offset: String(point.offset), events: point.events.map((e) => ({ ...e, at: String(e.at) })) }).length < 1500);
  });
});
