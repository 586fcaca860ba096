import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { seededRandom } from '../../src/core/random.ts';
import { UserFrameReader } from '../../src/core/user-frame.ts';
import { userTrackerFrames } from '../../src/core/user-tracker-frames.ts';
import type { LogRecord } from '../../src/log/types.ts';
import { FrameScanner, ScannedFrames } from '../../src/pipelines/frame-scanner.ts';

const record = (value: Buffer | null, offset: number): LogRecord => ({ topic: 't', partition: 0, offset: BigInt(offset), timestamp: 0n, key: null, value, headers: [] });

function read(reader: { problem: string | null; detail: string; ts: number; uid: string }) {
  return reader.problem === null ? { ts: reader.ts, uid: reader.uid } : { problem: reader.problem, detail: reader.detail };
}

describe('FrameScanner (root fields read on a worker thread)', () => {
  it('reads every frame as UserFrameReader does, batch after batch, buffers reused', async () => {
    const generator = userTrackerFrames({ random: seededRandom('scanner'), duplicateKeyShare: 0.2, stringTsShare: 0.3 });
    const odd = ['not json', '{"uid":"x"}', '{"uid":"Zürich-😀","ts":5}', '{"uid":"a\\u0062c","ts":"7"}', '[1]', '{"uid":"","ts":1}'];
    const scanner = new FrameScanner(false);
    const reader = new UserFrameReader({ validateStrings: false });
    try {
      for (let round = 0; round < 5; round++) {
        const texts = [...Array.from({ length: 400 }, () => generator.next().value!.text), ...odd];
        const records = texts.map((text, i) => record(Buffer.from(text), i));
        records.push(record(null, records.length));
        const batch = scanner.submit(records)!;
        const result = await batch.result;
        const view = new ScannedFrames(result);
        for (let i = 0; i < records.length; i++) {
          const value = records[i]!.value ?? Buffer.alloc(0);
          const ok = reader.read(value);
          assert.equal(view.at(i), ok, `frame ${i} of round ${round}`);
          assert.deepEqual(read(view), read(reader), `frame ${i} of round ${round}`);
          assert.equal(view.bytes.subarray(batch.frames[2 * i], batch.frames[2 * i + 1]).toString(), value.toString(), 'the frame bytes');
        }
        scanner.release(result);
      }
    } finally {
      await scanner.close();
    }
  });

  it('declines a batch larger than its buffers (the caller reads it itself)', async () => {
    const scanner = new FrameScanner(false);
    try {
      const big = Buffer.alloc(1 << 20, 0x20);
      assert.equal(scanner.submit(Array.from({ length: 18 }, (_, i) => record(big, i))), null);
      const small = scanner.submit([record(Buffer.from('{"uid":"a","ts":1}'), 0)])!;
      assert.equal((await small.result).status[0], 0);
    } finally {
      await scanner.close();
    }
  });
});
