import { TickflowError } from '../../core/errors.ts';
import { openByteSource } from '../../pipelines/byte-source.ts';
import { replay } from '../../pipelines/replay.ts';
import type { ReplaySummary } from '../../pipelines/replay.ts';
import { metrics } from '../../observability/metrics.ts';
import { alias, defineCommand } from '../command.ts';
import { int, num, oneOf, str } from '../flags.ts';
import { formatBytes, formatCount, progressBar } from '../progress.ts';
import { STDIN_TOPIC, stdioLog } from '../stdio-log.ts';
import { TRANSACTION_FLAGS, describeTransactions, producerTransactions } from '../transaction-flags.ts';

export const command = defineCommand({
  name: ['replay'],
  summary: 'Stream a JSON Lines file (or a JSON array; .gz; stdin) into a topic',
  description: [
    'Reads FILE (or stdin for -) at constant memory, gunzipping when the bytes are gzip, and sends',
    'each record\'s original bytes to --output in batches. JSON Lines by default; a file whose first',
    'character is [ is read as one JSON array. Every record is validated (strict JSON, UTF-8);',
    'records that are not JSON are counted, reported with their line number and not sent: they',
    'never stop the replay. A progress bar (bytes, records, rate, ETA) is shown when stderr is a',
    'terminal; a summary line goes to stdout (--json for machines).',
    'With --transactional the file is one Kafka transaction (or one per --transaction-size records):',
    'read_committed readers see all of it or none; a replay killed midway leaves nothing visible, and',
    'replaying again with the same --transactional-id aborts what it left open. Ctrl-C aborts a',
    'whole-file transaction and commits the last batch.',
  ].join('\n'),
  positionals: { name: 'FILE', description: 'JSON Lines or JSON array file, optionally gzip; - for stdin', required: true },
  flags: {
    output: { type: 'string', value: 'TOPIC', default: 'user-tracker', description: 'Topic to write to, or - for stdout (the valid records, one per line)' },
    topic: alias('output'),
    key: { type: 'string', value: 'FIELD', description: 'Key each record by this root-level field (e.g. uid); default no key' },
    rate: { type: 'string', value: 'N', description: 'Records per second (default: as fast as the broker takes them)' },
    format: { type: 'string', value: 'F', default: 'auto', description: 'auto, lines (JSON Lines) or array (one JSON array)' },
    partitions: { type: 'string', value: 'N', default: '3', description: 'Partitions if the topic has to be created' },
    'batch-bytes': { type: 'string', value: 'N', default: '4194304', description: 'Record bytes per produce batch (bigger: fewer round trips, more memory)' },
    'report-bad': { type: 'string', value: 'N', default: '10', description: 'How many bad records to list (all are counted)' },
    ...TRANSACTION_FLAGS,
  },
  examples: [
    'tickflow replay data/user-tracker.jsonl --brokers 127.0.0.1:9092',
    'tickflow replay stream.jsonl.gz --output user-tracker --key uid --rate 1000 --brokers 127.0.0.1:9092',
    'zcat stream.jsonl.gz | tickflow replay - --json --brokers 127.0.0.1:9092',
    'tickflow replay users.jsonl --output users --transactional --brokers 127.0.0.1:9092',
  ],
  configure(values, positionals) {
    if (positionals.length > 1) throw new TickflowError('BAD_FLAG', `unexpected argument "${positionals[1]}"`);
    const rate = str(values, 'rate') === undefined ? undefined : num(values, 'rate', 0, { exclusiveMin: 0 });
    const topic = str(values, 'output') || 'user-tracker';
    return {
      file: positionals[0],
      topic,
      transactions: producerTransactions(values, 'replay', topic),
      keyField: str(values, 'key') || undefined,
      rate,
      format: oneOf(values, 'format', ['auto', 'lines', 'array'] as const, 'auto'),
      partitions: int(values, 'partitions', 3, { min: 1, max: 10_000 }),
      batchBytes: int(values, 'batch-bytes', 4 << 20, { min: 1024, max: 64 << 20 }),
      reportBad: int(values, 'report-bad', 10, { min: 0, max: 10_000 }),
    };
  },
  async run({ config, shared, out, signal, logger, openLog }) {
    const source = await openByteSource(config.file);
    const log = await stdioLog(await openLog(), { output: config.topic, out });
    const progress = progressBar('replay', { total: source.size ?? undefined, unit: 'B' });
    let reported = 0;
    const summary = await replay(log, source, {
      ...config,
      signal,
      onProgress: (p) => {
        metrics.recordsOut.inc({ pipeline: 'replay', sink: config.topic }, p.records - reported);
        reported = p.records;
        progress.update(p.inputBytes, `${formatCount(p.records)} records${p.bad > 0 ? `, ${p.bad} bad` : ''}`);
      },
    });
    progress.finish();
    if (summary.bad > 0) metrics.invalid.inc({ pipeline: 'replay', reason: 'not-json' }, summary.bad);
    const peakRssMiB = Math.round(process.resourceUsage().maxRSS / 1024);
    logger.debug({ summary, peakRssMiB }, 'replay finished');
    // With --output -, stdout carries only the records.
    const report = config.topic === STDIN_TOPIC ? process.stderr : out;
    if (shared.json) {
      report.write(`${JSON.stringify({ ...summary, peakRssMiB })}\n`);
    } else {
      report.write(`${describe(summary, peakRssMiB)}\n`);
    }
  },
});

function describe(s: ReplaySummary, peakRssMiB: number): string {
  const lines = [
    `${s.aborted ? 'stopped after replaying' : 'replayed'} ${s.records.toLocaleString('en-US')} records (${formatBytes(s.bytes)}) from ${s.source}${s.gzip ? ' (gzip)' : ''} to ${s.topic} in ${s.seconds.toFixed(1)} s: ` +
      `${Math.round(s.recordsPerSecond).toLocaleString('en-US')} records/s, ${s.megabytesPerSecond.toFixed(1)} MB/s, peak RSS ${peakRssMiB} MiB; ${s.bad} bad` +
      (s.transactions ? `; ${describeTransactions(s.transactions)}` : ''),
  ];
  for (const b of s.badRecords) lines.push(`  line ${b.line} (record ${b.record}): ${b.problem}`);
  if (s.bad > s.badRecords.length) lines.push(`  ... and ${s.bad - s.badRecords.length} more`);
  for (const f of s.framing) lines.push(`  ${f}`);
  return lines.join('\n');
}
