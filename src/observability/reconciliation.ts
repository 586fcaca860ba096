import type { Log, OpenTransaction, PartitionOffsets } from '../log/types.ts';
import type { Queryable } from '../db/types.ts';
import { listStoredOffsets } from '../db/offset-store.ts';
import { listCounts } from '../db/pipeline-counts.ts';
import { listRejectionCounts } from '../db/rejection-counts.ts';
import { supervisionProblems } from './supervision.ts';
import type { SideTopicReader } from './side-topic-shares.ts';

/**
 * One look at the whole system: every topic's offsets, every consumer's position (Kafka
 * groups and the offsets our sinks keep in Postgres) with lag, and the sinks' accounting,
 * reconciled. A problem is a disagreement that means data was lost or miscounted:
 * - a consumer behind the log start: messages deleted before they were consumed;
 * - a consumer past the log end: its offsets belong to another incarnation of the topic;
 * - a sink whose counts do not add up to the offsets it advanced over.
 * produced (end − start) = consumed (position − start) + in flight (lag) for every
 * consumer whose position lies inside the log.
 * And, when `maxLateShare` is given (`monitor`: 1%), one that means data is silently
 * leaving a stream: a sink that dead-lettered more than that share of what it read as
 * late or implausible (for unique-users and clean-users, which commit to Kafka: read from
 * their side topics when `sideTopics` is given, see side-topic-shares.ts).
 * And, on Kafka, the transactions open now and each partition's last stable offset against
 * its high watermark: a transaction open longer than `maxTransactionAgeMs` is hanging — it
 * holds every read_committed reader of its partitions at the last stable offset — and is a
 * problem too.
 */

export interface TopicView {
  topic: string;
  partitions: TopicPartitionView[];
  messages: number;
}

/**
 * A partition's offsets; on Kafka also its last stable offset (the end read_committed readers
 * see) and high watermark, which differ while a transaction is open on it.
 */
export interface TopicPartitionView extends PartitionOffsets {
  lastStable?: bigint;
  highWatermark?: bigint;
}

/** A transaction open now, with its age (Kafka). */
export interface TransactionView {
  transactionalId: string;
  state: string;
  producerId: string;
  producerEpoch: number;
  /** How long it has been open (the coordinator's start time to now); null if not known. */
  ageMs: number | null;
  timeoutMs: number;
  /** `topic[partition]`, in the order the coordinator lists them. */
  partitions: string[];
  /** Open longer than the allowed age (`--max-transaction-age`). */
  hanging: boolean;
}

export interface PartitionPosition {
  partition: number;
  position: string | null;
  earliest: string;
  latest: string;
  lag: number | null;
}

export interface ConsumerView {
  kind: 'group' | 'stored';
  name: string;
  topic: string;
  partitions: PartitionPosition[];
  lag: number;
  consumed: number;
}

export interface AccountingView {
  consumer: string;
  topic: string;
  partition: number;
  advanced: number;
  accepted: number;
  invalid: number;
  late: number;
  dropped: number;
  /** Offsets without a record for the sink (transaction markers, aborted records). */
  skipped: number;
  unaccounted: number;
}

/**
 * What one sink dead-lettered as late or implausible, over everything it read. `stored`:
 * from the counts it commits in PostgreSQL; `group`: a Kafka-committing pipeline's group,
 * from its side topic, over what the group consumed (side-topic-shares.ts).
 */
export interface LateView {
  kind: 'stored' | 'group';
  consumer: string;
  topic: string;
  /** Records read (its offsets advanced over them). */
  advanced: number;
  /** Dead-lettered as late (the `late` outcome: late, beyond-lateness, window-closed). */
  late: number;
  /** Dead-lettered as implausible, by reason (`implausible-time`, `implausible-price`, ...). */
  implausible: Record<string, number>;
  /** (late + implausible) / advanced. */
  share: number;
}

export interface Problem {
  where: string;
  message: string;
}

export interface MonitorSnapshot {
  at: string;
  topics: TopicView[];
  consumers: ConsumerView[];
  accounting: AccountingView[];
  /** Per sink: its late and implausible records over what it read. */
  lateness: LateView[];
  /** Open transactions (Kafka; empty on the embedded log, which has none). */
  transactions: TransactionView[];
  problems: Problem[];
  notes: string[];
}

