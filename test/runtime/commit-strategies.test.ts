/**
 * The Kafka commit strategies of the runtime on the embedded log: offsets reach the group
 * only after the outputs before them are acknowledged; bounded runs read without the group.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { MemoryLog } from '../../src/log/memory.ts';
import type { LogRecord, Producer } from '../../src/log/types.ts';
import { kafkaGroupAfterAck } from '../../src/runtime/commit-strategy.ts';
import type { EndContext, ProcessContext, Processor } from '../../src/runtime/processor.ts';
import { runStreamTask } from '../../src/runtime/stream-task.ts';

const quiet = { debug: () => undefined, info: () => undefined, warn: () => undefined };

/** An embedded log whose acknowledgements for `out` wait until `release()`. */
class HeldAcks extends MemoryLog {
  #open = false;
  #waiting: Array<() => void> = [];
  release(): void {
    this.#open = true;
    for (const resolve of this.#waiting.splice(0)) resolve();
  }
  override producer(): Producer {
    const inner = super.producer();
    return {
      send: async (topic, records) => {
        await inner.send(topic, records); // written, not yet acknowledged
        if (topic === 'out' && !this.#open) await new Promise<void>((resolve) => this.#waiting.push(resolve));
      },
      close: () => inner.close(),
    };
  }
}

/** Copies each record to `out`; rejects values that are not numbers; on end, emits a total. */
class Copy implements Processor<never> {
  ended: string[] = [];
  async assign(): Promise<void> {}
  process(records: readonly LogRecord[], context: ProcessContext): void {
    for (const record of records) {
      const text = record.value!.toString();
      if (Number.isNaN(Number(text))) context.reject(record, 'not-a-number', `got ${text}`);
      else context.emit('out', { key: record.key, value: text });
    }
  }
  onEnd(context: EndContext): void {
    this.ended.push(...context.ended.map((tp) => `${tp.topic}/${tp.partition}${context.finished ? ' (finished)' : ''}`));
    if (context.finished) context.emit('out', { value: 'end' });
  }
  checkpoint(): null {
    return null;
  }
  async write(): Promise<number> {
    return 0;
  }
  revoke(): void {}
}

async function withRecords(log: MemoryLog, values: string[]): Promise<void> {
  await log.createTopics([{ name: 'in', partitions: 2 }, { name: 'out' }, { name: 'dead' }]);
  const producer = log.producer();
  await producer.send('in', values.map((value, i) => ({ value, partition: i % 2 })));
}

describe('commit strategy kafka-group-after-ack (embedded log)', () => {
  it('commits offsets to the group only once the outputs before them are acknowledged', async () => {
    const log = new HeldAcks();
    await withRecords(log, ['1', '2', 'x', '4', '5', '6']);
    const stop = new AbortController();
    const run = runStreamTask({ pipeline: 'copy', log, commit: kafkaGroupAfterAck(), group: 'g', topics: ['in'], processor: new Copy(), deadLetterTopic: 'dead', logger: quiet, signal: stop.signal });
    try {
      await sleep(500);
      assert.equal((await log.offsets('out'))[0]!.latest, 5n, 'the outputs are written');
      assert.deepEqual(await log.committed('g', 'in'), new Map(), 'but not acknowledged: nothing committed');
      log.release();
      for (let i = 0; i < 50 && (await log.committed('g', 'in')).size < 2; i++) await sleep(20);
      assert.deepEqual(await log.committed('g', 'in'), new Map([[0, 3n], [1, 3n]]), 'acknowledged: committed past them');
    } finally {
      stop.abort();
    }
    const report = await run;
    assert.deepEqual([report.read, report.published, report.deadLettered], [6, 5, 1]);
  });

  it('a bounded run reads every partition to its end without the group, and hears each end', async () => {
    const log = new MemoryLog();
    await withRecords(log, ['1', '2', '3']);
    const processor = new Copy();
    const report = await runStreamTask({ pipeline: 'copy', log, commit: kafkaGroupAfterAck(), group: 'g', topics: ['in'], processor, deadLetterTopic: 'dead', logger: quiet, signal: new AbortController().signal, untilEnd: true });
    assert.deepEqual([report.read, report.published], [3, 4]);
    assert.deepEqual(await log.groups(), [], 'no group joined');
    assert.deepEqual(processor.ended.sort(), ['in/0', 'in/1 (finished)']);
    assert.equal((await log.offsets('out'))[0]!.latest, 4n);
  });
});
