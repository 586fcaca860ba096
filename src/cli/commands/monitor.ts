import { DEFAULT_MAX_LATE_SHARE, DEFAULT_MAX_TRANSACTION_AGE_MS, age, collectSnapshot } from '../../observability/reconciliation.ts';
import type { MonitorSnapshot } from '../../observability/reconciliation.ts';
import { SideTopicReader } from '../../observability/side-topic-shares.ts';
import type { Queryable } from '../../db/types.ts';
import { defineCommand } from '../command.ts';
import { badFlag, bool, duration, list, str } from '../flags.ts';
import type { FlagValues } from '../command.ts';

/** A share as a percentage (`1%`) or a fraction (`0.01`), in 0..1. */
function share(values: FlagValues, flag: string, fallback: number): number {
  const raw = str(values, flag);
  if (raw === undefined) return fallback;
  const match = /^(\d+(?:\.\d+)?)(%?)$/.exec(raw.trim());
  const value = match ? Number(match[1]) / (match[2] ? 100 : 1) : Number.NaN;
  if (!(value >= 0 && value <= 1)) throw badFlag(flag, `expects a share such as 1%, 0.5% or 0.01 (0..100%), got "${raw}"`);
  return value;
}

export const command = defineCommand({
  name: ['monitor'],
  summary: 'Offsets, lag and reconciliation of every topic, consumer group and sink',
  description: [
    'Shows each topic\'s earliest and end offsets, every consumer\'s position (Kafka groups and',
    'the offsets sinks keep in PostgreSQL) with lag per partition, and the sinks\' accounting.',
    'Reconciles: produced (end − start) = consumed + in flight (lag); a position before the log',
    'start means messages were deleted unconsumed; a sink must account for every record it',
    'advanced over (accepted + invalid + late + dropped + skipped: offsets of transaction markers and',
    'aborted records, which hold no record for it). Per sink it reports the records',
    'dead-lettered as late or implausible (implausible-time, implausible-price, ...) over what it',
    'read; more than --max-late-share of them is a problem too: a stream that silently loses data',
    'must not say OK. unique-users and clean-users commit to Kafka and keep no counts: for their',
    'groups (named after the pipeline, or starting with its name and -) the records of their side',
    'topic (--late-topic, --dead-letter-topic) are counted, once per source position, over the source',
    'offsets below the group\'s committed ones.',
    'On Kafka it lists the transactions open now (ListTransactions, DescribeTransactions: id, state,',
    'age, timeout, partitions) and each partition\'s LAST STABLE offset next to its END (high',
    'watermark): an open transaction holds read_committed readers at its first offset. One open',
    'longer than --max-transaction-age is hanging, a problem. --check exits 1 on any problem.',
  ].join('\n'),
  flags: {
    check: { type: 'boolean', description: 'Exit 1 (with a report) when anything disagrees' },
    watch: { type: 'boolean', description: 'Refresh a terminal table until Ctrl-C' },
    interval: { type: 'string', value: 'DURATION', default: '2s', description: 'Refresh interval for --watch' },
    topics: { type: 'string', value: 'LIST', description: 'Only these topics (default: all but internal ones)' },
    'ignore-groups': { type: 'string', value: 'LIST', description: 'Ignore consumer groups starting with these prefixes' },
    'late-topic': { type: 'string', value: 'TOPIC', default: 'user-tracker-late', description: 'unique-users\' late topic, read for its late and implausible records' },
    'dead-letter-topic': { type: 'string', value: 'TOPIC', description: 'clean-users\' dead-letter topic, read for its implausible records (default: <input>-dlq)' },
    'max-late-share': { type: 'string', value: 'SHARE', default: '1%', description: 'Largest share of a sink\'s records dead-lettered as late or implausible that is OK (1%, 0.5%, 0.01)' },
    'max-transaction-age': {
      type: 'string',
      value: 'DURATION',
      default: '2m',
      description: 'A Kafka transaction open longer is hanging (twice the 60s timeout of tickflow\'s transactions)',
    },
  },
  examples: [
    'tickflow monitor --brokers 127.0.0.1:9092 --database-url postgres://postgres@127.0.0.1/tickflow',
    'tickflow monitor --check --topics prices,stocks',
    'tickflow monitor --check --max-transaction-age 5m',
    'tickflow monitor --watch --interval 1s',
  ],
  configure: (values) => ({
    check: bool(values, 'check'),
    watch: bool(values, 'watch'),
    intervalMs: duration(values, 'interval', 2000, { minMs: 100 }),
    topics: str(values, 'topics') === undefined ? undefined : list(values, 'topics', []),
    ignoreGroups: str(values, 'ignore-groups') === undefined ? [] : list(values, 'ignore-groups', []),
    maxLateShare: share(values, 'max-late-share', DEFAULT_MAX_LATE_SHARE),
    maxTransactionAgeMs: duration(values, 'max-transaction-age', DEFAULT_MAX_TRANSACTION_AGE_MS, { minMs: 0 }),
    lateTopic: str(values, 'late-topic') || undefined,
    deadLetterTopic: str(values, 'dead-letter-topic') || undefined,
  }),
  async run({ config, shared, out, signal, logger, openLog, openDatabase }) {
    const log = await openLog();
    let db: Queryable | null = null;
    try {
      db = await openDatabase();
    } catch (error) {
      logger.warn({ err: error }, 'database unavailable: stored offsets and sink accounting are not shown');
    }
    // One reader for every refresh of --watch: each reads only what the side topics gained.
    const sideTopics = new SideTopicReader({ lateTopic: config.lateTopic, deadLetterTopic: config.deadLetterTopic, progress: (line) => process.stderr.write(`${line}\n`) });
    const options = { topics: config.topics, ignoreGroups: config.ignoreGroups, maxLateShare: config.maxLateShare, sideTopics, transactions: true, maxTransactionAgeMs: config.maxTransactionAgeMs };
    if (config.watch) {
      while (!signal.aborted) {
        const snapshot = await collectSnapshot(log, db, options);
        out.write(`\x1b[2J\x1b[H${render(snapshot)}`);
        await new Promise((resolve) => {
          const timer = setTimeout(resolve, config.intervalMs);
          signal.addEventListener('abort', () => {
            clearTimeout(timer);
            resolve(undefined);
          }, { once: true });
        });
      }
      return 0;
    }
    const snapshot = await collectSnapshot(log, db, options);
    out.write(shared.json ? `${JSON.stringify(snapshot, (_key, value) => (typeof value === 'bigint' ? String(value) : value))}\n` : render(snapshot));
    return config.check && snapshot.problems.length > 0 ? 1 : 0;
  },
});