export interface MonitorOptions {
  /** Only these topics (default: every topic not starting with `__`). */
  topics?: readonly string[];
  /** Groups whose names start with one of these are ignored (test readers, benchmarks). */
  ignoreGroups?: readonly string[];
  /**
   * A sink whose late and implausible records exceed this share of what it read is a
   * problem (`monitor` passes its `--max-late-share`, default 1%). Without it the shares
   * are reported in `lateness` but not judged: reconciliation alone.
   */
  maxLateShare?: number;
  /**
   * Given (`monitor` always gives it), the side topics of the Kafka-committing pipelines
   * (unique-users, clean-users) are read for their late and implausible shares (a reader
   * kept across snapshots reads only what was added since). Without it (the dashboard's
   * lag view) they are not read.
   */
  sideTopics?: SideTopicReader;
  /**
   * Given (`monitor` gives it), the open transactions and every partition's last stable offset
   * and high watermark are read too (Kafka; the embedded log has no transactions). Without it
   * (the dashboard's lag view) they are not.
   */
  transactions?: boolean;
  /**
   * A transaction open longer than this is hanging, a problem (`monitor` passes its
   * `--max-transaction-age`, default 2 minutes). Without it open transactions are listed but
   * not judged.
   */
  maxTransactionAgeMs?: number;
  /** The clock, epoch ms (tests). */
  now?: () => number;
}

export const DEFAULT_MAX_LATE_SHARE = 0.01;
/**
 * tickflow's transactions time out after 60 s and the coordinator looks for expired ones
 * every 10 s: one open twice as long was not aborted when it should have been, or its
 * producer asked for a long timeout — either way read_committed readers of its partitions
 * have been held back that long.
 */
export const DEFAULT_MAX_TRANSACTION_AGE_MS = 120_000;

