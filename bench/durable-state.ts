/**
 * `npm run bench -- durable-state [--year-users 1000000] [--frames 3000] [--new-share 0.1] [--snapshots 61]`
 *
 * What unique-users' durable state (--database-url) writes per snapshot mid-year, and what a
 * restart reads back: the open windows of every granularity as exact sets — a year of
 * `--year-users` distinct users, a month of 30% of them, a week of 10%, a day of 2%, an hour
 * of 0.3%, a minute of 0.02% (uids like `user-123456`) — then, between snapshots, `--frames`
 * frames (one --state-interval) of which `--new-share` are users new to the year and the rest
 * random known ones, counted into every open window. Snapshots are taken with the pipeline's
 * own StateChain (core/unique-users-state.ts): the first full, then deltas while the chain
 * allows. Prints each kind's size and encoding time, the average per snapshot over the chain
 * against a full snapshot every time (the cost before deltas), and the time to read the whole
 * chain back (what a restart decodes).
 */
import { BoundedDistinct } from '../src/core/hyperloglog.ts';
import { seededRandom } from '../src/core/random.ts';
import type { Granularity } from '../src/core/calendar-windows.ts';
import type { WindowsState } from '../src/core/unique-users.ts';
import { StateChain, decodeWindowsChain, encodeWindowsState } from '../src/core/unique-users-state.ts';
import { flag } from './_lib.ts';

const GRANULARITIES: Granularity[] = ['minute', 'hour', 'day', 'week', 'month', 'year'];
const SHARES = [0.0002, 0.003, 0.02, 0.1, 0.3, 1];
const BUDGET = 1 << 30; // every set stays exact, as a window under --max-exact-memory does

export default async function bench(args: string[]): Promise<void> {
  const yearUsers = Number(flag(args, 'year-users', '1000000'));
  const frames = Number(flag(args, 'frames', '3000'));
  const newShare = Number(flag(args, 'new-share', '0.1'));
  const snapshots = Number(flag(args, 'snapshots', '61'));
  const random = seededRandom('durable-state-bench');
  const counters = GRANULARITIES.map(() => new BoundedDistinct(BUDGET, 14));
  for (let i = 0; i < yearUsers; i++) for (let k = 0; k < counters.length; k++) if (i < yearUsers * SHARES[k]!) counters[k]!.add(`user-${i}`);
  const state = (): WindowsState => ({
    closedThrough: null, emitted: null, partitions: new Map(), held: new Map(),
    windows: GRANULARITIES.map((granularity, k) => ({ granularity, start: 0, end: 1, frames: 0, late: 0, counter: counters[k]!, first: [] })),
  });
  const chain = new StateChain();
  const links: Array<{ id: string; bytes: Uint8Array }> = [];
  const kinds = { full: { n: 0, bytes: 0, ms: 0 }, delta: { n: 0, bytes: 0, ms: 0 } };
  let fullEvery = 0;
  let next = yearUsers;
  for (let s = 0; s < snapshots; s++) {
    const started = performance.now();
    const { bytes, parent } = chain.take(`s${s}`, state(), 'bench');
    const kind = kinds[parent === null ? 'full' : 'delta'];
    kind.n++;
    kind.bytes += bytes.length;
    kind.ms += performance.now() - started;
    if (parent === null) links.length = 0;
    links.push({ id: `s${s}`, bytes });
    // The cost before deltas: the whole state every time.
    fullEvery += encodeWindowsState(state(), 'bench').length;
    for (let f = 0; f < frames; f++) {
      const uid = random.next() < newShare ? `user-${next++}` : `user-${random.int(0, next - 1)}`;
      for (const counter of counters) counter.add(uid);
    }
  }
  const started = performance.now();
  const restored = decodeWindowsChain(links, () => new BoundedDistinct(BUDGET, 14));
  const readMs = performance.now() - started;
  const kib = (n: number) => `${(n / 1024).toFixed(1)} KiB`;
  const avg = (k: { n: number; bytes: number; ms: number }) => (k.n === 0 ? '–' : `${kib(k.bytes / k.n)}, encoded in ${(k.ms / k.n).toFixed(1)} ms`);
  const written = kinds.full.bytes + kinds.delta.bytes;
  console.log(`durable state, mid-year: year ${yearUsers} users (month ${yearUsers * 0.3}, week ${yearUsers * 0.1}, day ${yearUsers * 0.02}, hour ${yearUsers * 0.003}, minute ${yearUsers * 0.0002}); ${frames} frames between snapshots, ${newShare * 100}% new users`);
  console.log(`  full snapshot  (${kinds.full.n}): ${avg(kinds.full)}`);
  console.log(`  delta snapshot (${kinds.delta.n}): ${avg(kinds.delta)}`);
  console.log(`  per snapshot over ${snapshots}: ${kib(written / snapshots)} written, against ${kib(fullEvery / snapshots)} with every snapshot full (${(fullEvery / written).toFixed(1)}x less)`);
  console.log(`  a restart reads the chain of ${links.length} (${kib(links.reduce((n, l) => n + l.bytes.length, 0))}) back in ${readMs.toFixed(0)} ms; year window ${restored.state.windows.at(-1)!.counter.count()} users, live ${counters.at(-1)!.count()} (the frames after the last snapshot are not in it)`);
}