/** Columns aligned: names to the left (`l`), numbers to the right (`r`); by default the first two are names. */
function table(header: string[], rows: string[][], align = 'll'): string[] {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  const line = (cells: string[]) => cells.map((c, i) => ((align[i] ?? 'r') === 'l' ? c.padEnd(widths[i]) : c.padStart(widths[i]))).join('  ').trimEnd();
  return [line(header), ...rows.map(line)];
}

export function render(s: MonitorSnapshot): string {
  const lines = [`tickflow monitor — ${s.at}`, ''];
  // On Kafka, END OFFSETS are the high watermarks and LAST STABLE what read_committed readers reach.
  const stable = s.topics.some((t) => t.partitions.some((p) => p.lastStable !== undefined));
  lines.push(
    ...table(
      ['TOPIC', 'PARTITIONS', 'MESSAGES', 'END OFFSETS', ...(stable ? ['LAST STABLE'] : [])],
      s.topics.map((t) => [
        t.topic,
        String(t.partitions.length),
        String(t.messages),
        t.partitions.map((p) => String(p.highWatermark ?? p.latest)).join(','),
        ...(stable ? [t.partitions.map((p) => String(p.lastStable ?? p.latest)).join(',')] : []),
      ]),
    ),
  );
  lines.push('');
  if (s.transactions.length > 0) {
    lines.push(
      ...table(
        ['TRANSACTIONAL ID', 'STATE', 'AGE', 'TIMEOUT', 'PRODUCER', 'PARTITIONS'],
        s.transactions.map((t) => [
          t.transactionalId,
          t.state,
          t.ageMs === null ? '-' : age(t.ageMs),
          age(t.timeoutMs),
          `${t.producerId}/${t.producerEpoch}`,
          `${t.partitions.join(',')}${t.hanging ? '  HANGING' : ''}`,
        ]),
        'llrrrl',
      ),
    );
    lines.push('');
  } else if (stable) {
    lines.push('no open transactions', '');
  }
  if (s.consumers.length === 0) lines.push('no consumers');
  else {
    lines.push(
      ...table(
        ['CONSUMER', 'TOPIC', 'KIND', 'CONSUMED', 'LAG', 'LAG PER PARTITION'],
        s.consumers.map((c) => [c.name, c.topic, c.kind === 'group' ? 'kafka group' : 'postgres', String(c.consumed), String(c.lag), c.partitions.map((p) => (p.lag === null ? '-' : String(p.lag))).join(',')]),
      ),
    );
  }
  if (s.accounting.length > 0) {
    lines.push('');
    lines.push(
      ...table(
        ['SINK', 'TOPIC', 'PART', 'ADVANCED', 'ACCEPTED', 'INVALID', 'LATE', 'DROPPED', 'SKIPPED', 'UNACCOUNTED'],
        s.accounting.map((a) => [a.consumer, a.topic, String(a.partition), String(a.advanced), String(a.accepted), String(a.invalid), String(a.late), String(a.dropped), String(a.skipped), String(a.unaccounted)]),
      ),
    );
  }
  if (s.lateness.length > 0) {
    lines.push('');
    lines.push(
      ...table(
        ['SINK', 'TOPIC', 'READ', 'LATE', 'IMPLAUSIBLE', 'SHARE'],
        s.lateness.map((l) => {
          const implausible = Object.entries(l.implausible).map(([reason, n]) => `${n} ${reason.replace(/^implausible-/, '')}`).join(', ');
          return [l.consumer, l.topic, String(l.advanced), String(l.late), implausible || '0', `${(l.share * 100).toFixed(2)}%`];
        }),
      ),
    );
  }
  lines.push('');
  for (const note of s.notes) lines.push(`note: ${note}`);
  if (s.problems.length === 0) lines.push('reconciliation: OK (produced = consumed + in flight for every consumer; every sink accounts for what it read)');
  else {
    lines.push(`reconciliation: ${s.problems.length} problem${s.problems.length === 1 ? '' : 's'}`);
    for (const p of s.problems) lines.push(`  ✗ ${p.where}: ${p.message}`);
  }
  return `${lines.join('\n')}\n`;
}
