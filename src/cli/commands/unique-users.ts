import { openByteSource } from '../../pipelines/byte-source.ts';
import { runUniqueUsers } from '../../pipelines/unique-users.ts';
import type { UniqueUsersSummary } from '../../pipelines/unique-users.ts';
import { defineCommand } from '../command.ts';
import { badFlag, bool, duration, int, oneOf, str } from '../flags.ts';
import { MAX_RECORD_BYTES_FLAG, maxRecordBytes } from '../max-record-bytes.ts';

export const command = defineCommand({
  name: ['unique-users'],
  summary: 'Distinct users (root uid) per minute of event time (root ts), with late data',
  description: [
    'Reads user-tracker frames (any JSON objects) and counts distinct root-level uid per minute of',
    'root-level ts (unix seconds, a number or a numeric string); nested uid/ts keys are ignored and a',
    'repeated root key counts by its last occurrence, as JSON.parse would. One JSON record per minute',
    'goes to --output: {"minute","start","uniqueUsers","frames","late"}.',
    '',
    'Each partition has a watermark, its stream time minus --allowed-lateness; a frame below it is late',
    'and goes to --late-topic with how late it was (headers x-reason, x-late-by-seconds). Stream time',
    'moves only to a ts the next two frames agree with: a frame farther than --max-time-skew from it',
    '(a flipped bit, year 2999) never moves the watermark; it is held until the stream comes near it',
    '(then it counts) or goes to --late-topic as implausible-time (x-time-skew-ms); see',
    'docs/event-time.md. A minute is emitted once the lowest watermark of the partitions still',
    'delivering passes its end. Frames without a usable uid or ts go to --dead-letter-topic with the',
    'reason (header x-reason); frames over --max-record-bytes are not parsed (x-reason too-large).',
    'Side records are the original bytes with x-reason, x-error, x-source-topic, x-source-partition,',
    'x-source-offset, x-pipeline.',
    '',
    'With --until-end: reads every partition up to the end offsets seen at start, flushes the last',
    'minutes and exits (a batch run; the same input always gives the same output). Without it: a',
    'consumer-group service that flushes after --idle-timeout without frames and commits only what',
    'emitted minutes no longer need. --input - reads JSON Lines from stdin, --output - writes to stdout.',
    'Exact counting by default; --approx uses HyperLogLog (2^precision registers, standard error',
    '1.04/sqrt(2^precision): 0.81% at the default 14).',
  ].join('\n'),
  flags: {
    input: { type: 'string', value: 'TOPIC', default: 'user-tracker', description: 'Topic to read, or - for stdin' },
    output: { type: 'string', value: 'TOPIC', default: 'unique-users', description: 'Topic for the minute records, or - for stdout' },
    'late-topic': { type: 'string', value: 'TOPIC', default: 'user-tracker-late', description: 'Side topic for frames later than the allowed lateness' },
    'dead-letter-topic': { type: 'string', value: 'TOPIC', description: 'Topic for frames without a usable uid/ts (default: <input>-dlq; user-tracker-dlq for stdin)' },
    group: { type: 'string', value: 'NAME', default: 'unique-users', description: 'Consumer group (service mode)' },
    'until-end': { type: 'boolean', description: 'Read up to the end offsets seen at start, flush, exit (no group)' },
    'allowed-lateness': { type: 'string', value: 'DURATION', default: '5s', description: 'How far behind its partition\'s stream time a frame may be' },
    'max-time-skew': { type: 'string', value: 'DURATION', default: '10m', description: 'A ts farther than this from its partition\'s stream time is held, then counted or sent to --late-topic as implausible-time (docs/event-time.md)' },
    'idle-timeout': { type: 'string', value: 'DURATION', default: '30s', description: 'Flush open minutes after this long without frames; idle partitions stop holding the watermark' },
    approx: { type: 'boolean', description: 'Count with HyperLogLog instead of exact sets' },
    precision: { type: 'string', value: 'P', default: '14', description: 'HyperLogLog precision (4..18; 14 → 16 KiB per minute, ~0.81% error)' },
    strict: { type: 'boolean', description: 'Also validate the contents of every string (slower; structure is always validated)' },
    partitions: { type: 'string', value: 'N', default: '3', description: 'Partitions for the side topics if they have to be created' },
    format: { type: 'string', value: 'F', default: 'auto', description: 'For --input -: auto, lines or array' },
    threads: { type: 'string', value: 'N', default: '2', description: 'With --until-end: 2 reads frames on a second thread while this one fetches and counts; 1 does all on one' },
    'max-record-bytes': MAX_RECORD_BYTES_FLAG,
  },
  examples: [
    'tickflow unique-users --brokers 127.0.0.1:9092',
    'tickflow unique-users --until-end --output - --brokers 127.0.0.1:9092',
    'zcat stream.jsonl.gz | tickflow unique-users --input - --output -',
    'tickflow unique-users --until-end --approx --allowed-lateness 10s --brokers 127.0.0.1:9092',
  ],
  configure(values) {
    const allowedLatenessMs = duration(values, 'allowed-lateness', 5000);
    const maxTimeSkewMs = duration(values, 'max-time-skew', 600_000, { minMs: 1 });
    if (maxTimeSkewMs < allowedLatenessMs) throw badFlag('max-time-skew', `must be at least --allowed-lateness (${allowedLatenessMs}ms), got ${maxTimeSkewMs}ms`);
    const idleTimeoutMs = duration(values, 'idle-timeout', 30_000, { minMs: 100 });
    const input = str(values, 'input') || 'user-tracker';
    const output = str(values, 'output') || 'unique-users';
    const lateTopic = str(values, 'late-topic') || 'user-tracker-late';
    const deadLetterTopic = str(values, 'dead-letter-topic') || `${input === '-' ? 'user-tracker' : input}-dlq`;
    if (input !== '-' && [output, lateTopic, deadLetterTopic].includes(input)) throw badFlag('input', 'must differ from the output, late and dead-letter topics');
    if (lateTopic === output) throw badFlag('late-topic', 'must differ from --output');
    return {
      input,
      output,
      lateTopic,
      deadLetterTopic,
      group: str(values, 'group') || 'unique-users',
      untilEnd: bool(values, 'until-end'),
      allowedLatenessMs,
      maxTimeSkewMs,
      idleTimeoutMs,
      approx: bool(values, 'approx'),
      precision: int(values, 'precision', 14, { min: 4, max: 18 }),
      strict: bool(values, 'strict'),
      partitions: int(values, 'partitions', 3, { min: 1, max: 10_000 }),
      format: oneOf(values, 'format', ['auto', 'lines', 'array'] as const, 'auto'),
      threads: int(values, 'threads', 2, { min: 1, max: 2 }),
      maxRecordBytes: maxRecordBytes(values),
    };
  },
  async run({ config, shared, out, signal, logger, openLog }) {
    const stdin = config.input === '-' ? await openByteSource('-') : undefined;
    const log = await openLog();
    const summary = await runUniqueUsers(config, { log, logger, signal, stdout: out, stdin });
    const text = shared.json ? JSON.stringify(summary) : describe(summary, config.output);
    // With --output -, stdout carries only the minute records.
    (config.output === '-' ? process.stderr : out).write(`${text}\n`);
  },
});

function describe(s: UniqueUsersSummary, output: string): string {
  const reasons = Object.entries(s.invalidReasons).map(([r, n]) => `${r} ${n}`).join(', ');
  return [
    `${s.frames.toLocaleString('en-US')} frames in ${s.seconds.toFixed(1)} s (${s.framesPerSecond.toLocaleString('en-US')} frames/s): `,
    `${s.counted.toLocaleString('en-US')} counted, ${s.late} late, ${s.invalid} invalid${reasons ? ` (${reasons})` : ''}`,
    s.implausible > 0 ? `, ${s.implausible} implausible-time` : '',
    s.alreadyEmitted > 0 ? `, ${s.alreadyEmitted} already emitted` : '',
    `; ${s.minutes} minutes to ${output === '-' ? 'stdout' : output}${s.approximate ? ' (approximate)' : ''}`,
  ].join('');
}
