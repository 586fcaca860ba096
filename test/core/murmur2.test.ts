import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { murmur2, partitionForKey } from '../../src/core/murmur2.ts';

describe('murmur2', () => {
  // Vectors from the Java client's UtilsTest.testMurmur2.
  const vectors: Array<[string, number]> = [
    ['21', -973932308],
    ['foobar', -790332482],
    ['a-little-bit-long-string', -985981536],
    ['a-little-bit-longer-string', -1486304829],
    ['lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8', -58897971],
    ['abc', 479470107],
  ];
  for (const [input, expected] of vectors) {
    it(`hashes ${JSON.stringify(input)} as the Java client does`, () => {
      assert.equal(murmur2(Buffer.from(input)), expected);
    });
  }

  it('maps keys to partitions with the sign bit cleared', () => {
    assert.equal(partitionForKey(Buffer.from('21'), 7), (-973932308 & 0x7fffffff) % 7);
    for (let i = 0; i < 1000; i++) {
      const p = partitionForKey(Buffer.from(`key-${i}`), 12);
      assert.ok(p >= 0 && p < 12);
    }
  });
});
