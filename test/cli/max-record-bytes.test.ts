import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { maxRecordBytes } from '../../src/cli/max-record-bytes.ts';

describe('--max-record-bytes', () => {
  const cases: Array<[string | undefined, number]> = [
    [undefined, 1 << 20],
    ['1048576', 1_048_576],
    ['1_000', 1000],
    ['512KiB', 512 * 1024],
    ['1MiB', 1 << 20],
    ['1.5MiB', 1.5 * (1 << 20)],
    ['5MB', 5_000_000],
    ['10kb', 10_000],
  ];
  for (const [raw, bytes] of cases) {
    it(`${raw ?? '(default)'} is ${bytes} bytes`, () => assert.equal(maxRecordBytes({ 'max-record-bytes': raw }), bytes));
  }
  for (const raw of ['', '1x', '-1', 'MiB', '0']) {
    it(`refuses ${JSON.stringify(raw)} naming the flag`, () => assert.throws(() => maxRecordBytes({ 'max-record-bytes': raw }), /^TickflowError: --max-record-bytes: /));
  }
});
