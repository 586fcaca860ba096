import { generateUsers } from '../../pipelines/generate-users.ts';
import { defineCommand } from '../command.ts';
import { badFlag, bool, duration, instant, int, num, oneOf, str } from '../flags.ts';

export const command = defineCommand({
  name: ['generate', 'users'],
  summary: 'Write seeded user records (or user-tracker frames with --frames) as JSON Lines',
  description: [
    'User records (id, first_name, last_name, email, gender, ip_address, date, country) carry the dirt',
    'of a real export: countries in lower/upper case, misspelt or abbreviated, dates in mixed formats',
    '(some ambiguous, some impossible), bad IPs and e-mails, blanks and exact duplicates.',
    'With --frames: user-tracker frames (~2 KB, unicode-heavy, decoy uid/ts keys nested inside, ts',
    'sometimes a string, event time shuffled within --disorder, a --late-share of frames',
    '--late-min to --late-max late) for unique-users tests and benchmarks.',
    'Same --seed, same bytes. Output: a file (.gz compresses) or stdout.',
  ].join('\n'),
  flags: {
    count: { type: 'string', short: 'n', value: 'N', default: '1000', description: 'How many records' },
    output: { type: 'string', short: 'o', value: 'FILE', default: '-', description: 'File to write (.gz: gzip), or - for stdout' },
    seed: { type: 'string', value: 'SEED', default: '1', description: 'Seed for reproducible output' },
    format: { type: 'string', value: 'F', default: 'lines', description: 'lines (JSON Lines) or array (one JSON array)' },
    'bad-share': { type: 'string', value: 'X', default: '0', description: 'Share of lines replaced by non-JSON text (0..1)' },
    duplicates: { type: 'string', value: 'X', default: '0.03', description: 'Users: share of exact duplicates (0..1)' },
    frames: { type: 'boolean', description: 'Write user-tracker frames instead of user records' },
    start: { type: 'string', value: 'TIME', default: '1468244340s', description: 'Frames: event time of the first frame: ISO 8601, or epoch with unit (s, ms)' },
    'per-second': { type: 'string', value: 'N', default: '200', description: 'Frames: frames per second of event time' },
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
  ],
  configure(values) {
    const share = (flag: string, fallback: number) => num(values, flag, fallback, { min: 0, max: 1 });
    const seconds = (flag: string, fallback: number) => duration(values, flag, fallback * 1000) / 1000;
    const lateMin = seconds('late-min', 10);
    const lateMax = seconds('late-max', 60);
    if (lateMax < lateMin) throw badFlag('late-max', `must be at least --late-min (${lateMin}s)`);
    const disorder = seconds('disorder', 5);
    if (lateMin < disorder) throw badFlag('late-min', `must be at least --disorder (${disorder}s)`);
    return {
      kind: bool(values, 'frames') ? ('frames' as const) : ('users' as const),
      count: int(values, 'count', 1000, { min: 0 }),
      output: str(values, 'output') || '-',
      seed: str(values, 'seed') ?? '1',
      format: oneOf(values, 'format', ['lines', 'array'] as const, 'lines'),
      badShare: share('bad-share', 0),
      duplicateShare: share('duplicates', 0.03),
      frames: {
        start: (instant(values, 'start', { bareUnit: 's' }) ?? 1468244340_000) / 1000,
        perSecond: num(values, 'per-second', 200, { exclusiveMin: 0 }),
        users: int(values, 'users', 20_000, { min: 1 }),
        disorderSeconds: disorder,
        lateShare: share('late-share', 0),
        lateSeconds: [lateMin, lateMax] as const,
        bytes: int(values, 'frame-bytes', 2048, { min: 256, max: 1 << 20 }),
        stringTsShare: share('string-ts-share', 0.1),
        duplicateKeyShare: share('duplicate-key-share', 0.02),
      },
    };
  },
  async run({ config, out, signal, logger }) {
    const summary = await generateUsers({ ...config, stdout: out, signal });
    logger.debug(summary, `wrote ${summary.records} ${config.kind}`);
    if (config.output !== '-') process.stderr.write(`wrote ${summary.records} ${config.kind} (${summary.bytes} bytes${summary.late ? `, ${summary.late} late` : ''}${summary.bad ? `, ${summary.bad} not JSON` : ''}) to ${config.output} in ${summary.seconds} s\n`);
  },
});