export async function collectSnapshot(log: Log, db: Queryable | null, options: MonitorOptions = {}): Promise<MonitorSnapshot> {
  const notes: string[] = [];
  const problems: Problem[] = [];
  const names = options.topics ?? (await log.listTopics()).filter((t) => !t.startsWith('__'));

  // Positions first, log offsets after: a log end only grows, so a position can then lie
  // past it only if it truly does. Read the other way round, a consumer that caught up
  // with records written between the two reads would look past the end.
  const ignore = options.ignoreGroups ?? [];
  const committedByGroup: Array<{ group: string; topic: string; positions: Map<number, bigint> }> = [];
  for (const group of await log.groups()) {
    if (ignore.some((prefix) => group.startsWith(prefix))) continue;
    for (const topic of names) {
      const committed = await log.committed(group, topic);
      if (committed.size > 0) committedByGroup.push({ group, topic, positions: new Map(committed) });
    }
  }
  const stored = new Map<string, Map<number, bigint>>();
  let counts: Awaited<ReturnType<typeof listCounts>> = [];
  let rejections: Awaited<ReturnType<typeof listRejectionCounts>> = [];
  if (db) {
    for (const row of await listStoredOffsets(db)) {
      const key = `${row.consumer}\u0000${row.topic}`;
      if (!stored.has(key)) stored.set(key, new Map());
      stored.get(key)!.set(row.partition, row.nextOffset);
    }
    // Counts and the offsets they reconcile with come from one statement (one snapshot).
    counts = await listCounts(db);
    rejections = await listRejectionCounts(db);
  }

  const topics: TopicView[] = [];
  for (const topic of names) {
    const partitions: TopicPartitionView[] = await log.offsets(topic);
    if (options.transactions && log.stableOffsets) {
      const ends = new Map((await log.stableOffsets(topic)).map((e) => [e.partition, e]));
      for (const p of partitions) {
        const end = ends.get(p.partition);
        if (!end) continue;
        p.lastStable = end.lastStable;
        p.highWatermark = end.highWatermark;
        if (end.lastStable < end.highWatermark) {
          notes.push(`${topic}[${p.partition}]: last stable offset ${end.lastStable} < high watermark ${end.highWatermark}: a transaction open on it holds read_committed readers at ${end.lastStable}`);
        }
      }
    }
    topics.push({ topic, partitions, messages: partitions.reduce((n, p) => n + Number(p.latest - p.earliest), 0) });
  }
  const transactions = options.transactions && log.openTransactions ? transactionViews(await log.openTransactions(), options, options.topics === undefined ? null : new Set(names)) : [];
  for (const t of transactions.filter((t) => t.hanging)) {
    problems.push({
      where: `transaction ${t.transactionalId}`,
      message: `open for ${age(t.ageMs!)} (over --max-transaction-age ${age(options.maxTransactionAgeMs!)}) on ${t.partitions.join(', ') || 'no partition yet'}: read_committed readers of those partitions are held at their last stable offset; a producer of the same transactional id aborts it, else the coordinator after its timeout of ${age(t.timeoutMs)}`,
    });
  }
  const byTopic = new Map(topics.map((t) => [t.topic, t]));

  const consumers: ConsumerView[] = [];
  const view = (kind: ConsumerView['kind'], name: string, topic: TopicView, positions: ReadonlyMap<number, bigint>): ConsumerView => {
    const partitions = topic.partitions.map((p) => {
      const position = positions.get(p.partition);
      const where = `${kind === 'group' ? 'group' : 'consumer'} ${name} on ${topic.topic}[${p.partition}]`;
      if (position !== undefined && position < p.earliest) {
        problems.push({ where, message: `${p.earliest - position} messages were deleted before they were consumed (position ${position}, log starts at ${p.earliest})` });
      }
      if (position !== undefined && position > p.latest) {
        problems.push({ where, message: `position ${position} is past the log end ${p.latest} (was the topic recreated?)` });
      }
      return {
        partition: p.partition,
        position: position === undefined ? null : String(position),
        earliest: String(p.earliest),
        latest: String(p.latest),
        lag: position === undefined ? null : Number(p.latest - (position < p.earliest ? p.earliest : position)),
      };
    });
    return {
      kind,
      name,
      topic: topic.topic,
      partitions,
      lag: partitions.reduce((n, p) => n + (p.lag ?? 0), 0),
      consumed: topic.partitions.reduce((n, p) => {
        const position = positions.get(p.partition);
        return n + (position === undefined ? 0 : Math.max(0, Number(position - p.earliest)));
      }, 0),
    };
  };

  for (const { group, topic, positions } of committedByGroup) consumers.push(view('group', group, byTopic.get(topic)!, positions));

  const accounting: AccountingView[] = [];
  const lateness: LateView[] = [];
  if (db) {
    for (const [key, positions] of stored) {
      const [name, topicName] = key.split('\u0000');
      const topic = byTopic.get(topicName);
      if (!topic) {
        if (!options.topics) notes.push(`consumer ${name} keeps offsets for ${topicName}, which does not exist now`);
        continue;
      }
      consumers.push(view('stored', name, topic, positions));
    }
    for (const row of counts) {
      const next = row.nextOffset;
      if (next === null || (options.topics && !options.topics.includes(row.topic))) continue;
      const advanced = Number(next - row.firstOffset);
      const counted = row.accepted + row.invalid + row.late + row.dropped + row.skipped;
      const entry = { consumer: row.consumer, topic: row.topic, partition: row.partition, advanced, accepted: row.accepted, invalid: row.invalid, late: row.late, dropped: row.dropped, skipped: row.skipped, unaccounted: advanced - counted };
      accounting.push(entry);
      if (entry.unaccounted !== 0) {
        problems.push({
          where: `consumer ${row.consumer} on ${row.topic}[${row.partition}]`,
          message: `advanced over ${advanced} records but accounted for ${counted} (accepted ${row.accepted}, invalid ${row.invalid}, late ${row.late}, dropped ${row.dropped}${row.skipped > 0 ? `, skipped ${row.skipped}` : ''}): ${Math.abs(entry.unaccounted)} ${entry.unaccounted > 0 ? 'missing' : 'extra'}`,
        });
      }
    }
    lateness.push(...lateShares(accounting, rejections));
  } else {
    notes.push('no database: offsets kept in PostgreSQL are not shown');
  }
  const groupRanges = committedByGroup.map((g) => ({ ...g, offsets: byTopic.get(g.topic)!.partitions }));
  const side = options.sideTopics ? await options.sideTopics.read(log, groupRanges) : { rejections: [], notes: [], unreadable: [] };
  notes.push(...side.notes);
  for (const u of side.unreadable) {
    problems.push({ where: `group ${u.group} on ${u.topic}`, message: `its late and implausible share is unknown: side topic ${u.sideTopic} could not be read (${u.error})` });
  }
  for (const r of side.rejections) {
    const flagged = r.late + Object.values(r.implausible).reduce((a, b) => a + b, 0);
    lateness.push({ kind: 'group', consumer: r.group, topic: r.topic, advanced: r.consumed, late: r.late, implausible: sortedReasons(r.implausible), share: r.consumed > 0 ? flagged / r.consumed : 0 });
    if (r.duplicates > 0) notes.push(`group ${r.group}: ${r.duplicates} side record${r.duplicates === 1 ? '' : 's'} in ${r.sideTopics.join(', ')} ${r.duplicates === 1 ? 'repeats' : 'repeat'} a source position already counted (sent again after a restart); counted once`);
  }
  const maxLateShare = options.maxLateShare;
  for (const view of maxLateShare === undefined ? [] : lateness) {
    if (view.share <= maxLateShare!) continue;
    const implausible = Object.entries(view.implausible).map(([reason, n]) => `${reason} ${n}`).join(', ');
    problems.push({
      where: `${view.kind === 'group' ? 'group' : 'consumer'} ${view.consumer} on ${view.topic}`,
      message: `${percent(view.share)} of the ${view.advanced} records it read were dead-lettered as late (${view.late}) or implausible (${implausible || 0}): over --max-late-share ${percent(maxLateShare!)}`,
    });
  }
  consumers.sort((a, b) => a.topic.localeCompare(b.topic) || a.kind.localeCompare(b.kind) || a.name.localeCompare(b.name));
  problems.push(...supervisionProblems());
  return { at: new Date().toISOString(), topics, consumers, accounting, lateness, transactions, problems, notes };
}

