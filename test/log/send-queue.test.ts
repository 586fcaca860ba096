import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { SendQueue } from '../../src/log/send-queue.ts';
import type { Producer, RecordToProduce } from '../../src/log/types.ts';

/** A producer whose sends complete only when the test says so. */
function manualProducer() {
  const calls: Array<{ topic: string; values: string[]; done: (error?: Error) => void }> = [];
  const producer: Producer = {
    send: (topic, records) =>
      new Promise<void>((resolve, reject) => {
        calls.push({ topic, values: records.map((r) => String(r.value)), done: (error) => (error ? reject(error) : resolve()) });
      }),
    close: async () => undefined,
  };
  return { producer, calls };
}

const records = (...values: string[]): RecordToProduce[] => values.map((value) => ({ value }));
const tick = () => new Promise((resolve) => setImmediate(resolve));

describe('SendQueue', () => {
  it('sends at once, coalesces what arrives meanwhile into one send per topic, keeps order', async () => {
    const { producer, calls } = manualProducer();
    const sent: Array<[string, number]> = [];
    const queue = new SendQueue(producer, { onSent: (topic, count) => sent.push([topic, count]) });
    queue.add('a', records('1'));
    await tick();
    assert.deepEqual(calls.map((c) => [c.topic, c.values]), [['a', ['1']]]);
    queue.add('a', records('2', '3'));
    queue.add('b', records('x'));
    queue.add('a', records('4'));
    await tick();
    assert.equal(calls.length, 1, 'one send in flight at a time');
    calls[0]!.done();
    await tick();
    assert.deepEqual(calls.map((c) => [c.topic, c.values]), [['a', ['1']], ['a', ['2', '3', '4']]]);
    calls[1]!.done();
    await tick();
    assert.deepEqual(calls[2] && [calls[2].topic, calls[2].values], ['b', ['x']]);
    calls[2]!.done();
    await queue.drain();
    assert.deepEqual(sent, [['a', 1], ['a', 3], ['b', 1]]);
    assert.equal(queue.pendingBytes, 0);
  });

  it('waits for ready before the first send', async () => {
    const { producer, calls } = manualProducer();
    let open!: () => void;
    const queue = new SendQueue(producer, { ready: new Promise<void>((resolve) => (open = resolve)) });
    queue.add('a', records('1'));
    await tick();
    assert.equal(calls.length, 0);
    open();
    await tick();
    assert.equal(calls.length, 1);
  });

  it('room() waits only while more than maxPendingBytes are unacknowledged', async () => {
    const { producer, calls } = manualProducer();
    const queue = new SendQueue(producer, { maxPendingBytes: 10 });
    queue.add('a', records('12345'));
    let roomy = false;
    await queue.room().then(() => (roomy = true));
    assert.equal(roomy, true, '5 bytes pending: room');
    queue.add('a', records('123456'));
    assert.equal(queue.pendingBytes, 11);
    roomy = false;
    const waiting = queue.room().then(() => (roomy = true));
    await tick();
    assert.equal(roomy, false, '11 bytes pending: wait');
    calls[0]!.done();
    await tick();
    calls[1]!.done();
    await waiting;
    assert.equal(roomy, true);
    assert.equal(queue.pendingBytes, 0);
  });

  it('drain() waits for everything and reports the first failure, which later calls repeat', async () => {
    const { producer, calls } = manualProducer();
    const queue = new SendQueue(producer);
    queue.add('a', records('1'));
    let drained = false;
    const draining = queue.drain().then(
      () => (drained = true),
      (error: Error) => error,
    );
    await tick();
    assert.equal(drained, false);
    queue.add('a', records('2'));
    calls[0]!.done(new Error('broker gone'));
    const error = await draining;
    assert.equal((error as Error).message, 'broker gone');
    assert.equal(calls.length, 1, 'nothing is sent after a failure');
    await assert.rejects(queue.room().then(() => queue.drain()), /broker gone/);
  });
});
