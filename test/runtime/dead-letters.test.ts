import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { TickflowError } from '../../src/core/errors.ts';
import {
  DEFAULT_DEAD_LETTER_LIMIT,
  DEFAULT_MAX_RECORD_BYTES,
  KAFKA_DEFAULT_MAX_MESSAGE_BYTES,
  REFERENCE_FIRST_BYTES,
  asReference,
  deadLetter,
  isReference,
  recordBytes,
  tooLarge,
  tooLargeRejection,
} from '../../src/runtime/dead-letters.ts';
import type { DeadLetterReference } from '../../src/runtime/dead-letters.ts';
import { isMessageTooLarge, withDeadLetterFallback } from '../../src/runtime/dead-letter-producer.ts';
import type { LogRecord, Producer, RecordToProduce } from '../../src/log/types.ts';

function source(overrides: Partial<LogRecord> = {}): LogRecord {
  return {
    topic: 'users',
    partition: 2,
    offset: 42n,
    timestamp: 1_700_000_000_000n,
    key: Buffer.from('user-7'),
    value: Buffer.from('{"id": 7, "email": "nope"}'),
    headers: [],
    ...overrides,
  };
}

const SOURCE_HEADERS = { 'x-source-topic': 'users', 'x-source-partition': '2', 'x-source-offset': '42', 'x-pipeline': 'clean-users' };

/** A value of n bytes that is not UTF-8 (0xff never occurs in UTF-8). */
function binary(n: number): Buffer {
  const b = Buffer.alloc(n);
  for (let i = 0; i < n; i++) b[i] = i % 3 === 0 ? 0xff : (i * 7) & 0xff;
  return b;
}

function referenceOf(letter: RecordToProduce): DeadLetterReference {
  return JSON.parse(String(letter.value)) as DeadLetterReference;
}

describe('deadLetter: the full form', () => {
  it('keeps key and value byte for byte, with exactly the six headers', () => {
    const record = source();
    const letter = deadLetter('clean-users', { record, reason: 'bad-email', error: 'email "nope" has no @' });
    assert.equal(letter.key, record.key, 'the same bytes, keyed like the source');
    assert.equal(letter.value, record.value);
    assert.deepEqual(letter.headers, { 'x-reason': 'bad-email', 'x-error': 'email "nope" has no @', ...SOURCE_HEADERS });
    assert.equal(letter.partition, undefined, 'partitioned by its key, like the source');
  });

  it('adds the rejection\'s x- facts and keeps the original headers unless they clash with ours', () => {
    const record = source({
      headers: [
        ['trace-id', Buffer.from([0x01, 0xff, 0x00])],
        ['x-reason', Buffer.from('an older reason')],
        ['x-original-reason', Buffer.from('from another dead-letter topic')],
        ['x-lateness-ms', Buffer.from('1')],
        ['dup', Buffer.from('first')],
        ['dup', Buffer.from('last')],
      ],
    });
    const letter = deadLetter('unique-users', { record, reason: 'late', error: 'minute already emitted', headers: { 'x-lateness-ms': '61500' } });
    assert.deepEqual(letter.headers, {
      'trace-id': Buffer.from([0x01, 0xff, 0x00]),
      dup: Buffer.from('last'),
      'x-lateness-ms': '61500',
      'x-reason': 'late',
      'x-error': 'minute already emitted',
      ...SOURCE_HEADERS,
      'x-pipeline': 'unique-users',
    });
    assert.equal(isReference(letter), false, 'an x-original-reason of the source does not make it a reference');
  });

  it('refuses extra headers that are not x- facts', () => {
    assert.throws(() => deadLetter('p', { record: source(), reason: 'r', error: 'e', headers: { lateness: '1' } }), /must start with x-/);
  });

  it('keeps values that are not UTF-8 exactly', () => {
    const value = binary(5000);
    const letter = deadLetter('p', { record: source({ value }), reason: 'not-json', error: 'not JSON' });
    assert.ok(Buffer.isBuffer(letter.value));
    assert.ok((letter.value as Buffer).equals(value));
  });

  it('keeps a null key and a null value null', () => {
    const letter = deadLetter('p', { record: source({ key: null, value: null }), reason: 'empty', error: 'no value' });
    assert.equal(letter.key, null);
    assert.equal(letter.value, null);
  });
});

