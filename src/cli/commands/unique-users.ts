import { openByteSource } from '../../pipelines/byte-source.ts';
import { runUniqueUsers } from '../../pipelines/unique-users.ts';
import type { UniqueUsersSummary } from '../../pipelines/unique-users.ts';
import { DEFAULT_STATE_INTERVAL_MS } from '../../pipelines/unique-users.ts';
import { defineCommand } from '../command.ts';
import { ZonedCalendar, parseGranularities } from '../../core/calendar-windows.ts';
import type { Granularity } from '../../core/calendar-windows.ts';
import { badFlag, bool, bytes, duration, given, ignored, int, oneOf, str } from '../flags.ts';
import type { FlagValues } from '../command.ts';
import { MAX_RECORD_BYTES_FLAG, maxRecordBytes } from '../max-record-bytes.ts';
import { DELIVERY_FLAGS, delivery } from '../delivery.ts';

export const command = defineCommand({
  name: ['unique-users'],
  summary: 'Distinct users (root uid) per minute, hour, day, week, month or year of event time (root ts), with late data',
  description: [
    'Reads user-tracker frames (any JSON objects) and counts distinct root-level uid per window of',
    'root-level ts (unix seconds, a number or a numeric string); nested uid/ts keys are ignored and a',
    'repeated root key counts by its last occurrence, as JSON.parse would. Windows: each --granularity',
    '(minute, hour, day, week, month, year; calendar-aligned in UTC, ISO weeks from Monday; days and',
    'coarser from local midnight with --time-zone), all from the one pass over the frames. One JSON',
    'record per window goes to --output:',
    '{"granularity","window","start","end","uniqueUsers","frames","late"}, start and end in unix',
    'seconds (end exclusive); minute records also carry "minute". Records go out by end, finest first.',
    '',
    'Each partition has a watermark, its stream time minus --allowed-lateness; a frame below it is late',
    'and goes to --late-topic with how late it was (headers x-reason, x-late-by-seconds). Stream time',
    'moves only to a ts the next two frames agree with: a frame farther than --max-time-skew from it',
    '(a flipped bit, year 2999) never moves the watermark; it is held until the stream comes near it',
    '(then it counts) or goes to --late-topic as implausible-time (x-time-skew-ms); see',
    'docs/event-time.md. A window of any granularity is emitted once the lowest watermark of the',
    'partitions still delivering passes its end; a late frame counts in no window. Frames without a',
    'usable uid or ts go to --dead-letter-topic with the reason (header x-reason); frames over',
    '--max-record-bytes are not parsed (x-reason too-large).',
    'Side records are the original bytes with x-reason, x-error, x-source-topic, x-source-partition,',
    'x-source-offset, x-pipeline.',
    '',
    'With --until-end: reads every partition up to the end offsets seen at start, flushes the open',
    'windows and exits (a batch run; the same input always gives the same output). Without it: a',
    'consumer-group service that flushes open minutes after --idle-timeout without frames (coarser',
    'windows wait for their end) and commits, per partition, the offset of the first frame a window not',
    'yet emitted still needs: a restart re-reads from there. --input - reads JSON Lines from stdin,',
    '--output - writes to stdout.',
    'Exactly once (default with Kafka and a topic --output): per --commit-interval the window records,',
    'late frames, dead letters and those offsets go in one Kafka transaction, each offset with its',
    'partition\'s event time there and the read position; after a crash the frames re-read are judged',
    'again as before: read_committed readers see every window record, late frame and dead letter once.',
    '--at-least-once: records are visible at once; a restart skips the windows the output topic already',
    'holds (each window once) but sends side records of re-read frames again (docs/guarantees.md).',
    'Exact counting by default: a window whose distinct set would take more than --max-exact-memory',
    'switches to a HyperLogLog sketch seeded with it and its record says "approximate":true with its',
    '"standardError". --approx uses HyperLogLog for every window (2^precision registers, relative',
    'standard error 1.04/sqrt(2^precision): 0.81% at the default 14).',
    '',
    'With --database-url (or DATABASE_URL): every emitted minute is also kept in PostgreSQL as a',
    'HyperLogLog sketch of precision 12 with its frames, late count and exact count (table',
    'user_minute_sketches and its rollups), which GET /v1/unique-users and the dashboard answer any',
    'range from. Per commit the minutes\' rows are written in one PostgreSQL transaction BEFORE the',
    'Kafka transaction (or, at least once, the send) that makes those minutes visible, retried while',
    'PostgreSQL is away (--retry-for): a minute in the output topic is always in the table, and one',
    'written again after a crash replaces itself. Without a database URL nothing is written (the',
    'embedded PGlite is not opened) unless --sketches asks for them there, as `tickflow up` does;',
    'docs/users.md, "Ranges on demand".',
    '',
    'Durable state (--database-url, exactly once): at most every --state-interval a commit also writes',
    'a snapshot of the open windows (exact sets or sketches, every granularity) with each partition\'s',
    'position to PostgreSQL (table unique_users_state), before the Kafka transaction whose offsets name',
    'it. A restart (kill -9 mid-day or mid-year) loads it and reads each partition from the snapshot\'s',
    'position instead of from the first frame of its oldest open window: it re-reads at most about',
    '--state-interval of frames, and still emits every window once and complete. A full snapshot costs',
    'the open windows\' size (an exact set its uids\' bytes + 1 each, a sketch at most 0.75 x',
    '2^precision bytes); the snapshots after it are deltas (the members each set gained since, and',
    'the sketches) until they add up to a full one; docs/users.md, "Durable state".',
    '',
    'Scaled out (--scale-out, exactly once): every member of --group counts the input partitions it',
    'owns into partials on <group>-partials, and one member at a time combines them into one record per',
    'window. Exact counts are summed, which needs the input keyed by uid (each user on one partition).',
    'For input that is not, add --repartition: each member first judges its input partitions\' frames',
    'as a single instance does (guard, lateness, late and dead-letter records) and passes them on keyed',
    'by uid to <group>-repartition (created with the input\'s partitions, or --repartition-partitions),',
    'together with each input partition\'s watermark; the partials are counted from there. With --approx',
    'each partial carries its window\'s HyperLogLog sketch and the sketches are merged (register-wise',
    'max: the sketch of the union), so any input works, keyed or not, without --repartition. A window',
    'over --max-exact-memory merges the same way when every partial of it went over; otherwise its',
    'counts are summed (approximate). The windows equal a single instance\'s (with --approx, a single',
    '--approx instance\'s); docs/users.md, "How it scales". With --database-url the combining member',
    'keeps the minute sketches (the partials carry theirs, merged), and each member its durable state;',
    'give each member its own --instance-id so that a restarted member gets its partitions back and',
    'resumes from its own snapshot (a member given other partitions re-reads from the committed offsets).',
  ].join('\n'),
  flags: {
    input: { type: 'string', value: 'TOPIC', default: 'user-tracker', description: 'Topic to read, or - for stdin' },
    output: { type: 'string', value: 'TOPIC', default: 'unique-users', description: 'Topic for the window records, or - for stdout' },
    granularity: { type: 'string', value: 'LIST', default: 'minute', description: 'Time frames to count, any of minute,hour,day,week,month,year (UTC, ISO weeks)' },
    'time-zone': { type: 'string', value: 'ZONE', default: 'UTC', description: 'IANA time zone for day, week, month and year windows (local midnight; minutes and hours stay UTC)' },
    'late-topic': { type: 'string', value: 'TOPIC', default: 'user-tracker-late', description: 'Side topic for frames later than the allowed lateness' },
    'dead-letter-topic': { type: 'string', value: 'TOPIC', description: 'Topic for frames without a usable uid/ts (default: <input>-dlq; user-tracker-dlq for stdin)' },
    group: { type: 'string', value: 'NAME', default: 'unique-users', description: 'Consumer group (service mode)' },
    'until-end': { type: 'boolean', description: 'Read up to the end offsets seen at start, flush, exit (no group)' },
    'allowed-lateness': { type: 'string', value: 'DURATION', default: '5s', description: 'How far behind its partition\'s stream time a frame may be' },
    'max-time-skew': { type: 'string', value: 'DURATION', description: 'A ts farther than this from its partition\'s stream time is held, then counted or sent to --late-topic as implausible-time (docs/event-time.md) (default 10m, or --allowed-lateness when that is longer)' },
    'idle-timeout': { type: 'string', value: 'DURATION', default: '30s', description: 'Flush open minutes after this long without frames; idle partitions stop holding the watermark' },
    approx: { type: 'boolean', description: 'Count with HyperLogLog instead of exact sets' },
    'max-exact-memory': { type: 'string', value: 'SIZE', default: '64MiB', description: 'Per window: an exact set larger than this switches to a HyperLogLog sketch (record says approximate)' },
    precision: { type: 'string', value: 'P', default: '14', description: 'HyperLogLog precision (4..18; 14 → 16 KiB per window, ~0.81% error)' },
    strict: { type: 'boolean', description: 'Also validate the contents of every string (slower; structure is always validated)' },
    partitions: { type: 'string', value: 'N', default: '3', description: 'Partitions for the side topics if they have to be created' },
    format: { type: 'string', value: 'F', default: 'auto', description: 'For --input -: auto, lines or array' },
    threads: { type: 'string', value: 'N', default: '2', description: 'With --until-end: 2 reads frames on a second thread while this one fetches and counts; 1 does all on one' },
    'max-record-bytes': MAX_RECORD_BYTES_FLAG,
    ...DELIVERY_FLAGS,
    'commit-interval': { ...DELIVERY_FLAGS['commit-interval']!, description: 'Commit at most this often (default 1s, either way): bounds how late records appear and what a crash redoes' },
    'scale-out': { type: 'boolean', description: 'Run as one of several members of --group: partials per owned partition to <group>-partials, one combined record per window (exact: input keyed by uid unless --repartition; --approx: any input, sketches merged; exactly once; docs/users.md, "How it scales")' },
    repartition: { type: 'boolean', description: 'With --scale-out, exact, for input NOT keyed by uid: each member judges its input partitions\' frames (guard, lateness) and re-keys them by uid to <group>-repartition, and the partials are counted from there (default off: the input must be keyed by uid; not with --approx, which needs no keys)' },
    'repartition-partitions': { type: 'string', value: 'N', description: 'With --repartition: partitions of <group>-repartition if it has to be created (default: as many as the input)' },
    sketches: { type: 'boolean', description: 'Keep every minute as a sketch in the database even without --database-url: in the embedded PGlite under --data-dir (with --database-url they always are)' },
    'state-interval': { type: 'string', value: 'DURATION', default: '30s', description: 'With --database-url, exactly once: snapshot the open windows at most this often (bounds what a restart re-reads; a snapshot writes what the sets gained since the last one, and the whole state once per chain of up to 60)' },
    'instance-id': { type: 'string', value: 'NAME', description: 'Static membership of --group (Kafka\'s group.instance.id, unique per member): restarted within --session-timeout, this member gets its partitions back without a rebalance (and with --database-url resumes from its own durable state); stopping does not leave the group' },
    'session-timeout': { type: 'string', value: 'DURATION', default: '10s', description: 'How long the group waits for a silent member before its partitions move (with --instance-id: how long a restart may take and keep them)' },
  },
  examples: [
    'tickflow unique-users --brokers 127.0.0.1:9092',
    'tickflow unique-users --at-least-once --commit-interval 200ms --brokers 127.0.0.1:9092',
    'tickflow unique-users --until-end --output - --brokers 127.0.0.1:9092',
    'tickflow unique-users --until-end --granularity minute,hour,day,week,month,year --output - --brokers 127.0.0.1:9092',
    'zcat stream.jsonl.gz | tickflow unique-users --input - --output -',
    'tickflow unique-users --until-end --approx --allowed-lateness 10s --brokers 127.0.0.1:9092',
    'tickflow unique-users --brokers 127.0.0.1:9092 --database-url postgres://postgres@127.0.0.1:5432/tickflow',
    'tickflow unique-users --scale-out --repartition --group uu --brokers 127.0.0.1:9092',
    'tickflow unique-users --scale-out --approx --group uu --brokers 127.0.0.1:9092',
    'tickflow unique-users --scale-out --group uu --instance-id uu-1 --database-url postgres://postgres@127.0.0.1:5432/tickflow --brokers 127.0.0.1:9092',
  ],
  configure(values) {
    const allowedLatenessMs = duration(values, 'allowed-lateness', 5000);
    // Unset, the bound follows a longer allowed lateness; set, it must cover it.
    const maxTimeSkewMs = duration(values, 'max-time-skew', Math.max(600_000, allowedLatenessMs), { minMs: 1 });
    if (maxTimeSkewMs < allowedLatenessMs) throw badFlag('max-time-skew', `must be at least --allowed-lateness (${allowedLatenessMs}ms), got ${maxTimeSkewMs}ms`);
    const idleTimeoutMs = duration(values, 'idle-timeout', 30_000, { minMs: 100 });
    const input = str(values, 'input') || 'user-tracker';
    const output = str(values, 'output') || 'unique-users';
    const lateTopic = str(values, 'late-topic') || 'user-tracker-late';
    const deadLetterTopic = str(values, 'dead-letter-topic') || `${input === '-' ? 'user-tracker' : input}-dlq`;
    if (input !== '-' && [output, lateTopic, deadLetterTopic].includes(input)) throw badFlag('input', 'must differ from the output, late and dead-letter topics');
    if (lateTopic === output) throw badFlag('late-topic', 'must differ from --output');
    const { exactlyOnce, commitIntervalMs } = delivery(values);
    if (exactlyOnce === true && (input === '-' || output === '-')) throw badFlag('exactly-once', `needs Kafka topics on both sides, not ${input === '-' ? '--input -' : '--output -'}`);
    const scaleOut = bool(values, 'scale-out');
    if (scaleOut && (input === '-' || output === '-' || bool(values, 'until-end'))) throw badFlag('scale-out', 'needs a service reading and writing Kafka topics (no --until-end, no -)');
    if (scaleOut && exactlyOnce === false) throw badFlag('scale-out', 'needs exactly once: cannot be combined with --at-least-once');
    if (scaleOut && bool(values, 'sketches')) throw badFlag('sketches', 'keeps the minute sketches in the embedded database, which is one process\'s: scaled out, give the members --database-url');
    if ((bool(values, 'until-end') || input === '-') && given(values, 'group')) ignored('group', 'a bounded run (--until-end, --input -) reads without a consumer group');
    const instanceId = str(values, 'instance-id');
    if (instanceId !== undefined && (bool(values, 'until-end') || input === '-')) throw badFlag('instance-id', 'is a member\'s id in --group: not with --until-end or --input -');
    if (instanceId !== undefined && !/^[A-Za-z0-9._-]{1,200}$/.test(instanceId)) throw badFlag('instance-id', `must be 1 to 200 letters, digits, '.', '_' or '-', got "${instanceId}"`);
    const repartition = bool(values, 'repartition');
    if (repartition && !scaleOut) throw badFlag('repartition', 'is a way to run --scale-out: give --scale-out too');
    if (repartition && bool(values, 'approx')) throw badFlag('repartition', 'is not needed with --approx: the partials\' sketches merge whatever the keys (drop --repartition)');
    if (values['repartition-partitions'] !== undefined && !repartition) throw badFlag('repartition-partitions', 'needs --repartition');
    const repartitionPartitions = values['repartition-partitions'] === undefined ? undefined : int(values, 'repartition-partitions', 1, { min: 1, max: 10_000 });
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
      granularities: granularities(values),
      timeZone: timeZone(values),
      approx: bool(values, 'approx'),
      maxExactBytes: bytes(values, 'max-exact-memory', DEFAULT_MAX_EXACT_BYTES, { min: 1 }),
      precision: int(values, 'precision', 14, { min: 4, max: 18 }),
      strict: bool(values, 'strict'),
      partitions: int(values, 'partitions', 3, { min: 1, max: 10_000 }),
      format: oneOf(values, 'format', ['auto', 'lines', 'array'] as const, 'auto'),
      threads: int(values, 'threads', 2, { min: 1, max: 2 }),
      maxRecordBytes: maxRecordBytes(values),
      exactlyOnce,
      commitIntervalMs,
      stateIntervalMs: duration(values, 'state-interval', DEFAULT_STATE_INTERVAL_MS, { minMs: 10 }),
      scaleOut,
      repartition,
      sketches: bool(values, 'sketches'),
      sessionTimeoutMs: duration(values, 'session-timeout', 10_000, { minMs: 1000 }),
      ...(instanceId === undefined ? {} : { instanceId }),
      ...(repartitionPartitions === undefined ? {} : { repartitionPartitions }),
    };
  },
  async run({ config, shared, out, signal, logger, openLog, openDatabase }) {
    const stdin = config.input === '-' ? await openByteSource('-') : undefined;
    const log = await openLog();
    // Minute sketches only with a configured PostgreSQL (--database-url / DATABASE_URL), or
    // --sketches (the embedded PGlite): opened (waited for, migrated) before the first frame,
    // so an unreachable one fails at start.
    const db = shared.databaseUrl || config.sketches ? await openDatabase() : undefined;
    if (db) logger.info({ database: db.description }, 'unique-users: minute sketches go to the database');
    const summary = await runUniqueUsers(config, { log, logger, signal, stdout: out, stdin, db });
    const text = shared.json ? JSON.stringify(summary) : describe(summary, config.output);
    // With --output -, stdout carries only the minute records.
    (config.output === '-' ? process.stderr : out).write(`${text}\n`);
  },
});

