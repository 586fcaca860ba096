import { DEFAULT_PLAUSIBLE_DATES, isoInstantMs, parseDate } from '../../core/calendar-dates.ts';
import type { DateBound } from '../../core/calendar-dates.ts';
import { describeSummary } from '../../core/country-stats.ts';
import { runCleanUsers } from '../../pipelines/clean-users.ts';
import type { CleanUsersSummary, CountryWindow } from '../../pipelines/clean-users.ts';
import { defineCommand } from '../command.ts';
import { badFlag, bool, duration, durationMs, given, ignored, int, oneOf, str } from '../flags.ts';
import { MAX_RECORD_BYTES_FLAG, maxRecordBytes } from '../max-record-bytes.ts';
import { STDIN_TOPIC, stdioLog } from '../stdio-log.ts';
import { DELIVERY_FLAGS, delivery } from '../delivery.ts';

export const command = defineCommand({
  name: ['clean-users'],
  summary: 'Conform user records (countries, ISO dates, e-mail, IP), dead-letter the rest, country stats per window',
  description: [
    'Reads user records (id, first_name, last_name, email, gender, ip_address, date, country) and',
    'writes them conformed to --output: text trimmed; the country as one canonical, properly',
    'capitalised name ("united states", "USA" → "United States"; small typos corrected); the date in',
    'ISO 8601 (every format that reads one way only; 03/04/2020 needs --date-order); e-mail and IP',
    '(v4 or v6) validated. Records that cannot be conformed go, byte for byte, to --dead-letter-topic',
    'with headers x-reason (not-json, not-an-object, missing-id, bad-email, bad-ip, bad-date,',
    'ambiguous-date, implausible-date, missing-country, too-large), x-error, x-source-topic,',
    'x-source-partition, x-source-offset and x-pipeline; a value over --max-record-bytes is not',
    'parsed (too-large), and a dead letter too large for its topic goes as a reference',
    '(docs/dead-letters.md).',
    'A date outside --plausible-dates (default 1900-01-01..now+1d; "now" is when the record is',
    'cleaned) is implausible-date: a real date, but not one a user record can carry.',
    'Per tumbling --window of record time, prints and sends to --stats-topic the most and least',
    'represented countries (ties listed) and the number of distinct users (by id).',
    '--until-end: a bounded run up to the end offsets seen at start. --input - reads JSON Lines from',
    'stdin (read whole first, so it must fit in memory; implies --until-end).',
    'Exactly once (default with Kafka): per --commit-interval the clean records, dead letters, reports',
    'and consumed offsets go in one Kafka transaction (read_committed readers see each once, whatever',
    'crashes); --at-least-once: offsets commit after everything before them is acknowledged, outputs',
    'are visible at once, a crash may repeat some (docs/guarantees.md).',
  ].join('\n'),
  flags: {
    input: { type: 'string', value: 'TOPIC', default: 'users', description: 'Topic of raw user records, or - for stdin (JSON Lines)' },
    output: { type: 'string', value: 'TOPIC', default: 'users-clean', description: 'Topic for conformed records, or - for stdout (JSON Lines; reports then go to stderr)' },
    'dead-letter-topic': { type: 'string', value: 'TOPIC', description: 'Topic for records that cannot be conformed (default: <input>-dlq; users-dlq for stdin)' },
    'stats-topic': { type: 'string', value: 'TOPIC', default: 'users-stats', description: 'Topic for the per-window country statistics' },
    group: { type: 'string', value: 'NAME', default: 'clean-users', description: 'Consumer group (service mode)' },
    'until-end': { type: 'boolean', description: 'Read up to the end offsets seen at start, flush, exit (no group)' },
    window: { type: 'string', value: 'DURATION', default: '1m', description: 'Tumbling window for the country statistics (record time)' },
    'allowed-lateness': { type: 'string', value: 'DURATION', default: '5s', description: 'How long a window waits for records written out of order' },
    'idle-timeout': { type: 'string', value: 'DURATION', default: '30s', description: 'Report open windows after this long without records' },
    'plausible-dates': { type: 'string', value: 'FROM..TO', default: '1900-01-01..now+1d', description: 'Dates outside this range are dead-lettered implausible-date; each end a date (2000-01-01) or now, now+DURATION, now-DURATION' },
    'date-order': { type: 'string', value: 'ORDER', description: 'dmy or mdy: how to read numeric dates such as 03/04/2020 (default: reject as ambiguous)' },
    partitions: { type: 'string', value: 'N', default: '3', description: 'Partitions for the output topics if they have to be created' },
    'max-record-bytes': MAX_RECORD_BYTES_FLAG,
    ...DELIVERY_FLAGS,
  },
  examples: [
    'tickflow clean-users --brokers 127.0.0.1:9092',
    'tickflow clean-users --until-end --window 10s --json --brokers 127.0.0.1:9092',
    'tickflow clean-users --date-order dmy --brokers 127.0.0.1:9092',
    'tickflow generate users --count 1000 | tickflow clean-users --input - --brokers 127.0.0.1:9092',
  ],
  configure(values) {
    const windowMs = duration(values, 'window', 60_000, { minMs: 1 });
    const allowedLatenessMs = duration(values, 'allowed-lateness', 5000);
    if (!Number.isInteger(windowMs)) throw badFlag('window', 'must be a whole number of milliseconds');
    const input = str(values, 'input') || 'users';
    const output = str(values, 'output') || 'users-clean';
    const deadLetterTopic = str(values, 'dead-letter-topic') || `${input === STDIN_TOPIC ? 'users' : input}-dlq`;
    const statsTopic = str(values, 'stats-topic') || 'users-stats';
    if (new Set([input, output === STDIN_TOPIC ? '' : output, deadLetterTopic, statsTopic]).size !== 4) throw badFlag('input', 'the input, output, dead-letter and stats topics must all differ');
    if ((bool(values, 'until-end') || input === STDIN_TOPIC) && given(values, 'group')) ignored('group', 'a bounded run (--until-end, --input -) reads without a consumer group');
    const order = str(values, 'date-order') === undefined ? undefined : oneOf(values, 'date-order', ['dmy', 'mdy'] as const, 'dmy');
    return {
      input,
      output,
      deadLetterTopic,
      statsTopic,
      group: str(values, 'group') || 'clean-users',
      untilEnd: bool(values, 'until-end') || input === STDIN_TOPIC,
      windowMs,
      allowedLatenessMs,
      idleTimeoutMs: duration(values, 'idle-timeout', 30_000, { minMs: 100 }),
      dateOrder: order,
      plausibleDates: plausibleDates(str(values, 'plausible-dates')),
      partitions: int(values, 'partitions', 3, { min: 1, max: 10_000 }),
      maxRecordBytes: maxRecordBytes(values),
      ...delivery(values),
    };
  },
  async run({ config, shared, out, signal, logger, openLog }) {
    const log = await stdioLog(await openLog(), { input: config.input, output: config.output, out });
    // With --output -, stdout carries only the conformed records.
    const report = config.output === STDIN_TOPIC ? process.stderr : out;
    const onWindow = (w: CountryWindow) => report.write(shared.json ? `${JSON.stringify(w)}\n` : `${w.window.start} .. ${w.window.end}  ${describeSummary(w)}\n`);
    const summary = await runCleanUsers(config, { log, logger, signal, onWindow });
    report.write(shared.json ? `${JSON.stringify({ summary })}\n` : `${describe(summary, config)}\n`);
  },
});

