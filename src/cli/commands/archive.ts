import { runArchive } from '../../pipelines/archive.ts';
import { alias, defineCommand } from '../command.ts';
import { badFlag, bool, list, str } from '../flags.ts';
import { maxRecordBytes, MAX_RECORD_BYTES_FLAG } from '../max-record-bytes.ts';

const NAME = /^[A-Za-z0-9._-]{1,249}$/;

export const command = defineCommand({
  name: ['archive'],
  summary: 'Store every message of a topic in Postgres, once (key: topic, partition, offset)',
  description: [
    'Consumes the topics in a consumer group and inserts each message into archived_messages:',
    'topic, partition, offset (the primary key), key and value (bytea, as they are), headers',
    '(jsonb), the record timestamp and the time archived. Rows and the next offsets commit in one',
    'transaction, so kill -9 at any moment loses and duplicates nothing; the key with ON CONFLICT',
    'DO NOTHING keeps replays (--from-beginning) from adding rows. Waits for missing topics unless',
    '--until-end.',
  ].join('\n'),
  flags: {
    input: { type: 'string', value: 'LIST', description: 'Topic(s) to archive, comma-separated (required)' },
    topic: alias('input'),
    group: { type: 'string', value: 'NAME', description: 'Consumer group (default: tickflow-archive-<topics>)' },
    'from-beginning': { type: 'boolean', description: 'Read every partition again from its earliest offset (existing rows are kept, not duplicated)' },
    'until-end': { type: 'boolean', description: 'Exit once everything in the topics at start is archived (single member)' },
    'stop-at-end': alias('until-end'),
    'dead-letter-topic': { type: 'string', value: 'TOPIC', description: 'Where records over --max-record-bytes go, by reference (default: <input>-dlq; several inputs joined by ".")' },
    'max-record-bytes': { ...MAX_RECORD_BYTES_FLAG, default: '64MiB', description: 'A record whose value is larger is dead-lettered by reference instead of archived' },
  },
  examples: [
    'tickflow archive --input prices --brokers 127.0.0.1:9092 --database-url postgres://postgres@127.0.0.1:5432/tickflow',
    'tickflow archive --input prices,stocks --from-beginning --until-end',
  ],
  configure(values) {
    if (str(values, 'input') === undefined) throw badFlag('input', 'is required (the topic to archive)');
    const topics = [...new Set(list(values, 'input', []))].sort();
    if (topics.includes('-')) throw badFlag('input', '"-" (stdin) is not available here: the archive keeps each record\'s topic, partition and offset; replay the file into a topic first (tickflow replay FILE --output NAME)');
    for (const topic of topics) if (!NAME.test(topic)) throw badFlag('input', `"${topic}" is not a valid topic name (letters, digits, . _ -)`);
    const group = str(values, 'group') ?? `tickflow-archive-${topics.join('+')}`;
    if (group.trim() === '') throw badFlag('group', 'must not be empty');
    const deadLetterTopic = str(values, 'dead-letter-topic') ?? `${topics.join('.')}-dlq`;
    if (!NAME.test(deadLetterTopic)) throw badFlag('dead-letter-topic', `"${deadLetterTopic}" is not a valid topic name (letters, digits, . _ -)`);
    if (topics.includes(deadLetterTopic)) throw badFlag('dead-letter-topic', 'must not be one of the archived topics');
    return { topics, group, deadLetterTopic, fromBeginning: bool(values, 'from-beginning'), stopAtEnd: bool(values, 'until-end'), maxRecordBytes: maxRecordBytes(values) };
  },
  async run({ config, shared, out, signal, logger, openLog, openDatabase }) {
    const log = await openLog();
    const db = await openDatabase();
    logger.info({ log: log.description, database: db.description, topics: config.topics, group: config.group }, 'archive starting');
    const report = await runArchive({ ...config, log, db, logger, signal });
    if (shared.json) out.write(`${JSON.stringify(report)}\n`);
    else out.write(`read ${report.read}, archived ${report.inserted} new rows (${report.read - report.inserted} already archived)\n`);
  },
});
