import { after, before, beforeEach, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { NetworkError, Reader } from '@platformatic/kafka';
import type { Producer as KafkaProducer, Writer } from '@platformatic/kafka';
import { isTickflowError } from '../../src/core/errors.ts';
import { configureRetries, retrySettings } from '../../src/observability/retry.ts';
import { KafkaCode, classifyKafkaError, isTooLarge } from '../../src/log/kafka-errors.ts';
import { FastProduce } from '../../src/log/kafka-produce.ts';
import { decodeBatches } from '../../src/log/kafka-records.ts';
import type { LogRecord, RecordToProduce } from '../../src/log/types.ts';

/**
 * The produce path against a scripted broker that keeps Kafka's idempotence rules (a batch
 * must continue its producer's sequence; a batch seen before is a DUPLICATE_SEQUENCE_NUMBER)
 * and injects faults: answers lost after the append, leaders moving, refused connections,
 * producer state lost. Whatever happens, each partition's log must hold every record once,
 * in order, and a resent batch must be the same bytes.
 */

const TOPIC = 'ticks';

type Fault =
  | { kind: 'lose-answer' } // append, then the connection drops before the answer
  | { kind: 'code'; code: number; moveLeaderTo?: number } // answer with this code (nothing appended)
  | { kind: 'forget-producers' }; // the broker lost every producer's state for the partition

interface Appended {
  producerId: bigint;
  baseSequence: number;
  bytes: Buffer;
}

class FakeCluster {
  leaders = [1, 1];
  readonly logs: Appended[][] = [[], []];
  producerIds = 0;
  refreshes = 0;
  /** Faults to inject, consumed in order, per partition. */
  readonly faults = new Map<number, Fault[]>();
  /** Nodes whose connections are refused, and how many more times (Infinity: until cleared). */
  readonly refusing = new Map<number, number>();
  readonly sentBytes = new Map<string, Buffer>();
  resentSame = 0;
  readonly #state = new Map<string, { last: number; bases: Set<number> }>();
  #cachedLeaders = [...this.leaders];

  client(): KafkaProducer {
    const brokers = new Map([1, 2].map((id) => [id, { host: `broker-${id}`, port: 9000 + id }]));
    const client = {
      initIdempotentProducer: async () => ({ producerId: BigInt(++this.producerIds), producerEpoch: 0 }),
      clearMetadata: () => {
        this.refreshes++;
        this.#cachedLeaders = [...this.leaders];
      },
      metadata: async () => ({
        brokers,
        topics: new Map([[TOPIC, { partitionsCount: 2, partitions: this.#cachedLeaders.map((leader) => ({ leader })) }]]),
      }),
      connections: {
        get: async (broker: { port: number }) => {
          const node = broker.port - 9000;
          const left = this.refusing.get(node) ?? 0;
          if (left > 0) {
            this.refusing.set(node, left - 1);
            throw new NetworkError(`Connection to broker-${node}:${broker.port} failed.`, { cause: new Error('connect ECONNREFUSED') });
          }
          return { send: (...args: unknown[]) => this.#handle(node, args) };
        },
      },
    };
    return client as unknown as KafkaProducer;
  }

  /** Values per partition, decoded from the appended batches. */
  values(partition: number): string[] {
    const out: LogRecord[] = [];
    for (const batch of this.logs[partition]) decodeBatches(batch.bytes, { topic: TOPIC, partition, next: 0n }, out);
    return out.map((r) => r.value!.toString());
  }

  #handle(node: number, args: unknown[]): void {
    const payload = args[2] as () => Writer;
    const callback = args[6] as (error: Error | null, response?: unknown) => void;
    const responses: Array<{ index: number; errorCode: number }> = [];
    let loseAnswer = false;
    for (const { partition, bytes } of parseProduceRequest(payload())) {
      const fault = this.faults.get(partition)?.shift();
      const producerId = bytes.readBigInt64BE(43);
      const baseSequence = bytes.readInt32BE(53);
      const key = `${producerId}:${partition}:${baseSequence}`;
      const first = this.sentBytes.get(key);
      if (first) {
        assert.ok(first.equals(bytes), `batch ${key} was resent with different bytes`);
        this.resentSame++;
      } else this.sentBytes.set(key, Buffer.from(bytes));
      if (this.leaders[partition] !== node) {
        responses.push({ index: partition, errorCode: KafkaCode.NOT_LEADER_OR_FOLLOWER });
        continue;
      }
      if (fault?.kind === 'code') {
        if (fault.moveLeaderTo) this.leaders[partition] = fault.moveLeaderTo;
        // A batch refused for its size is never written: the producer may send other bytes under its sequence.
        if (fault.code === KafkaCode.RECORD_LIST_TOO_LARGE || fault.code === KafkaCode.MESSAGE_TOO_LARGE) this.sentBytes.delete(key);
        responses.push({ index: partition, errorCode: fault.code });
        continue;
      }
      if (fault?.kind === 'forget-producers') for (const k of [...this.#state.keys()]) if (k.endsWith(`:${partition}`)) this.#state.delete(k);
      if (fault?.kind === 'lose-answer') loseAnswer = true;
      responses.push({ index: partition, errorCode: this.#append(partition, producerId, baseSequence, bytes) });
    }
    if (loseAnswer) callback(new NetworkError('Connection closed'));
    else callback(null, { responses: [{ name: TOPIC, partitionResponses: responses }] });
  }

  /** Kafka's idempotence check, reduced to what one producer with one batch in flight meets. */
  #append(partition: number, producerId: bigint, baseSequence: number, bytes: Buffer): number {
    const count = bytes.readInt32BE(57);
    const key = `${producerId}:${partition}`;
    const state = this.#state.get(key);
    if (state?.bases.has(baseSequence)) return KafkaCode.DUPLICATE_SEQUENCE_NUMBER;
    if (!state && baseSequence !== 0) return KafkaCode.UNKNOWN_PRODUCER_ID;
    if (state && baseSequence !== state.last + 1) return KafkaCode.OUT_OF_ORDER_SEQUENCE_NUMBER;
    this.logs[partition].push({ producerId, baseSequence, bytes: Buffer.from(bytes) });
    this.#state.set(key, { last: baseSequence + count - 1, bases: new Set([...(state?.bases ?? []), baseSequence]) });
    return KafkaCode.NONE;
  }
}

/** The (partition, record batch) pairs of a Produce v11 request body. */
function parseProduceRequest(writer: Writer): Array<{ partition: number; bytes: Buffer }> {
  const reader = Reader.from(writer);
  const result: Array<{ partition: number; bytes: Buffer }> = [];
  reader.readUnsignedVarInt(); // transactional id: null
  reader.readInt16(); // acks
  reader.readInt32(); // timeout
  const topics = reader.readUnsignedVarInt() - 1;
  for (let t = 0; t < topics; t++) {
    reader.readString();
    const partitions = reader.readUnsignedVarInt() - 1;
    for (let p = 0; p < partitions; p++) {
      const partition = reader.readInt32();
      const size = reader.readUnsignedVarInt() - 1;
      result.push({ partition, bytes: Buffer.from(reader.buffer.subarray(reader.position, reader.position + size).slice()) });
      reader.skip(size);
      reader.readUnsignedVarInt(); // tagged fields
    }
    reader.readUnsignedVarInt();
  }
  return result;
}

const records = (from: number, count: number, size = 10): RecordToProduce[] =>
  Array.from({ length: count }, (_, i) => ({ value: `v${from + i}`.padEnd(size, '.'), partition: (from + i) % 2 }));
const expected = (partition: number, upTo: number, size = 10) =>
  Array.from({ length: upTo }, (_, i) => i).filter((i) => i % 2 === partition).map((i) => `v${i}`.padEnd(size, '.'));

describe('FastProduce under faults (scripted broker)', () => {
  const saved = { ...retrySettings() };
  let cluster: FakeCluster;
  let producer: FastProduce;
  before(() => configureRetries({ initialDelayMs: 1, maxDelayMs: 2, retryForMs: 60_000, logger: null }));
  after(() => configureRetries(saved));
  beforeEach(() => {
    cluster = new FakeCluster();
    producer = new FastProduce(cluster.client(), { maxBatchBytes: 4000, timeoutMs: 1000, classify: async (e, c) => classifyKafkaError(e, c) });
  });

  it('resends the same bytes after a lost answer; the broker keeps one copy', async () => {
    cluster.faults.set(0, [{ kind: 'lose-answer' }]);
    cluster.faults.set(1, [{ kind: 'code', code: KafkaCode.REQUEST_TIMED_OUT }, { kind: 'lose-answer' }]);
    await producer.send(TOPIC, records(0, 1000));
    await producer.send(TOPIC, records(1000, 1000));
    assert.deepEqual(cluster.values(0), expected(0, 2000));
    assert.deepEqual(cluster.values(1), expected(1, 2000));
    assert.ok(cluster.resentSame >= 3);
    assert.equal(cluster.producerIds, 1, 'transient errors keep the producer id');
  });

  it('follows a leader to its new broker after refreshing metadata', async () => {
    cluster.faults.set(1, [{ kind: 'code', code: KafkaCode.NOT_LEADER_OR_FOLLOWER, moveLeaderTo: 2 }]);
    cluster.faults.set(0, [{ kind: 'code', code: KafkaCode.LEADER_NOT_AVAILABLE }]);
    await producer.send(TOPIC, records(0, 600));
    assert.deepEqual(cluster.values(1), expected(1, 600));
    assert.deepEqual(cluster.values(0), expected(0, 600));
    assert.ok(cluster.refreshes > 0);
    assert.equal(cluster.producerIds, 1);
  });

  it('rides through refused connections (a broker being restarted)', async () => {
    cluster.refusing.set(1, 3);
    await producer.send(TOPIC, records(0, 300));
    assert.deepEqual(cluster.values(0), expected(0, 300));
    assert.deepEqual(cluster.values(1), expected(1, 300));
  });

  it('takes a new producer id only when the broker lost our sequence, without duplicating', async () => {
    await producer.send(TOPIC, records(0, 400));
    cluster.faults.set(0, [{ kind: 'forget-producers' }]);
    await producer.send(TOPIC, records(400, 400));
    await producer.send(TOPIC, records(800, 400));
    assert.deepEqual(cluster.values(0), expected(0, 1200));
    assert.deepEqual(cluster.values(1), expected(1, 1200));
    assert.equal(cluster.producerIds, 2);
  });

  it('refuses a record larger than a request before sending anything, then continues the sequence', async () => {
    const tooLarge = [...records(0, 10), { value: 'x'.repeat(5000), partition: 1 }];
    await assert.rejects(producer.send(TOPIC, tooLarge), (e) => isTooLarge(e) && isTickflowError(e) && e.details.partition === 1 && e.details.topic === TOPIC);
    assert.deepEqual(cluster.logs.map((l) => l.length), [0, 0]);
    await producer.send(TOPIC, records(0, 100));
    assert.deepEqual(cluster.values(1), expected(1, 100));
  });

  it('reports a batch the broker finds too large as MESSAGE_TOO_LARGE with its partition', async () => {
    cluster.faults.set(0, [{ kind: 'code', code: KafkaCode.RECORD_LIST_TOO_LARGE }]);
    await assert.rejects(producer.send(TOPIC, records(0, 10)), (e) => isTooLarge(e) && isTickflowError(e, 'LOG_ERROR') && e.details.partition === 0);
    await producer.send(TOPIC, records(0, 10));
    assert.deepEqual(cluster.values(0), expected(0, 10));
    // Partition 1's batch of the failed send was written: the second send follows it, not over it.
    assert.deepEqual(cluster.values(1), [...expected(1, 10), ...expected(1, 10)]);
  });

  it('gives up after --retry-for naming Kafka, and the next send continues without a gap', async () => {
    configureRetries({ retryForMs: 30 });
    try {
      cluster.refusing.set(1, Infinity);
      await assert.rejects(producer.send(TOPIC, records(0, 10)), (e) => isTickflowError(e, 'LOG_LOST') && /Kafka unavailable/.test(e.message));
    } finally {
      configureRetries({ retryForMs: 60_000 });
    }
    cluster.refusing.clear();
    await producer.send(TOPIC, records(0, 10));
    assert.deepEqual(cluster.values(0), expected(0, 10));
    assert.equal(cluster.producerIds, 1, 'nothing was in doubt: same producer id, sequences rolled back');
  });
});
