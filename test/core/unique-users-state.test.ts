import { Buffer } from 'node:buffer';
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { BoundedDistinct, ExactDistinct, HyperLogLog } from '../../src/core/hyperloglog.ts';
import type { DistinctCounter } from '../../src/core/hyperloglog.ts';
import { seededRandom } from '../../src/core/random.ts';
import { ALREADY_EMITTED, HELD, UniqueUsersWindows } from '../../src/core/unique-users.ts';
import type { JudgingEvent, LateFrame, PartitionTime, WindowCount } from '../../src/core/unique-users.ts';
import type { Granularity } from '../../src/core/calendar-windows.ts';
import { schedule } from './unique-users-schedule.ts';
import type { Ref, Step } from './unique-users-schedule.ts';
import { StateChain, decodeCounterInto, decodeWindowsChain, decodeWindowsState, encodeCounter, encodeWindowsState } from '../../src/core/unique-users-state.ts';

/**
 * Durable state of unique-users (docs/users.md, "Durable state"): the open windows as bytes
 * and back, and resuming from them. The schedule of test/core/unique-users-resume.test.ts
 * (late frames, far-off frames the guard holds, idle partitions, quiet moments, commits)
 * runs once without interruption and once with crashes, now with a snapshot of the open
 * windows taken at some commits (as --state-interval does; never while frames are held or
 * replayed): each restart seeds its windows from the snapshot the last commit names and
 * reads each partition from the snapshot's position (or its committed offset, when further
 * on). The windows and side records committed must be the uninterrupted run's, each once,
 * and the frames judged again far fewer than without the snapshot.
 */

/** Exact sets that switch to a sketch over 4 KiB: both kinds of counter go through the bytes. */
/** Snapshots taken while the guard held frames (they go into the snapshot with their references). */
let heldInSnapshots = 0;
/** Snapshots taken as deltas, and restarts that read a chain of more than one snapshot. */
let deltasTaken = 0;
let resumedFromChains = 0;
/** The snapshots written, as the table keeps them: bytes and the one each builds on. */
const table = new Map<string, { bytes: Uint8Array; parent: string | null }>();
let snapshotIds = 0;
/** The chain a snapshot id names, oldest first (as readStateChain reads it). */
const chainOf = (id: string) => {
  const links: Array<{ id: string; bytes: Uint8Array }> = [];
  for (let next: string | null = id; next !== null; next = table.get(next)!.parent) links.unshift({ id: next, bytes: table.get(next)!.bytes });
  return links;
};
const counterOf = (): DistinctCounter => new BoundedDistinct(4096, 12);
/** What a held frame refers to, as bytes. */
const encodeRef = (ref: Ref): Uint8Array => Buffer.from(JSON.stringify([ref.partition, String(ref.offset)]));
const decodeRef = (bytes: Uint8Array): Ref => {
  const [partition, offset] = JSON.parse(Buffer.from(bytes).toString()) as [number, string];
  return { partition, offset: BigInt(offset) };
};

interface Commit {
  step: number;
  points: Map<number, { offset?: bigint; time: PartitionTime; events: JudgingEvent[]; idle: boolean; cut?: bigint }>;
  closed: number;
  read: Map<number, bigint>;
  /** The snapshot the commit names: its id (in `table`) and positions. */
  snap: { id: string; positions: Map<number, bigint> } | null;
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
  /** Where each partition was resumed from. */
  readonly starts: Map<number, bigint>;
  /** Take a snapshot at the next commits (when the windows allow). */
  snapshots = false;
  /** Bytes of the snapshots taken. */
  readonly sizes: number[] = [];
  /** Deltas while the chain is short (3 here, to go through full snapshots often). */
  readonly chain = new StateChain(3);

