import { aggregateStocks } from '../../pipelines/aggregate-stocks.ts';
import { alias, defineCommand } from '../command.ts';
import { badFlag, duration, int, str, topicOnly } from '../flags.ts';
import { MAX_RECORD_BYTES_FLAG, maxRecordBytes } from '../max-record-bytes.ts';

export const command = defineCommand({
  name: ['aggregate', 'stocks'],
  summary: 'Average price per ticker over 30-second event-time windows into Postgres, exactly once',
  description: [
    'A consumer-group service. Per partition and ticker it keeps tumbling windows of event time',
    '(count, sum, min, max); a window closes when the watermark (max event time − allowed lateness)',
    'passes its end, or, when the partition is caught up and quiet for --idle-timeout, when stream',
    'time follows the wall clock. Closed windows are added to stock_windows in the same Postgres',
    'transaction as the open windows and the consumed offsets, so a restart or rebalance resumes',
    'exactly where the last commit left off. Malformed and late records go to the dead-letter',
    'topic in the one dead-letter format (x-reason, x-error, x-source-*). Event time is guarded:',
    'stream time moves only to a time the next two records agree with, and a record farther than',
    '--max-time-skew from it is held until the stream comes near, else dead-lettered implausible-time',
    '(x-time-skew-ms). See docs/stocks.md and docs/event-time.md.',
  ].join('\n'),
  flags: {
    input: { type: 'string', value: 'TOPIC', default: 'stocks', description: 'Topic to read' },
    topic: alias('input'),
    group: { type: 'string', value: 'NAME', default: 'stocks-aggregator', description: 'Consumer group (and the name its offsets are stored under)' },
    'dead-letter-topic': { type: 'string', value: 'TOPIC', description: 'Where malformed and late records go (default: <input>-dlq)' },
    partitions: { type: 'string', value: 'N', default: '3', description: 'Partitions if the topic has to be created' },
    window: { type: 'string', value: 'DURATION', default: '30s', description: 'Tumbling window size' },
    'allowed-lateness': { type: 'string', value: 'DURATION', default: '5s', description: 'How far behind the max event time a record may be (smaller than --window)' },
    'max-time-skew': { type: 'string', value: 'DURATION', default: '10m', description: 'A record farther than this from its partition\'s stream time is held, then counted or dead-lettered implausible-time (docs/event-time.md)' },
    'idle-timeout': { type: 'string', value: 'DURATION', default: '5s', description: 'Quiet time after which stream time follows the wall clock' },
    'idle-flush': alias('idle-timeout'),
    'commit-interval': { type: 'string', value: 'DURATION', default: '1s', description: 'Commit open windows and offsets at least this often' },
    'session-timeout': { type: 'string', value: 'DURATION', default: '10s', description: 'Consumer-group session timeout' },
    'max-record-bytes': MAX_RECORD_BYTES_FLAG,
  },
  examples: [
    'tickflow aggregate stocks --brokers 127.0.0.1:9092 --database-url postgres://postgres@127.0.0.1:5432/tickflow',
    'tickflow aggregate stocks --window 1m --allowed-lateness 10s --idle-timeout 15s',
  ],
  configure(values) {
    const windowMs = duration(values, 'window', 30_000, { minMs: 1 });
    const allowedLatenessMs = duration(values, 'allowed-lateness', 5_000);
    if (!Number.isInteger(windowMs)) throw badFlag('window', 'must be a whole number of milliseconds');
    if (allowedLatenessMs >= windowMs) throw badFlag('allowed-lateness', `must be smaller than --window (${windowMs}ms), got ${allowedLatenessMs}ms`);
    const maxTimeSkewMs = duration(values, 'max-time-skew', 600_000, { minMs: 1 });
    if (maxTimeSkewMs < allowedLatenessMs) throw badFlag('max-time-skew', `must be at least --allowed-lateness (${allowedLatenessMs}ms), got ${maxTimeSkewMs}ms`);
    const topic = topicOnly(values, 'input', 'stocks', 'the aggregator keeps its position per partition in PostgreSQL; replay the file into a topic first (tickflow replay FILE --output stocks)');
    const deadLetterTopic = str(values, 'dead-letter-topic') ?? `${topic}-dlq`;
    if (deadLetterTopic === topic) throw badFlag('dead-letter-topic', 'must differ from --input');
    return {
      topic,
      group: str(values, 'group') ?? 'stocks-aggregator',
      deadLetterTopic,
      partitions: int(values, 'partitions', 3, { min: 1, max: 10_000 }),
      windowMs,
      allowedLatenessMs,
      maxTimeSkewMs,
      idleFlushMs: duration(values, 'idle-timeout', 5_000, { minMs: 100 }),
      commitIntervalMs: duration(values, 'commit-interval', 1_000, { minMs: 10 }),
      sessionTimeoutMs: duration(values, 'session-timeout', 10_000, { minMs: 1_000 }),
      maxRecordBytes: maxRecordBytes(values),
    };
  },
  async run({ config, shared, logger, signal, out, openLog, openDatabase }) {
    const log = await openLog();
    const db = await openDatabase();
    logger.info({ ...config, log: log.description, database: db.description }, 'aggregating stocks');
    const summary = await aggregateStocks(log, db, { ...config, signal, logger });
    if (shared.json) out.write(`${JSON.stringify(summary)}\n`);
    else {
      out.write(`read ${summary.records} records, emitted ${summary.windowsEmitted} window rows in ${summary.commits} commits; ` +
        `${summary.malformed} malformed, ${summary.late} late and ${summary.implausible} implausible-time records dead-lettered to ${config.deadLetterTopic}\n`);
    }
  },
});
