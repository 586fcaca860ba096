import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { seededRandom } from '../../src/core/random.ts';
import { UserFrameReader } from '../../src/core/user-frame.ts';
import { userTrackerFrames } from '../../src/core/user-tracker-frames.ts';
import { rootUidTs } from '../users/reference.ts';

const readers = { strict: new UserFrameReader(), fast: new UserFrameReader({ validateStrings: false }) };

function read(text: string, mode: keyof typeof readers = 'strict') {
  const reader = readers[mode];
  const bytes = Buffer.from(`#${text}#`);
  return reader.read(bytes, 1, bytes.length - 1) ? { uid: reader.uid, ts: reader.ts } : { problem: reader.problem };
}

describe('UserFrameReader', () => {
  const cases: Array<[string, string, ReturnType<typeof read>]> = [
    ['number ts', '{"uid":"a1","ts":1468244384}', { uid: 'a1', ts: 1468244384 }],
    ['string ts', '{"uid":"a1","ts":"1468244384"}', { uid: 'a1', ts: 1468244384 }],
    ['fractional and exponent ts', '{"uid":"a1","ts":1.468244384e9}', { uid: 'a1', ts: 1468244384 }],
    ['fractional string ts', '{"uid":"a1","ts":"1468244384.75"}', { uid: 'a1', ts: 1468244384.75 }],
    ['negative ts (before 1970)', '{"uid":"a1","ts":-86400}', { uid: 'a1', ts: -86400 }],
    ['escaped string ts', '{"uid":"a1","ts":"\\u0031\\u0032"}', { uid: 'a1', ts: 12 }],
    ['long integer ts beyond the fast path', '{"uid":"a1","ts":1468244384000000}', { problem: 'bad-ts' }],
    ['nested uid/ts do not count', '{"x":{"uid":"n","ts":1},"uid":"root","ts":2,"y":[{"ts":3}]}', { uid: 'root', ts: 2 }],
    ['duplicate keys: last wins', '{"uid":"first","ts":1,"uid":"second","ts":"2"}', { uid: 'second', ts: 2 }],
    ['escaped key and unicode uid', '{"\\u0075id":"Zürich-😀","ts":5}', { uid: 'Zürich-😀', ts: 5 }],
    ['not JSON', '{"uid":"a1","ts":5', { problem: 'not-json' }],
    ['an array', '[{"uid":"a1","ts":5}]', { problem: 'not-an-object' }],
    ['no uid', '{"ts":5}', { problem: 'missing-uid' }],
    ['only a nested uid', '{"x":{"uid":"a"},"ts":5}', { problem: 'missing-uid' }],
    ['numeric uid', '{"uid":42,"ts":5}', { problem: 'bad-uid' }],
    ['empty uid', '{"uid":"","ts":5}', { problem: 'bad-uid' }],
    ['no ts', '{"uid":"a"}', { problem: 'missing-ts' }],
    ['null ts', '{"uid":"a","ts":null}', { problem: 'bad-ts' }],
    ['ts not numeric', '{"uid":"a","ts":"yesterday"}', { problem: 'bad-ts' }],
    ['ts with spaces', '{"uid":"a","ts":" 12"}', { problem: 'bad-ts' }],
    ['ts with a leading zero', '{"uid":"a","ts":"012"}', { problem: 'bad-ts' }],
    ['ts beyond the range of a date', '{"uid":"a","ts":1e13}', { problem: 'bad-ts' }],
    ['ts as an object', '{"uid":"a","ts":{"s":1}}', { problem: 'bad-ts' }],
    ['a later non-string uid wins', '{"uid":"a","ts":1,"uid":null}', { problem: 'bad-uid' }],
  ];
  for (const [name, text, expected] of cases) {
    it(name, () => {
      assert.deepEqual(read(text), expected);
      assert.deepEqual(read(text, 'fast'), expected);
      const reference = rootUidTs(text);
      if ('uid' in expected) assert.deepEqual(reference, expected, 'the JSON.parse reference agrees');
      else assert.equal(reference, null, 'the JSON.parse reference rejects it too');
    });
  }

  it('gives a plain ASCII uid as its bytes, and any other uid as a string only', () => {
    const reader = new UserFrameReader({ validateStrings: false });
    const plain = Buffer.from('{"x":{"uid":"no"},"uid":"u-123","ts":1}');
    assert.equal(reader.read(plain), true);
    const ascii = reader.uidAscii!;
    assert.equal(Buffer.from(ascii.bytes.subarray(ascii.start, ascii.end)).toString('latin1'), 'u-123');
    assert.equal(ascii.bytes, plain);
    assert.equal(reader.uid, 'u-123');
    for (const [text, uid] of [['{"uid":"a\\u0062c","ts":1}', 'abc'], ['{"uid":"Zürich","ts":1}', 'Zürich'], ['{"uid":"a\\"b","ts":1}', 'a"b']]) {
      assert.equal(reader.read(Buffer.from(text!)), true, text);
      assert.equal(reader.uidAscii, null, text);
      assert.equal(reader.uid, uid);
    }
    assert.equal(reader.read(Buffer.from('{"uid":"","ts":1}')), false);
    assert.equal(reader.uidAscii, null);
    assert.equal(reader.uid, '');
  });

  it('agrees with JSON.parse on 20,000 generated frames (decoys, string ts, duplicate keys, escapes)', () => {
    const frames = userTrackerFrames({ random: seededRandom('user-frame'), lateShare: 0.05, duplicateKeyShare: 0.2, stringTsShare: 0.3 });
    for (let i = 0; i < 20_000; i++) {
      const frame = frames.next().value!;
      const expected = rootUidTs(frame.text);
      assert.deepEqual(expected, { uid: frame.uid, ts: frame.ts }, 'the generator knows its own root fields');
      assert.deepEqual(read(frame.text, 'fast'), expected);
      assert.deepEqual(read(frame.text, 'strict'), expected);
    }
  });
});
