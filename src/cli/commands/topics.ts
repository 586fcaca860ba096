import { defineCommand } from '../command.ts';
import { int, list, str } from '../flags.ts';

interface Config {
  create: string[];
  partitions: number;
  replication: number;
  only: string | undefined;
}

export const command = defineCommand<Config>({
  name: ['topics'],
  summary: 'List topics with their partitions and offsets; create topics',
  flags: {
    create: { type: 'string', value: 'LIST', description: 'Create these topics (comma-separated) if missing' },
    partitions: { type: 'string', value: 'N', default: '3', description: 'Partitions for --create' },
    replication: { type: 'string', value: 'N', default: '1', description: 'Replication factor for --create' },
    topic: { type: 'string', value: 'NAME', description: 'Show only this topic' },
  },
  examples: ['tickflow topics --brokers 127.0.0.1:9092', 'tickflow topics --create prices,stocks --partitions 6 --brokers 127.0.0.1:9092'],
  configure: (values) => ({
    create: values.create === undefined ? [] : list(values, 'create', []),
    partitions: int(values, 'partitions', 3, { min: 1, max: 10_000 }),
    replication: int(values, 'replication', 1, { min: 1, max: 32 }),
    only: str(values, 'topic'),
  }),
  async run({ config, shared, out, openLog }) {
    const log = await openLog();
    if (config.create.length > 0) {
      await log.createTopics(config.create.map((name) => ({ name, partitions: config.partitions, replicationFactor: config.replication })));
    }
    const names = config.only ? [config.only] : (await log.listTopics()).filter((t) => !t.startsWith('__'));
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
