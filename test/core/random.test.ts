import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { seededRandom } from '../../src/core/random.ts';

describe('seededRandom', () => {
  it('repeats the same sequence for the same seed and differs for another', () => {
    const a = seededRandom(42);
    const b = seededRandom(42);
    const c = seededRandom(43);
    const seqA = Array.from({ length: 5 }, () => a.next());
    assert.deepEqual(seqA, Array.from({ length: 5 }, () => b.next()));
    assert.notDeepEqual(seqA, Array.from({ length: 5 }, () => c.next()));
  });

  it('draws normals with mean ~0 and sd ~1', () => {
    const r = seededRandom('normal');
    const n = 200_000;
    let sum = 0;
    let sq = 0;
    for (let i = 0; i < n; i++) {
      const x = r.normal();
      sum += x;
      sq += x * x;
    }
    const mean = sum / n;
    assert.ok(Math.abs(mean) < 0.01, `mean ${mean}`);
    assert.ok(Math.abs(Math.sqrt(sq / n - mean * mean) - 1) < 0.01);
  });

  it('keeps int within bounds and samples distinct items', () => {
    const r = seededRandom(1);
    const seen = new Set<number>();
    for (let i = 0; i < 10_000; i++) {
      const v = r.int(-3, 3);
      assert.ok(v >= -3 && v <= 3);
      seen.add(v);
    }
    assert.equal(seen.size, 7);
    const picked = r.sample(['a', 'b', 'c', 'd'], 3);
    assert.equal(new Set(picked).size, 3);
  });
});
