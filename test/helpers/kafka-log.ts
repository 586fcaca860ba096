import { after, before } from 'node:test';
import { KafkaLog } from '../../src/log/kafka.ts';
import { KAFKA_BROKERS } from './env.ts';

export interface TestKafkaLog {
  /** The log on the test brokers, open from the suite's `before` to its `after`. */
  readonly log: KafkaLog;
  /** Topics to delete when the suite ends. */
  readonly created: string[];
}

/** For a `describe` block: a KafkaLog on the test brokers; the topics listed in `created` are deleted after the block. */
export function testKafkaLog(): TestKafkaLog {
  let log: KafkaLog | null = null;
  const created: string[] = [];
  before(() => {
    log = new KafkaLog({ brokers: KAFKA_BROKERS });
  });
  after(async () => {
    await log?.deleteTopics(created).catch(() => undefined);
    await log?.close();
  });
  return {
    get log() {
      if (!log) throw new Error('the test Kafka log is open only inside its describe block');
      return log;
    },
    created,
  };
}