describe('deadLetter: the reference form', () => {
  const rejection = (value: Buffer | null, key: Buffer | null = Buffer.from('k')) => ({
    record: source({ value, key, headers: [['trace-id', Buffer.from('t-1')]] }),
    reason: 'not-json',
    error: 'unexpected byte 0xff at 0',
    headers: { 'x-lateness-ms': '5' },
  });

  it('switches exactly above the limit: limit − 1 reference, limit and limit + 1 full', () => {
    const r = rejection(binary(4000));
    const full = deadLetter('p', r, Number.POSITIVE_INFINITY);
    const size = recordBytes(full);
    assert.equal(isReference(deadLetter('p', r, size + 1)), false);
    assert.equal(isReference(deadLetter('p', r, size)), false, 'a dead letter of exactly the limit is sent as it is');
    const reference = deadLetter('p', r, size - 1);
    assert.equal(isReference(reference), true, 'one byte over: a reference');
    assert.ok(recordBytes(reference) <= size - 1);
  });

  it('is a small JSON value naming the original, with the first KiB as base64, keyed like the source', () => {
    const value = binary(3 * REFERENCE_FIRST_BYTES);
    const r = rejection(value);
    const reference = deadLetter('clean-users', r, 2500);
    assert.deepEqual(referenceOf(reference), {
      topic: 'users',
      partition: 2,
      offset: '42',
      size: recordBytes(r.record),
      reason: 'not-json',
      firstBytes: value.subarray(0, REFERENCE_FIRST_BYTES).toString('base64'),
    });
    assert.ok(Buffer.from(referenceOf(reference).firstBytes!, 'base64').equals(value.subarray(0, 1024)), 'non-UTF-8 bytes survive exactly');
    assert.deepEqual(reference.key, Buffer.from('k'));
    assert.deepEqual(reference.headers, {
      'trace-id': Buffer.from('t-1'),
      'x-lateness-ms': '5',
      'x-reason': 'too-large',
      'x-error': 'unexpected byte 0xff at 0',
      ...SOURCE_HEADERS,
      'x-original-reason': 'not-json',
    });
    assert.ok(recordBytes(reference) <= 2500);
  });

  it('drops the original headers, then the key, when even the reference would not fit', () => {
    const big = Buffer.alloc(1500, 0x61);
    const record = source({ key: big, value: binary(10_000), headers: [['h', big]] });
    const letter = deadLetter('p', { record, reason: 'r', error: 'e' }, 3800);
    assert.equal(isReference(letter), true);
    assert.deepEqual(letter.key, big);
    assert.equal(letter.headers!.h, undefined);
    const smaller = deadLetter('p', { record, reason: 'r', error: 'e' }, 2500);
    assert.equal(smaller.key, null);
    assert.ok(recordBytes(smaller) <= 2500);
  });

  it('handles null values and keys', () => {
    const record = source({ key: null, value: null, headers: [['h', Buffer.alloc(5000)]] });
    const letter = deadLetter('p', { record, reason: 'empty', error: 'no value' }, 3000);
    assert.equal(isReference(letter), true);
    assert.equal(letter.key, null);
    assert.equal(referenceOf(letter).firstBytes, null);
  });

  it('asReference turns a full dead letter into the same reference deadLetter would give', () => {
    const r = rejection(binary(9000));
    const full = deadLetter('p', r, Number.POSITIVE_INFINITY);
    assert.deepEqual(asReference(full), deadLetter('p', r, 4000));
  });

  it('a record rejected as too-large says so twice', () => {
    const record = source({ value: Buffer.alloc(DEFAULT_MAX_RECORD_BYTES + 1) });
    assert.equal(tooLarge(record, DEFAULT_MAX_RECORD_BYTES), true);
    const letter = deadLetter('p', tooLargeRejection(record, DEFAULT_MAX_RECORD_BYTES));
    assert.equal(letter.headers!['x-reason'], 'too-large');
    assert.equal(letter.headers!['x-original-reason'], 'too-large');
    assert.match(String(letter.headers!['x-error']), /^value of 1048577 bytes is over --max-record-bytes 1048576/);
  });
});

