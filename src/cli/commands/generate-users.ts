import { generateUsers, streamUserFrames } from '../../pipelines/generate-users.ts';
import { defineCommand } from '../command.ts';
import type { FlagValues } from '../command.ts';
import { badFlag, bool, duration, instant, int, num, oneOf, str } from '../flags.ts';
import { sentLog } from '../progress.ts';
import { STDIN_TOPIC, stdioLog } from '../stdio-log.ts';

const TOPIC = /^[A-Za-z0-9._-]{1,249}$/;
/** Names a --rate run refuses as a topic: they name files. */
const FILE_NAME = /\.(gz|jsonl?|ndjson|txt)$/i;
/** Flags that only mean something with --rate, and what they need. */
const LIVE_ONLY = ['duration', 'partitions'] as const;
/** Flags that only mean something when writing a file, refused with --rate. */
const FILE_ONLY = { 'per-second': 'with --rate, frames are --rate per second of wall-clock and event time alike: give only --rate', format: 'with --rate, each frame is one record: --format is for files' } as const;

export const command = defineCommand({
  name: ['generate', 'users'],
  summary: 'Write seeded user records (or user-tracker frames with --frames) as JSON Lines; with --rate, stream frames to a topic',
  description: [
    'User records (id, first_name, last_name, email, gender, ip_address, date, country) carry the dirt',
    'of a real export: countries in lower/upper case, misspelt or abbreviated, dates in mixed formats',
    '(some ambiguous, some impossible), bad IPs and e-mails, blanks and exact duplicates.',
    'With --frames: user-tracker frames (~2 KB, unicode-heavy, decoy uid/ts keys nested inside, ts',
    'sometimes a string, event time shuffled within --disorder, a --late-share of frames',
    '--late-min to --late-max late) for unique-users tests and benchmarks.',
    'Same --seed, same bytes. Output: a file (.gz compresses) or stdout.',
    '',
    'With --frames --rate N: a live source for unique-users. Frames go to the topic --output (default',
    'user-tracker, created with --partitions; - for stdout), keyed by uid, paced on an absolute',
    'schedule: frame i at start + i/N on the wall clock, with event time start + i/N (shuffled and made',
    'late as above), start being --start or now. Runs until Ctrl-C unless --count or --duration is',
    'given. With --start, the frames are byte for byte those of the same command writing a file with',
    '--per-second N instead of --rate N.',
  ].join('\n'),
  flags: {
    count: { type: 'string', short: 'n', value: 'N', description: 'How many records (default 1000; with --rate: until stopped)' },
    output: { type: 'string', short: 'o', value: 'FILE', description: 'File to write (.gz: gzip), or - for stdout (default -); with --rate: a topic, or - for stdout (default user-tracker)' },
    seed: { type: 'string', value: 'SEED', default: '1', description: 'Seed for reproducible output' },
    format: { type: 'string', value: 'F', description: 'lines (JSON Lines) or array (one JSON array) (default lines)' },
    'bad-share': { type: 'string', value: 'X', default: '0', description: 'Share of lines replaced by non-JSON text (0..1)' },
    duplicates: { type: 'string', value: 'X', default: '0.03', description: 'Users: share of exact duplicates (0..1)' },
    frames: { type: 'boolean', description: 'Write user-tracker frames instead of user records' },
    rate: { type: 'string', value: 'N', description: 'Frames: send N frames per second, in wall-clock event time, to the topic --output (a live source; default: write all at once)' },
    duration: { type: 'string', value: 'DURATION', description: 'With --rate: stop after this long, e.g. 90s, 10m' },
    partitions: { type: 'string', value: 'N', description: 'With --rate: partitions when the topic is created (default 3)' },
    start: { type: 'string', value: 'TIME', description: 'Frames: event time of the first frame: ISO 8601, or epoch with unit (s, ms) (default 1468244340s; with --rate: now)' },
    'per-second': { type: 'string', value: 'N', description: 'Frames: frames per second of event time (default 200; with --rate: --rate)' },
    users: { type: 'string', value: 'N', default: '20000', description: 'Frames: distinct uids to draw from' },
    disorder: { type: 'string', value: 'DURATION', default: '5s', description: 'Frames: on-time frames are less than this far behind' },
    'late-share': { type: 'string', value: 'X', default: '0', description: 'Frames: share of late frames (0..1)' },
    'late-min': { type: 'string', value: 'DURATION', default: '10s', description: 'Frames: least lateness of a late frame' },
    'late-max': { type: 'string', value: 'DURATION', default: '60s', description: 'Frames: most lateness of a late frame' },
    'frame-bytes': { type: 'string', value: 'N', default: '2048', description: 'Frames: approximate size of a frame' },
    'string-ts-share': { type: 'string', value: 'X', default: '0.1', description: 'Frames: share with ts as a string' },
    'duplicate-key-share': { type: 'string', value: 'X', default: '0.02', description: 'Frames: share with a decoy root uid/ts before the real one' },
  },
  examples: [
    'tickflow generate users --count 10000 -o users.jsonl',
    'tickflow generate users --count 1000 | tickflow replay - --output users --brokers 127.0.0.1:9092',
    'tickflow generate users --frames --count 1000000 --late-share 0.01 -o frames.jsonl.gz',
    'tickflow generate users --frames --rate 20 --brokers 127.0.0.1:9092   # live, into user-tracker, until Ctrl-C',
    'tickflow generate users --frames --rate 200 --duration 10m --frame-bytes 512 --output user-tracker',
  ],
  configure(values) {
    const share = (flag: string, fallback: number) => num(values, flag, fallback, { min: 0, max: 1 });
    const seconds = (flag: string, fallback: number) => duration(values, flag, fallback * 1000) / 1000;
    const lateMin = seconds('late-min', 10);
    const lateMax = seconds('late-max', 60);
    if (lateMax < lateMin) throw badFlag('late-max', `must be at least --late-min (${lateMin}s)`);
    const disorder = seconds('disorder', 5);
    if (lateMin < disorder) throw badFlag('late-min', `must be at least --disorder (${disorder}s)`);
    const kind = bool(values, 'frames') ? ('frames' as const) : ('users' as const);
    const startMs = instant(values, 'start', { bareUnit: 's' }) ?? null;
    const frames = {
      perSecond: num(values, 'per-second', 200, { exclusiveMin: 0 }),
      users: int(values, 'users', 20_000, { min: 1 }),
      disorderSeconds: disorder,
      lateShare: share('late-share', 0),
      lateSeconds: [lateMin, lateMax] as const,
      bytes: int(values, 'frame-bytes', 2048, { min: 256, max: 1 << 20 }),
      stringTsShare: share('string-ts-share', 0.1),
      duplicateKeyShare: share('duplicate-key-share', 0.02),
    };
    const common = { seed: str(values, 'seed') ?? '1', badShare: share('bad-share', 0) };
    if (values.rate !== undefined) {
      if (kind !== 'frames') throw badFlag('rate', 'streams user-tracker frames: give --frames too');
      for (const [flag, why] of Object.entries(FILE_ONLY)) if (values[flag] !== undefined) throw badFlag(flag, why);
      const { perSecond: _, ...shape } = frames;
      return {
        mode: 'live' as const,
        ...common,
        topic: liveTopic(values),
        partitions: int(values, 'partitions', 3, { min: 1, max: 10_000 }),
        rate: num(values, 'rate', 20, { exclusiveMin: 0, max: 1_000_000 }),
        count: values.count === undefined ? null : int(values, 'count', 0, { min: 0 }),
        durationMs: values.duration === undefined ? null : duration(values, 'duration', 0, { minMs: 1 }),
        startTime: startMs,
        frames: shape,
      };
    }
    for (const flag of LIVE_ONLY) if (values[flag] !== undefined) throw badFlag(flag, 'needs --rate (a live stream to a topic)');
    return {
      mode: 'file' as const,
      ...common,
      kind,
      count: int(values, 'count', 1000, { min: 0 }),
      output: str(values, 'output') || '-',
      format: oneOf(values, 'format', ['lines', 'array'] as const, 'lines'),
      duplicateShare: share('duplicates', 0.03),
      frames: { ...frames, start: (startMs ?? 1468244340_000) / 1000 },
    };
  },
  async run({ config, shared, out, signal, logger, openLog }) {
    if (config.mode === 'file') {
      const summary = await generateUsers({ ...config, stdout: out, signal });
      logger.debug(summary, `wrote ${summary.records} ${config.kind}`);
      if (config.output !== '-') process.stderr.write(`wrote ${summary.records} ${config.kind} (${summary.bytes} bytes${summary.late ? `, ${summary.late} late` : ''}${summary.bad ? `, ${summary.bad} not JSON` : ''}) to ${config.output} in ${summary.seconds} s\n`);
      return;
    }
    const log = await stdioLog(await openLog(), { output: config.topic, out });
    logger.info({ topic: config.topic, rate: config.rate, seed: config.seed, log: log.description }, 'generating user-tracker frames');
    const summary = await streamUserFrames(log, {
      ...config,
      signal,
      onSent: sentLog(logger, 'frames sent'),
    });
    const result = {
      topic: config.topic,
      frames: summary.frames,
      late: summary.late,
      bad: summary.bad,
      seconds: Number(summary.seconds.toFixed(3)),
      rate: summary.seconds > 0 ? Number((summary.frames / summary.seconds).toFixed(1)) : null,
      seed: config.seed,
      start: new Date(summary.startTime).toISOString(),
    };
    // With --output -, stdout carries only the frames.
    const report = config.topic === STDIN_TOPIC ? process.stderr : out;
    if (shared.json) report.write(`${JSON.stringify(result)}\n`);
    else report.write(`sent ${result.frames} frames to ${result.topic} in ${result.seconds}s (seed ${result.seed}${result.late ? `, ${result.late} late` : ''}${result.bad ? `, ${result.bad} not JSON` : ''})\n`);
  },
});

/** --output of a --rate run: a topic, or - for stdout; a file name is refused in one line. */
function liveTopic(values: FlagValues): string {
  const name = str(values, 'output') || 'user-tracker';
  if (name === STDIN_TOPIC) return name;
  if (FILE_NAME.test(name)) throw badFlag('output', `with --rate, frames go to a topic (or - for stdout), and "${name}" names a file: give a topic (default user-tracker), or write a file without --rate`);
  if (!TOPIC.test(name)) throw badFlag('output', `"${name}" is not a topic name (letters, digits, ".", "_", "-")`);
  return name;
}