/** 64 MiB per window: about 1.3 million distinct ASCII uids of ~10 bytes (docs/users.md). */
const DEFAULT_MAX_EXACT_BYTES = 64 * 1024 * 1024;

function granularities(values: FlagValues): Granularity[] {
  try {
    return parseGranularities(str(values, 'granularity') ?? 'minute');
  } catch (error) {
    throw badFlag('granularity', (error as Error).message);
  }
}

function timeZone(values: FlagValues): string | null {
  const name = str(values, 'time-zone') || 'UTC';
  if (name === 'UTC') return null;
  try {
    return new ZonedCalendar(name).timeZone;
  } catch (error) {
    throw badFlag('time-zone', (error as Error).message);
  }
}

function describe(s: UniqueUsersSummary, output: string): string {
  const reasons = Object.entries(s.invalidReasons).map(([r, n]) => `${r} ${n}`).join(', ');
  return [
    `${s.frames.toLocaleString('en-US')} frames in ${s.seconds.toFixed(1)} s (${s.framesPerSecond.toLocaleString('en-US')} frames/s): `,
    `${s.counted.toLocaleString('en-US')} counted, ${s.late} late, ${s.invalid} invalid${reasons ? ` (${reasons})` : ''}`,
    s.implausible > 0 ? `, ${s.implausible} implausible-time` : '',
    s.alreadyEmitted > 0 ? `, ${s.alreadyEmitted} already emitted` : '',
    `; ${windowCounts(s)} to ${output === '-' ? 'stdout' : output}${s.approximate ? ' (approximate)' : s.approximateWindows > 0 ? ` (${s.approximateWindows} approximate: over --max-exact-memory)` : ''}`,
  ].join('');
}

/** "12 minutes", or "12 minutes, 1 hour, 1 day" with coarser frames. */
function windowCounts(s: UniqueUsersSummary): string {
  const entries = Object.entries(s.windows);
  if (entries.length === 0) return '0 minutes';
  return entries.map(([g, n]) => `${n} ${g}${n === 1 ? '' : 's'}`).join(', ');
}
