import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { Admin } from '@platformatic/kafka';
import { isTickflowError } from '../../src/core/errors.ts';
import { configureRetries, retrySettings } from '../../src/observability/retry.ts';
import { isTooLarge } from '../../src/log/kafka-errors.ts';
import { KafkaLog, topicSettings } from '../../src/log/kafka.ts';
import { KAFKA_BROKERS } from '../helpers/env.ts';

/**
 * The Kafka adapter's classification and fault policy against the real broker: what is
 * waited for, what ends a command at once, and the topics it creates. (Broker kills and
 * restarts are the fault suite's, test/faults.)
 */

const unique = (label: string) => `faults-${label}-${randomUUID().slice(0, 8)}`;

describe('Kafka adapter faults and topics (real broker)', () => {
  const saved = { ...retrySettings() };
  let log: KafkaLog;
  let admin: Admin;
  before(() => {
    configureRetries({ initialDelayMs: 20, maxDelayMs: 200, retryForMs: 20_000, logger: null });
    log = new KafkaLog({ brokers: KAFKA_BROKERS });
    admin = new Admin({ clientId: 'tickflow-test', bootstrapBrokers: KAFKA_BROKERS });
  });
  after(async () => {
    configureRetries(saved);
    await log.close();
    await admin.close();
  });

  it('waits for a broker that refuses connections, then gives up after --retry-for naming Kafka', async () => {
    configureRetries({ retryForMs: 300 });
    const nowhere = new KafkaLog({ brokers: ['127.0.0.1:1'] });
    try {
      await assert.rejects(nowhere.listTopics(), (e) => {
        assert.ok(isTickflowError(e, 'LOG_LOST'), String(e));
        assert.match(e.message, /^Kafka unavailable for \d+s \(--retry-for 0s\): list topics: /);
        assert.equal(e.details.dependency, 'kafka');
        assert.ok((e.details.attempts as number) > 1, 'retried before giving up');
        return true;
      });
    } finally {
      configureRetries({ retryForMs: 20_000 });
      await nowhere.close();
    }
  });

  it('calls a topic missing only when fresh metadata says so, without waiting for --retry-for', async () => {
    const missing = unique('missing');
    await assert.rejects(log.offsets(missing), (e) => isTickflowError(e, 'UNKNOWN_TOPIC') && e.details.topic === missing);
    await assert.rejects(log.committed('some-group', missing), (e) => isTickflowError(e, 'UNKNOWN_TOPIC'));
    await assert.rejects(async () => {
      for await (const _ of log.readRange({ topic: missing })) assert.fail('read a missing topic');
    }, (e) => isTickflowError(e, 'UNKNOWN_TOPIC'));
    await assert.rejects(async () => {
      for await (const _ of log.subscribe({ group: unique('group'), topics: [missing] })) assert.fail('joined a missing topic');
    }, (e) => isTickflowError(e, 'UNKNOWN_TOPIC'));
  });

  it('reports a record the broker refuses as too large as MESSAGE_TOO_LARGE with topic and partition', async () => {
    const topic = unique('small');
    await log.createTopics([{ name: topic, partitions: 2, configs: { 'max.message.bytes': '2000' } }]);
    const producer = log.producer();
    try {
      await producer.send(topic, [{ value: 'fits', partition: 0 }]);
      await assert.rejects(producer.send(topic, [{ value: 'x'.repeat(5000), partition: 1 }]), (e) => {
        assert.ok(isTooLarge(e), String(e));
        assert.ok(isTickflowError(e, 'LOG_ERROR'));
        assert.deepEqual([e.details.topic, e.details.partition], [topic, 1]);
        return true;
      });
      // The refused batch took no sequence: the same producer goes on.
      await producer.send(topic, [{ value: 'after', partition: 1 }, { value: 'after', partition: 0 }]);
    } finally {
      await producer.close();
    }
    assert.deepEqual((await log.offsets(topic)).map((p) => p.latest), [2n, 1n]);
  });

  it('creates topics with min(3, brokers) replicas and min.insync.replicas one less, or as the spec says', async () => {
    const brokers = (await admin.metadata({ topics: [], forceUpdate: true })).brokers.size;
    const plain = unique('plain');
    const custom = unique('custom');
    await log.createTopics([
      { name: plain, partitions: 2 },
      { name: custom, partitions: 1, replicationFactor: 1, minInsyncReplicas: 1, configs: { 'retention.ms': '3600000' } },
    ]);
    const metadata = await admin.metadata({ topics: [plain, custom], forceUpdate: true });
    const replicas = Math.min(3, brokers);
    assert.deepEqual(metadata.topics.get(plain)!.partitions.map((p) => p.replicas.length), [replicas, replicas]);
    assert.deepEqual(metadata.topics.get(custom)!.partitions.map((p) => p.replicas.length), [1]);
    const configs = await admin.describeConfigs({
      resources: [plain, custom].map((name) => ({ resourceType: 2, resourceName: name, configurationKeys: ['min.insync.replicas', 'retention.ms'] })),
    });
    const value = (topic: string, key: string) => configs.find((c) => c.resourceName === topic)!.configs.find((c) => c.name === key)!.value;
    assert.equal(value(plain, 'min.insync.replicas'), String(Math.max(1, replicas - 1)));
    assert.equal(value(custom, 'min.insync.replicas'), '1');
    assert.equal(value(custom, 'retention.ms'), '3600000');
  });

  it('refuses more replicas than brokers before asking Kafka, naming the setting', async () => {
    const brokers = (await admin.metadata({ topics: [], forceUpdate: true })).brokers.size;
    await assert.rejects(
      log.createTopics([{ name: unique('wide'), replicationFactor: brokers + 1 }]),
      (e) => isTickflowError(e, 'BAD_CONFIG') && e.details.setting === 'replicationFactor',
    );
  });
});

