import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createRecordsBatch } from '@platformatic/kafka';
import { decodeBatches } from '../../src/log/kafka-records.ts';
import type { DecodeTarget } from '../../src/log/kafka-records.ts';
import type { LogRecord } from '../../src/log/types.ts';
import { seededRandom } from '../../src/core/random.ts';
import type { Random } from '../../src/core/random.ts';

/**
 * Record batches are written by the client library's own encoder (independent of ours),
 * then decoded from one buffer and from the same bytes cut into chunks the way a socket
 * delivers them, at every kind of boundary (inside batch headers, record lengths, keys,
 * values, headers, compressed batches).
 */

interface Message {
  key?: Buffer;
  value?: Buffer;
  headers?: Map<Buffer, Buffer>;
  timestamp: bigint;
  topic: string;
}

function batch(baseOffset: bigint, messages: Message[], compression: 'none' | 'gzip' = 'none'): Buffer {
  const bytes = Buffer.from(createRecordsBatch(messages as never, { compression }).buffer);
  bytes.writeBigInt64BE(baseOffset, 0);
  return bytes;
}

function messages(random: Random, count: number, firstTs: bigint): Message[] {
  return Array.from({ length: count }, (_, i) => {
    const size = [0, 3, 130, 2000, 70_000][random.int(0, 4)]!;
    const value = Buffer.alloc(size, String.fromCharCode(97 + (i % 26)));
    const message: Message = { topic: 't', timestamp: firstTs + BigInt(i * 7) };
    if (random.int(0, 9) > 0) message.value = value;
    if (random.int(0, 2) === 0) message.key = Buffer.from(`key-${i}`);
    if (random.int(0, 4) === 0) message.headers = new Map([[Buffer.from('h'), Buffer.from(`v${i}`)]]);
    return message;
  });
}

function plain(records: LogRecord[]) {
  return records.map((r) => ({
    offset: r.offset,
    timestamp: r.timestamp,
    key: r.key?.toString('hex') ?? null,
    value: r.value?.toString('hex') ?? null,
    headers: r.headers.map(([k, v]) => [k, v.toString('hex')]),
  }));
}

function cut(data: Buffer, sizes: () => number): Buffer[] {
  const chunks: Buffer[] = [];
  for (let at = 0; at < data.length;) {
    const size = Math.max(1, Math.min(sizes(), data.length - at));
    chunks.push(Buffer.from(data.subarray(at, at + size))); // separate memory, like socket reads
    at += size;
  }
  return chunks;
}

function decode(data: Buffer | Buffer[], next: bigint, end?: bigint) {
  const target: DecodeTarget = { topic: 't', partition: 0, next, ...(end === undefined ? {} : { end }) };
  const out: LogRecord[] = [];
  decodeBatches(data, target, out);
  return { records: plain(out), next: target.next };
}

describe('decodeBatches over socket chunks', () => {
  const random = seededRandom(7);
  const parts: Buffer[] = [];
  let offset = 100n;
  for (let b = 0; b < 12; b++) {
    const list = messages(random, random.int(1, 40), 1_700_000_000_000n + BigInt(b) * 1000n);
    parts.push(batch(offset, list, b % 5 === 4 ? 'gzip' : 'none'));
    offset += BigInt(list.length);
  }
  const whole = Buffer.concat(parts);
  const total = offset - 100n;

  it('decodes the same records from one buffer and from chunks of every size', () => {
    const expected = decode(whole, 100n);
    assert.equal(expected.records.length, Number(total));
    assert.deepEqual(expected.records.map((r) => r.offset), Array.from({ length: Number(total) }, (_, i) => 100n + BigInt(i)));
    assert.equal(expected.next, offset);
    for (const size of [1, 2, 5, 13, 61, 62, 1000, 4096, 65_536]) {
      assert.deepEqual(decode(cut(whole, () => size), 100n), expected, `chunks of ${size} bytes`);
    }
    const sizes = seededRandom(11);
    for (let round = 0; round < 20; round++) {
      assert.deepEqual(decode(cut(whole, () => sizes.int(1, 80_000)), 100n), expected, `random chunks, round ${round}`);
    }
  });

  it('honours the position and the end of the range across chunks', () => {
    const from = 100n + total / 3n;
    const to = 100n + (2n * total) / 3n;
    const expected = decode(whole, from, to);
    assert.deepEqual(expected.records.map((r) => r.offset), Array.from({ length: Number(to - from) }, (_, i) => from + BigInt(i)));
    assert.equal(expected.next, to);
    for (const size of [3, 61, 777, 65_536]) assert.deepEqual(decode(cut(whole, () => size), from, to), expected, `chunks of ${size} bytes`);
  });

  it('stops before a partial batch at the end of the chunks', () => {
    const partial = whole.subarray(0, whole.length - 10);
    const expected = decode(partial, 100n);
    assert.equal(expected.records.length, Number(total) - (parts.length > 0 ? countIn(parts.at(-1)!) : 0));
    for (const size of [7, 64, 65_536]) assert.deepEqual(decode(cut(partial, () => size), 100n), expected, `chunks of ${size} bytes`);
  });
});

function countIn(batchBytes: Buffer): number {
  return batchBytes.readInt32BE(57);
}
