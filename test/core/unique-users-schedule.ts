/**
 * Random schedules for the in-process resume tests (test/core/unique-users-resume.test.ts,
 * test/core/unique-users-state.test.ts): three partitions of frames a few seconds out of
 * order, some late, some far off (held by the guard), idle declarations, quiet moments and
 * commits.
 */
import { seededRandom } from '../../src/core/random.ts';

export const T0 = 1_468_244_340; // a minute boundary

export type Step =
  | { kind: 'frame'; partition: number; offset: bigint; ms: number; uid: string }
  | { kind: 'idle'; partition: number }
  | { kind: 'quiet' }
  | { kind: 'commit' };

export interface Ref {
  partition: number;
  offset: bigint;
}

export function schedule(seed: number, options: { frames: number; idle: boolean; secondsPerFrame: number }): Step[] {
  const rng = seededRandom(seed);
  const random = () => rng.next();
  const steps: Step[] = [];
  const offsets = [0n, 0n, 0n];
  const times = [0, 0, 0];
  for (let i = 0; i < options.frames; i++) {
    const partition = Math.floor(random() * 3);
    times[partition] += random() * 2 * options.secondsPerFrame;
    let seconds = times[partition] + (random() - 0.5) * 6;
    const r = random();
    if (r < 0.02) seconds -= 20 + random() * 100; // late
    else if (r < 0.12) seconds = times[partition] - 3 - random() * 5; // just in time, or just late: the partition's exact time decides
    else if (r < 0.125) seconds += (random() < 0.5 ? -1 : 1) * (1200 + random() * 1e6); // far off: held by the guard
    steps.push({ kind: 'frame', partition, offset: offsets[partition]++, ms: Math.round((T0 + seconds) * 1000), uid: `u${Math.floor(random() * 40)}` });
    if (options.idle && random() < 0.01) steps.push({ kind: 'idle', partition: Math.floor(random() * 3) });
    if (options.idle && random() < 0.001) steps.push({ kind: 'quiet' });
    if (random() < 0.03) steps.push({ kind: 'commit' });
  }
  steps.push({ kind: 'quiet' }, { kind: 'commit' });
  return steps;
}