describe('topicSettings', () => {
  const cases: Array<{ brokers: number; spec: Parameters<typeof topicSettings>[0]; replicas: number; minIsr: string }> = [
    { brokers: 1, spec: { name: 't' }, replicas: 1, minIsr: '1' },
    { brokers: 2, spec: { name: 't' }, replicas: 2, minIsr: '1' },
    { brokers: 3, spec: { name: 't' }, replicas: 3, minIsr: '2' },
    { brokers: 5, spec: { name: 't' }, replicas: 3, minIsr: '2' },
    { brokers: 5, spec: { name: 't', replicationFactor: 5 }, replicas: 5, minIsr: '4' },
    { brokers: 3, spec: { name: 't', minInsyncReplicas: 1 }, replicas: 3, minIsr: '1' },
    { brokers: 3, spec: { name: 't', configs: { 'min.insync.replicas': '3' } }, replicas: 3, minIsr: '3' },
  ];
  for (const c of cases) {
    it(`${JSON.stringify(c.spec)} on ${c.brokers} broker(s): ${c.replicas} replicas, min ISR ${c.minIsr}`, () => {
      const settings = topicSettings(c.spec, c.brokers);
      assert.equal(settings.replicas, c.replicas);
      assert.equal(settings.configs['min.insync.replicas'], c.minIsr);
    });
  }

  it('keeps other configs and refuses impossible settings', () => {
    assert.deepEqual(topicSettings({ name: 't', configs: { 'retention.ms': '1000' } }, 3).configs, { 'retention.ms': '1000', 'min.insync.replicas': '2' });
    assert.throws(() => topicSettings({ name: 't', replicationFactor: 4 }, 3), (e) => isTickflowError(e, 'BAD_CONFIG') && e.details.setting === 'replicationFactor');
    assert.throws(() => topicSettings({ name: 't', minInsyncReplicas: 4 }, 3), (e) => isTickflowError(e, 'BAD_CONFIG') && e.details.setting === 'minInsyncReplicas');
    assert.throws(() => topicSettings({ name: 't', minInsyncReplicas: 0 }, 3), (e) => isTickflowError(e, 'BAD_CONFIG'));
  });
});