  constructor(granularities: readonly Granularity[], partitions: number, restoreFrom: Commit | null, committed?: { windows: WindowCount[]; side: string[] }) {
    this.op = new UniqueUsersWindows<Ref>({ allowedLatenessMs: 5000, maxTimeSkewMs: 600_000, granularities, counter: counterOf }, {
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
    this.starts = new Map();
    if (restoreFrom) {
      // Durable state as the service resumes from it: the named snapshot's windows, each
      // partition from the snapshot's position or its committed offset, whichever is further on.
      const links = restoreFrom.snap === null ? null : chainOf(restoreFrom.snap.id);
      const snap = links === null ? null : decodeWindowsChain(links, counterOf, decodeRef).state;
      if (links !== null && links.length > 1) resumedFromChains++;
      for (const [partition, point] of restoreFrom.points) {
        const read = restoreFrom.read.get(partition)!;
        const committed = point.offset ?? read;
        const at = restoreFrom.snap?.positions.get(partition);
        if (snap !== null && at !== undefined && committed < at) {
          assert.ok(point.cut === undefined || point.cut <= at, 'the decisions after the snapshot are all in the resume point');
          this.op.restore(partition, { from: at, time: snap.partitions.get(partition) ?? null, events: point.events, idle: point.idle, replayUntil: read > at ? read : null, appliedThrough: at, held: snap.held.get(partition) ?? [] });
          this.starts.set(partition, at);
        } else {
          this.op.restore(partition, { from: committed, time: point.time, events: point.events, idle: point.idle, replayUntil: read > committed ? read : null });
          this.starts.set(partition, committed);
        }
      }
      this.op.restoreClosed(restoreFrom.closed);
      if (snap !== null) {
        this.op.seed(snap);
        this.chain.resumed(links!, snap);
      }
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
    let snap = this.last?.snap ?? null;
    const state = this.snapshots ? this.op.snapshot() : null;
    if (state !== null) {
      const id = `s${++snapshotIds}`;
      const taken = this.chain.take(id, state, 'test', encodeRef);
      table.set(id, { bytes: taken.bytes, parent: taken.parent });
      if (taken.parent !== null) deltasTaken++;
      snap = { id, positions: new Map(read) };
      for (const p of this.next.keys()) if (!snap.positions.has(p)) snap.positions.set(p, 0n);
      this.sizes.push(taken.bytes.length);
      if (state.held.size > 0) heldInSnapshots++;
    }
    // A resume point's state goes through JSON, as in the offset metadata.
    const stored = JSON.parse(JSON.stringify([...points].map(([p, v]) => [p, { ...v, offset: v.offset?.toString(), cut: v.cut?.toString(), events: v.events.map((e) => ({ ...e, at: String(e.at) })) }]))) as Array<[number, { offset?: string; time: PartitionTime; events: Array<Omit<JudgingEvent, 'at'> & { at: string }>; idle: boolean; cut?: string }]>;
    const all: Commit['points'] = new Map();
    for (const [p, v] of stored) all.set(p, { ...(v.offset === undefined ? {} : { offset: BigInt(v.offset) }), time: v.time, events: v.events.map((e) => ({ ...e, at: BigInt(e.at) }) as JudgingEvent), idle: v.idle, ...(v.cut === undefined ? {} : { cut: BigInt(v.cut) }) });
    this.last = { step: index, points: all, closed: this.op.watermarkMs, read, snap };
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

/** Runs the schedule, crashing at `crashes`: each time a new service resumes from the last commit (and its snapshot). */
function withCrashes(steps: readonly Step[], granularities: readonly Granularity[], crashes: readonly number[], snapshotEvery: number): { service: Service; replayed: number; sizes: number[] } {
  let service = new Service(granularities, 3, null);
  let replayed = 0;
  let i = 0;
  let commits = 0;
  const sizes: number[] = [];
  const run = (index: number) => {
    if (steps[index].kind === 'commit') service.snapshots = snapshotEvery > 0 && commits++ % snapshotEvery === 0;
    service.run(steps[index], index);
  };
  for (const crash of [...crashes, steps.length]) {
    for (; i < crash; i++) run(i);
    sizes.push(...service.sizes);
    if (crash === steps.length) break;
    const last = service.last;
    service = new Service(granularities, 3, last, { windows: service.windows, side: service.side });
    i = last === null ? 0 : last.step + 1;
    if (last === null) continue;
    const replay = new Map<number, Array<Extract<Step, { kind: 'frame' }>>>();
    for (const step of steps.slice(0, i)) {
      if (step.kind !== 'frame') continue;
      const read = last.read.get(step.partition) ?? 0n;
      const from = service.starts.get(step.partition) ?? read;
      if (step.offset >= from && step.offset < read) replay.set(step.partition, [...(replay.get(step.partition) ?? []), step]);
    }
    for (const queue of replay.values()) {
      for (const step of queue) {
        service.silent = true;
        service.frame(step);
        replayed++;
        service.silent = false;
      }
      service.op.endReplay(queue[0].partition);
      service.pendingWindows.push(...service.op.close());
    }
  }
  return { service, replayed, sizes };
}

const key = (w: WindowCount) => JSON.stringify(w);

describe('unique-users durable state', () => {
  it('counters round-trip through their bytes: exact sets (ASCII and not), switched and plain sketches', () => {
    const values = Array.from({ length: 3000 }, (_, i) => (i % 7 === 0 ? `ü-${i}` : `user-${i}`));
    const fill = (counter: DistinctCounter, n: number) => {
      for (const v of values.slice(0, n)) counter.add(v);
      return counter;
    };
    const cases: Array<[string, () => DistinctCounter, number]> = [
      ['exact', () => new ExactDistinct(), 3000],
      ['bounded, still exact', () => new BoundedDistinct(1 << 20, 12), 3000],
      ['bounded, switched to a sketch', () => new BoundedDistinct(4096, 12), 3000],
      ['sketch', () => new HyperLogLog(12), 3000],
      ['empty', () => new BoundedDistinct(4096, 12), 0],
    ];
    for (const [name, make, n] of cases) {
      const original = fill(make(), n);
      const copy = make();
      decodeCounterInto(encodeCounter(original), copy);
      assert.equal(copy.count(), original.count(), name);
      assert.equal(copy.approximate, original.approximate, name);
      // Both go on alike: the same further values give the same count.
      fill(original, n + 0);
      for (const v of ['x1', 'x2', values[0]]) {
        original.add(v);
        copy.add(v);
      }
      assert.equal(copy.count(), original.count(), `${name}, after more values`);
    }
    const exact = fill(new ExactDistinct(), 1000);
    const bytes = encodeCounter(exact);
    assert.ok(bytes.length < 1000 * 11, `an exact set costs its members' bytes + 1 each (${bytes.length} bytes for 1000 uids)`);
    assert.throws(() => decodeCounterInto(bytes.subarray(0, bytes.length - 1), new ExactDistinct()), RangeError);
  });

  it('the windows round-trip: a fresh operator seeded from the bytes emits what the original does', () => {
    const steps = schedule(5, { frames: 3000, idle: false, secondsPerFrame: 3 });
    const granularities: Granularity[] = ['minute', 'hour', 'day'];
    const a = new Service(granularities, 3, null);
    const at = Math.floor(steps.length / 2);
    for (let i = 0; i <= at; i++) a.run(steps[i], i);
    const state = a.op.snapshot()!;
    assert.ok(state.windows.length >= 3, 'windows of every granularity open');
    const bytes = encodeWindowsState(state, 'settings', encodeRef);
    const decoded = decodeWindowsState(bytes, counterOf, decodeRef);
    assert.equal(decoded.settings, 'settings');
    assert.equal(decoded.state.windows.length, state.windows.length);
    const b = new Service(granularities, 3, null);
    for (const [partition, time] of decoded.state.partitions) b.op.restore(partition, { from: a.next.get(partition) ?? 0n, time, events: [], idle: false, replayUntil: null, held: decoded.state.held.get(partition) ?? [] });
    b.op.restoreClosed(decoded.state.closedThrough ?? Number.NEGATIVE_INFINITY);
    b.op.seed(decoded.state);
    a.pendingWindows = [];
    for (let i = at + 1; i < steps.length; i++) {
      a.run(steps[i], i);
      b.run(steps[i], i);
    }
    const flushed = (s: Service) => [...s.windows, ...s.pendingWindows, ...s.op.flush()].filter((w) => w.end * 1000 > (decoded.state.closedThrough ?? 0)).map(key).sort();
    assert.deepEqual(flushed(b), flushed(a));
    assert.deepEqual(b.side, a.side.slice(a.side.length - b.side.length));
  });

  for (const [name, granularities, idle] of [
    ['minutes, hours and days', ['minute', 'hour', 'day'], false],
    ['minutes and hours, with idle partitions and quiet moments', ['minute', 'hour'], true],
  ] as const) {
    it(`${name}: crashed three times, resumed from snapshots: the uninterrupted run's windows and side records, each once, far fewer frames judged again`, () => {
      heldInSnapshots = 0;
      deltasTaken = 0;
      resumedFromChains = 0;
      for (let seed = 1; seed <= 10; seed++) {
        const steps = schedule(seed, { frames: 4000, idle, secondsPerFrame: 3 });
        const expected = uninterrupted(steps, granularities);
        const rng = seededRandom(seed * 7919);
        const crashes = [0, 0, 0].map(() => Math.floor(steps.length / 4 + rng.next() * (steps.length * 3) / 4)).sort((a, b) => a - b);
        const label = `seed ${seed}, crashes at ${crashes.join(', ')} of ${steps.length}`;
        const durable = withCrashes(steps, granularities, crashes, 3);
        const plain = withCrashes(steps, granularities, crashes, 0);
        for (const [kind, { service }] of [['durable', durable], ['without snapshots', plain]] as const) {
          assert.equal(new Set(service.windows.map(key)).size, service.windows.length, `${label}, ${kind}: no window twice`);
          assert.deepEqual(service.windows.map(key).sort(), expected.windows.map(key).sort(), `${label}, ${kind}: the windows of the uninterrupted run`);
          assert.equal(new Set(service.side).size, service.side.length, `${label}, ${kind}: no side record twice`);
          assert.deepEqual([...service.side].sort(), [...expected.side].sort(), `${label}, ${kind}: the side records of the uninterrupted run`);
        }
        assert.ok(durable.sizes.length > 5, `${label}: snapshots were taken (${durable.sizes.length})`);
        if (granularities.includes('day' as never)) assert.ok(durable.replayed * 3 < plain.replayed, `${label}: ${durable.replayed} frames judged again from snapshots, ${plain.replayed} without`);
      }
      assert.ok(heldInSnapshots > 0, 'some snapshots were taken while frames were held');
      assert.ok(deltasTaken > 10, `snapshots were taken as deltas (${deltasTaken})`);
      assert.ok(resumedFromChains > 3, `restarts read chains of deltas (${resumedFromChains})`);
    });
  }

  it('a chain of deltas reads back as the full snapshot of its last state: sets grown (ASCII and not), switched to sketches, new and closed windows', () => {
    const random = seededRandom('state-chain');
    const counters = new Map<string, DistinctCounter>();
    const state = () => ({
      closedThrough: null, emitted: null, partitions: new Map(), held: new Map(),
      windows: [...counters].map(([k, counter]) => ({ granularity: 'minute' as const, start: Number(k), end: Number(k) + 60_000, frames: counter.count(), late: 0, counter, first: [] })),
    });
    const chain = new StateChain(4);
    const written: Array<{ id: string; bytes: Uint8Array; parent: string | null; keepFrom: string | null }> = [];
    for (let round = 0; round < 14; round++) {
      // Windows open and close; each set grows by a few members, some not ASCII; a small budget switches some to sketches.
      if (round % 3 === 0) counters.set(String(round * 60_000), new BoundedDistinct(3000, 12));
      if (round % 5 === 4) counters.delete([...counters.keys()][0]!);
      for (const counter of counters.values()) for (let i = random.int(0, 40); i > 0; i--) counter.add(random.next() < 0.2 ? `ü-${random.int(0, 999)}` : `user-${random.int(0, 999)}`);
      const id = `n${round}`;
      written.push({ id, ...chain.take(id, state(), 'settings') });
      const links: Array<{ id: string; bytes: Uint8Array }> = [];
      for (let i = written.length - 1; i >= 0; i = written.findIndex((w) => w.id === written[i]!.parent)) {
        links.unshift(written[i]!);
        if (written[i]!.parent === null) break;
      }
      const fromChain = decodeWindowsChain(links, () => new BoundedDistinct(3000, 12)).state;
      const whole = decodeWindowsState(encodeWindowsState(state(), 'settings'), () => new BoundedDistinct(3000, 12)).state;
      const counts = (s: typeof whole) => s.windows.map((w) => `${w.start}:${w.counter.count()}:${w.counter.approximate}`);
      assert.deepEqual(counts(fromChain), counts(whole), `round ${round}: the chain of ${links.length} as the whole state`);
      assert.deepEqual(counts(whole), [...counters].map(([k, c]) => `${k}:${c.count()}:${c.approximate}`));
    }
    const deltas = written.filter((w) => w.parent !== null);
    assert.ok(deltas.length >= 6 && deltas.length < written.length, `deltas (${deltas.length}) and full snapshots (${written.length - deltas.length})`);
    assert.ok(deltas.every((d) => d.bytes.length < written.find((w) => w.id === d.parent)!.bytes.length * 2), 'a delta is smaller than the sets it builds on');
    // keepFrom names the first snapshot of the previous one's chain.
    for (let i = 1; i < written.length; i++) {
      let base = written[i - 1]!;
      while (base.parent !== null) base = written.find((w) => w.id === base.parent)!;
      assert.equal(written[i]!.keepFrom, base.id);
    }
    // A delta read without its parent, or on a set other than the one it grew from, is refused.
    const set = new ExactDistinct();
    const one = (counter: DistinctCounter) => ({ closedThrough: null, emitted: null, partitions: new Map(), held: new Map(), windows: [{ granularity: 'minute' as const, start: 0, end: 60_000, frames: 1, late: 0, counter, first: [] }] });
    const small = new StateChain();
    for (const v of ['a', 'b', 'ü']) set.add(v);
    const full = small.take('f', one(set), 'settings');
    set.add('c');
    const grown = small.take('d', one(set), 'settings');
    assert.equal(grown.parent, 'f');
    assert.deepEqual(decodeWindowsChain([{ id: 'f', bytes: full.bytes }, { id: 'd', bytes: grown.bytes }], () => new ExactDistinct()).state.windows.map((w) => w.counter.count()), [4]);
    assert.throws(() => decodeWindowsState(grown.bytes, () => new ExactDistinct()), /read without it/);
    const other = new ExactDistinct();
    for (const v of ['a', 'b', 'ü', 'x']) other.add(v);
    assert.throws(() => decodeWindowsChain([{ id: 'f', bytes: encodeWindowsState(one(other), 'settings') }, { id: 'd', bytes: grown.bytes }], () => new ExactDistinct()), /a delta on a set of 2\+1 members, its parent's holds 3\+1/);
    assert.throws(() => decodeWindowsChain([{ id: 'g', bytes: full.bytes }, { id: 'd', bytes: grown.bytes }], () => new ExactDistinct()), /builds on f, not on g/);
  });
});