/** Open transactions as shown (only those touching `topics` when given), judged against the allowed age. */
function transactionViews(open: readonly OpenTransaction[], options: MonitorOptions, topics: ReadonlySet<string> | null): TransactionView[] {
  const now = (options.now ?? Date.now)();
  const limit = options.maxTransactionAgeMs;
  return open
    .filter((t) => topics === null || t.partitions.some((p) => topics.has(p.topic)))
    .map((t) => {
      const ageMs = t.startedAt === null ? null : Math.max(0, now - t.startedAt);
      return {
        transactionalId: t.transactionalId,
        state: t.state,
        producerId: String(t.producerId),
        producerEpoch: t.producerEpoch,
        ageMs,
        timeoutMs: t.timeoutMs,
        partitions: t.partitions.map((p) => `${p.topic}[${p.partition}]`),
        hanging: limit !== undefined && ageMs !== null && ageMs > limit,
      };
    });
}

/** 45s, 2m 5s, 3h 10m: a transaction's age for people. */
export function age(ms: number): string {
  const s = Math.floor(ms / 1000);
  if (s < 60) return `${ms < 10_000 ? Math.floor(ms / 100) / 10 : s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${s % 60 ? ` ${s % 60}s` : ''}`;
  return `${Math.floor(s / 3600)}h${Math.floor(s / 60) % 60 ? ` ${Math.floor(s / 60) % 60}m` : ''}`;
}

/**
 * Per sink (consumer and topic), over the partitions it accounts for: `late` from its
 * accounting, implausible reasons from its rejection counts (those are rejected with the
 * `invalid` outcome, so nothing is counted twice).
 */
function lateShares(accounting: readonly AccountingView[], rejections: Awaited<ReturnType<typeof listRejectionCounts>>): LateView[] {
  const views = new Map<string, LateView>();
  const counted = new Set<string>();
  for (const a of accounting) {
    const key = `${a.consumer}\u0000${a.topic}`;
    let view = views.get(key);
    if (!view) views.set(key, (view = { kind: 'stored', consumer: a.consumer, topic: a.topic, advanced: 0, late: 0, implausible: {}, share: 0 }));
    view.advanced += a.advanced - a.skipped; // records read: offsets without a record are not
    view.late += a.late;
    counted.add(`${key}\u0000${a.partition}`);
  }
  for (const r of rejections) {
    const key = `${r.consumer}\u0000${r.topic}`;
    if (!r.reason.startsWith('implausible-') || !counted.has(`${key}\u0000${r.partition}`)) continue;
    const view = views.get(key)!;
    view.implausible[r.reason] = (view.implausible[r.reason] ?? 0) + r.records;
  }
  for (const view of views.values()) {
    const flagged = view.late + Object.values(view.implausible).reduce((a, b) => a + b, 0);
    view.share = view.advanced > 0 ? flagged / view.advanced : 0;
  }
  return [...views.values()];
}

const sortedReasons = (counts: Record<string, number>) => Object.fromEntries(Object.entries(counts).sort(([a], [b]) => a.localeCompare(b)));

const percent = (share: number) => `${(share * 100).toFixed(share < 0.001 && share > 0 ? 3 : 1)}%`;