describe('recordBytes and tooLarge', () => {
  it('counts a record as Kafka encodes it alone in a batch', () => {
    // length 1 + attributes 1 + deltas 2 + key -1 (1) + value 1 (1) + "a" + no headers (1)
    assert.equal(recordBytes({ key: null, value: 'a' }), 8);
    assert.equal(recordBytes({ key: 'é', value: Buffer.alloc(0), headers: { h: 'v' } }), 1 + 3 + 1 + 2 + 1 + 1 + 1 + 1 + 1 + 1);
    const asLog = source({ headers: [['h', Buffer.from('v')]] });
    assert.equal(recordBytes(asLog), recordBytes({ key: asLog.key, value: asLog.value, headers: { h: Buffer.from('v') } }));
    // Two-byte varints: a value of 64 bytes has zig-zag length 128.
    assert.equal(recordBytes({ key: null, value: Buffer.alloc(64) }) - recordBytes({ key: null, value: Buffer.alloc(63) }), 2);
  });

  it('leaves room for the batch header under Kafka\'s default limit', () => {
    assert.equal(DEFAULT_DEAD_LETTER_LIMIT, KAFKA_DEFAULT_MAX_MESSAGE_BYTES - 61);
  });

  it('tooLarge looks at the value only, through valueRange when the adapter has it', () => {
    assert.equal(tooLarge(source({ value: Buffer.alloc(100) }), 100), false);
    assert.equal(tooLarge(source({ value: Buffer.alloc(101) }), 100), true);
    assert.equal(tooLarge(source({ value: null }), 0), false);
    const data = Buffer.alloc(1000);
    const fetched = { ...source(), get value(): Buffer { throw new Error('no view wanted'); }, valueRange: (out: { data: Buffer; start: number; end: number }) => Object.assign(out, { data, start: 10, end: 510 }) !== null };
    assert.equal(tooLarge(fetched, 499), true);
    assert.equal(tooLarge(fetched, 500), false);
  });
});

describe('withDeadLetterFallback', () => {
  /** A producer like a topic with max.message.bytes = limit: a send fails whole if one record is over. */
  function smallTopic(limit: number, details: Record<string, unknown> = { kafkaCode: 'MESSAGE_TOO_LARGE' }) {
    const written: Array<[string, RecordToProduce]> = [];
    let refusals = 0;
    const producer: Producer = {
      send: async (topic, records) => {
        if (records.some((r) => recordBytes(r) > limit)) {
          refusals++;
          throw new TickflowError('LOG_ERROR', `produce to ${topic}: too large`, { topic, ...details });
        }
        for (const r of records) written.push([topic, r]);
      },
      close: async () => undefined,
    };
    return { producer, written, refusals: () => refusals };
  }

  const letters = (...sizes: number[]) => sizes.map((n, i) => deadLetter('p', { record: source({ offset: BigInt(i), value: binary(n) }), reason: 'not-json', error: 'e' }));

  it('sends a refused dead letter as a reference and carries on', async () => {
    for (const details of [{ kafkaCode: 'MESSAGE_TOO_LARGE' }, { code: 10 }]) {
      const topic = smallTopic(10_000, details);
      const fallbacks: RecordToProduce[] = [];
      const producer = withDeadLetterFallback(topic.producer, ['dlq'], { onReference: (_t, r) => fallbacks.push(r) });
      await producer.send('dlq', letters(100, 50_000, 200));
      assert.deepEqual(topic.written.map(([, r]) => [r.headers!['x-source-offset'], r.headers!['x-reason']]), [['0', 'not-json'], ['1', 'too-large'], ['2', 'not-json']], 'in order, the large one by reference');
      assert.equal(referenceOf(topic.written[1]![1]).size, recordBytes(source({ value: binary(50_000) })));
      assert.equal(fallbacks.length, 1);
      await producer.send('dlq', letters(60_000));
      assert.equal(topic.written.length, 4);
      assert.equal(topic.refusals(), 3, 'the batch, its large letter alone, then a lone letter straight to its reference');
    }
  });

  it('passes other topics and other errors through', async () => {
    const topic = smallTopic(10_000);
    const producer = withDeadLetterFallback(topic.producer, ['dlq']);
    await assert.rejects(producer.send('output', letters(50_000)), /too large/);
    const failing: Producer = { send: async () => Promise.reject(new TickflowError('LOG_UNAVAILABLE', 'broker down')), close: async () => undefined };
    await assert.rejects(withDeadLetterFallback(failing, ['dlq']).send('dlq', letters(10)), /broker down/);
  });

  it('gives up when even the reference is refused', async () => {
    const topic = smallTopic(500);
    await assert.rejects(withDeadLetterFallback(topic.producer, ['dlq']).send('dlq', letters(5000)), /too large/);
  });

  it('recognises MESSAGE_TOO_LARGE by code, never by text', () => {
    assert.equal(isMessageTooLarge(new TickflowError('LOG_ERROR', 'x', { kafkaCode: 'MESSAGE_TOO_LARGE' })), true);
    assert.equal(isMessageTooLarge(new TickflowError('LOG_ERROR', 'x', { code: 10 })), true);
    assert.equal(isMessageTooLarge(new TickflowError('LOG_ERROR', 'MESSAGE_TOO_LARGE', { code: 3 })), false);
    assert.equal(isMessageTooLarge(new Error('MESSAGE_TOO_LARGE')), false);
    assert.equal(isMessageTooLarge(null), false);
  });
});
