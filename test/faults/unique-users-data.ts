/**
 * The input of the unique-users fault tests: seeded user-tracker frames (shuffled within
 * 3 s, so with the default 5 s allowed lateness none is late, whatever partition it lands
 * on) replayed into a fresh topic keyed by uid, and the minutes a naive recomputation
 * (test/users/reference.ts) gives for them.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { seededRandom } from '../../src/core/random.ts';
import { userTrackerFrames } from '../../src/core/user-tracker-frames.ts';
import { referenceUniqueUsers } from '../users/reference.ts';
import type { ReferenceMinute } from '../users/reference.ts';
import { BROKERS_FLAG, FAULT_BROKERS, createTopics, messageCount } from './cluster.ts';
import { forEachMessageIndependently } from '../helpers/independent-reader.ts';
import { tickflow } from './tickflow-process.ts';

export const FRAMES = 300_000;

export async function framesTopic(topic: string, seed: string): Promise<ReferenceMinute[]> {
  const generator = userTrackerFrames({ random: seededRandom(seed), perSecond: 100, users: 5000, bytes: 300, disorderSeconds: 3, lateShare: 0, lateSeconds: [10, 60] });
  const texts = Array.from({ length: FRAMES }, () => generator.next().value!.text);
  const expected = referenceUniqueUsers(texts.map((text) => ({ partition: 0, text })));
  assert.deepEqual([expected.late.length, expected.invalid], [0, 0], 'no frame late or invalid, in any order of partitions');
  const dir = await mkdtemp(join(tmpdir(), 'tickflow-faults-frames-'));
  try {
    const file = join(dir, 'frames.jsonl');
    await writeFile(file, `${texts.join('\n')}\n`);
    await createTopics([topic]);
    const replayed = await tickflow(['replay', file, '--output', topic, '--key', 'uid', ...BROKERS_FLAG]);
    assert.equal(replayed.code, 0, replayed.stderr);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
  assert.equal(await messageCount(topic), FRAMES, 'the topic holds every frame once');
  return expected.minutes;
}

/**
 * What the minutes out differ in from the recomputation, in one line (empty: nothing):
 * minutes twice, missing, unexpected or with other counts, and frames called late.
 */
export function minutesProblem(minutes: readonly ReferenceMinute[], expected: readonly ReferenceMinute[], lateFrames: number): string {
  const byStart = new Map(expected.map((m) => [m.start, m]));
  const seen = new Set<number>();
  const twice: string[] = [];
  const wrong: string[] = [];
  const unexpected: string[] = [];
  for (const m of minutes) {
    if (seen.has(m.start)) twice.push(m.minute);
    seen.add(m.start);
    const e = byStart.get(m.start);
    if (!e) unexpected.push(m.minute);
    else if (m.uniqueUsers !== e.uniqueUsers || m.frames !== e.frames || m.late !== e.late) wrong.push(`${m.minute} ${m.frames} frames/${m.uniqueUsers} users (expected ${e.frames}/${e.uniqueUsers})`);
  }
  const missing = expected.filter((m) => !seen.has(m.start)).map((m) => m.minute);
  const parts = [];
  if (lateFrames > 0) parts.push(`${lateFrames} frames sent to the late topic`);
  if (wrong.length > 0) parts.push(`${wrong.length} of ${expected.length} minutes with other counts: ${wrong.slice(0, 3).join(', ')}${wrong.length > 3 ? ', …' : ''}`);
  if (twice.length > 0) parts.push(`${twice.length} minutes out twice (${twice.slice(0, 3).join(', ')})`);
  if (missing.length > 0) parts.push(`${missing.length} minutes missing (${missing.slice(0, 3).join(', ')})`);
  if (unexpected.length > 0) parts.push(`${unexpected.length} unexpected minutes`);
  if (parts.length === 0 && minutes.length !== expected.length) parts.push(`${minutes.length} minutes out, expected ${expected.length}`);
  return parts.join('; ');
}

/**
 * The output topic read independently (at read_committed): every minute once, in order, with
 * the counts of the recomputation, and nothing on the late topic.
 */
export async function assertMinutesAsRecomputed(output: string, late: string, expected: readonly ReferenceMinute[]): Promise<void> {
  const minutes: ReferenceMinute[] = [];
  await forEachMessageIndependently(FAULT_BROKERS, output, (m) => void minutes.push(JSON.parse(m.value!) as ReferenceMinute));
  const lateFrames = await forEachMessageIndependently(FAULT_BROKERS, late, () => undefined);
  const problem = minutesProblem(minutes, expected, lateFrames);
  assert.ok(problem === '', `minutes differ from the recomputation: ${problem}`);
  assert.deepEqual(minutes, expected, 'in order');
}
