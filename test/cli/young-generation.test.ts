/**
 * `stats` caps V8's young generation so that its peak memory does not grow with the topic
 * (src/cli/young-generation.ts). A child process keeps a rolling set of young objects alive
 * across scavenges, the pattern that makes V8 grow its young generation, and reports the
 * largest new space it saw: with the cap it stays at two 16 MiB semi-spaces; without it, the
 * same allocations grow it past 64 MiB.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { pathToFileURL } from 'node:url';
import path from 'node:path';

const MODULE = pathToFileURL(path.resolve(import.meta.dirname, '../../src/cli/young-generation.ts')).href;

const CHILD = `
import { getHeapSpaceStatistics } from 'node:v8';
import { capYoungGeneration } from '${MODULE}';
if (process.argv[1] === 'cap') capYoungGeneration(16, 1);
const newSpace = () => getHeapSpaceStatistics().find((s) => s.space_name === 'new_space').space_size;
let max = 0;
const ring = new Array(64).fill(null);
for (let round = 0; round < 2000; round++) {
  const slot = [];
  for (let i = 0; i < 5000; i++) slot.push({ a: i, b: round, c: [i] });
  ring[round % ring.length] = slot;
  max = Math.max(max, newSpace());
  if (round % 10 === 0) await new Promise((resolve) => setImmediate(resolve));
}
console.log(max);
`;

function largestNewSpaceMiB(cap: boolean): number {
  const run = spawnSync(process.execPath, ['--input-type=module', '-e', CHILD, ...(cap ? ['cap'] : [])], { encoding: 'utf8', timeout: 120_000 });
  assert.equal(run.status, 0, run.stderr);
  return Number(run.stdout.trim()) / (1 << 20);
}

describe('capYoungGeneration', () => {
  it('keeps the young generation at the cap under allocations that grow it without one', () => {
    const uncapped = largestNewSpaceMiB(false);
    const capped = largestNewSpaceMiB(true);
    assert.ok(uncapped >= 64, `without the cap the new space grew to ${uncapped} MiB`);
    // Two 16 MiB semi-spaces, plus pages V8 adds for a moment while a scavenge runs out of room.
    assert.ok(capped < 64, `with the cap the new space reached ${capped} MiB`);
  });
});