/** `FROM..TO`: each end a date parseDate reads one way, or now, now+DURATION, now-DURATION. */
function plausibleDates(raw: string | undefined): readonly [DateBound, DateBound] {
  if (raw === undefined) return DEFAULT_PLAUSIBLE_DATES;
  const ends = raw.split('..');
  const problem = (detail: string) => badFlag('plausible-dates', `${detail} (expects FROM..TO such as 1900-01-01..now+1d), got "${raw}"`);
  if (ends.length !== 2) throw problem('needs two ends separated by ..');
  const bounds = ends.map((end): DateBound => {
    const relative = /^now(?:([+-])(.+))?$/.exec(end.trim());
    if (relative) {
      const ms = relative[2] === undefined ? 0 : durationMs(relative[2]);
      if (ms === null) throw problem(`"${end}" is not now plus or minus a duration such as 1d or 12h`);
      return { nowOffsetMs: relative[1] === '-' ? -ms : ms };
    }
    const date = parseDate(end);
    if (!date.ok) throw problem(`"${end}" is not a date: ${date.detail}`);
    return { atMs: isoInstantMs(date.iso) };
  }) as [DateBound, DateBound];
  if ('atMs' in bounds[0] && 'atMs' in bounds[1] && bounds[0].atMs > bounds[1].atMs) throw problem('FROM is after TO');
  return bounds;
}

function describe(s: CleanUsersSummary, config: { output: string; deadLetterTopic: string }): string {
  const reasons = Object.entries(s.reasons).map(([r, n]) => `${r} ${n}`).join(', ');
  return `read ${s.read}: ${s.clean} clean → ${config.output === '-' ? 'stdout' : config.output}, ${s.deadLettered} dead-lettered → ${config.deadLetterTopic}${reasons ? ` (${reasons})` : ''}; ${s.windows} windows in ${s.seconds} s`;
}
