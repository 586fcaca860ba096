import { isTickflowError } from '../../core/errors.ts';
import { alias, defineCommand } from '../command.ts';
import { badFlag, int, keyValues, list } from '../flags.ts';
import type { Log, TopicSpec } from '../../log/types.ts';

interface Config {
  create: string[];
  partitions: number;
  /** Undefined: the log's default, min(3, brokers). */
  replicationFactor: number | undefined;
  /** Undefined: one less than the replication factor, at least 1. */
  minInsyncReplicas: number | undefined;
  configs: Record<string, string>;
  only: string[] | undefined;
}

const MAX_REPLICAS = 32;

export const command = defineCommand<Config>({
  name: ['topics'],
  summary: 'List topics with their partitions and offsets; create topics',
  description: [
    'Topics are created with min(3, brokers) replicas and min.insync.replicas one less (at least 1)',
    'unless --replication-factor / --min-insync-replicas say otherwise. The embedded log ignores both.',
  ].join('\n'),
  flags: {
    create: { type: 'string', value: 'LIST', description: 'Create these topics (comma-separated) if missing' },
    partitions: { type: 'string', value: 'N', default: '3', description: 'Partitions for --create' },
    'replication-factor': { type: 'string', value: 'N', description: 'Replicas per partition for --create (default min(3, brokers))' },
    replication: alias('replication-factor'),
    'min-insync-replicas': { type: 'string', value: 'N', description: 'min.insync.replicas for --create (default replication factor − 1, at least 1)' },
    config: { type: 'string', value: 'KEY=VALUE', multiple: true, description: 'Topic config for --create, e.g. retention.ms=86400000 (repeatable)' },
    topics: { type: 'string', value: 'LIST', description: 'Show only these topics (comma-separated)' },
    topic: alias('topics'),
  },
  examples: [
    'tickflow topics --brokers 127.0.0.1:9092',
    'tickflow topics --create prices,stocks --partitions 6 --brokers 127.0.0.1:9092',
    'tickflow topics --create prices --replication-factor 3 --min-insync-replicas 2 --config retention.ms=604800000',
  ],
  configure: (values) => {
    const factor = values['replication-factor'] === undefined ? undefined : int(values, 'replication-factor', 1, { min: 1, max: MAX_REPLICAS });
    const minInsync = values['min-insync-replicas'] === undefined ? undefined : int(values, 'min-insync-replicas', 1, { min: 1, max: MAX_REPLICAS });
    if (minInsync !== undefined && factor !== undefined && minInsync > factor) {
      throw badFlag('min-insync-replicas', `must not exceed the replication factor ${factor}, got ${minInsync}`);
    }
    const configs = keyValues(values, 'config');
    if (configs['min.insync.replicas'] !== undefined && minInsync !== undefined) {
      throw badFlag('config', 'sets min.insync.replicas, which --min-insync-replicas sets too');
    }
    return {
      create: values.create === undefined ? [] : list(values, 'create', []),
      partitions: int(values, 'partitions', 3, { min: 1, max: 10_000 }),
      replicationFactor: factor,
      minInsyncReplicas: minInsync,
      configs,
      only: values.topics === undefined ? undefined : list(values, 'topics', []),
    } satisfies Config;
  },
  async run({ config, shared, out, logger, openLog }) {
    const log = await openLog();
    if (config.create.length > 0) {
      await create(
        log,
        config.create.map((name) => ({
          name,
          partitions: config.partitions,
          ...(config.replicationFactor === undefined ? {} : { replicationFactor: config.replicationFactor }),
          ...(config.minInsyncReplicas === undefined ? {} : { minInsyncReplicas: config.minInsyncReplicas }),
          configs: config.configs,
        })),
      );
      if (log.kind === 'memory' && (config.replicationFactor !== undefined || config.minInsyncReplicas !== undefined || Object.keys(config.configs).length > 0)) {
        logger.info('the embedded log keeps one copy: it ignores replication settings and every topic config but retention.bytes and segment.bytes');
      }
    }
    const names = config.only ? config.only : (await log.listTopics()).filter((t) => !t.startsWith('__'));
    const topics = [];
    for (const name of names) {
      const partitions = await log.offsets(name);
      const messages = partitions.reduce((sum, p) => sum + (p.latest - p.earliest), 0n);
      topics.push({ name, partitions: partitions.length, messages: Number(messages), offsets: partitions.map((p) => ({ partition: p.partition, earliest: Number(p.earliest), latest: Number(p.latest) })) });
    }
    if (shared.json) {
      out.write(`${JSON.stringify({ topics })}\n`);
      return;
    }
    const width = Math.max(5, ...topics.map((t) => t.name.length)) + 2;
    out.write(`${'TOPIC'.padEnd(width)}PARTITIONS  MESSAGES\n`);
    for (const t of topics) out.write(`${t.name.padEnd(width)}${String(t.partitions).padStart(10)}  ${String(t.messages).padStart(8)}\n`);
  },
});

/** Creates the topics; a setting the cluster cannot honour (more replicas than brokers) names its flag. */
async function create(log: Log, specs: TopicSpec[]): Promise<void> {
  try {
    await log.createTopics(specs);
  } catch (error) {
    if (isTickflowError(error, 'BAD_CONFIG') && error.details.setting === 'replicationFactor') throw badFlag('replication-factor', error.message);
    if (isTickflowError(error, 'BAD_CONFIG') && error.details.setting === 'minInsyncReplicas') throw badFlag('min-insync-replicas', error.message);
    if (isTickflowError(error, 'LOG_ERROR') && error.details.kafkaCode === 'INVALID_CONFIG') throw badFlag('config', error.message);
    throw error;
  }
}
