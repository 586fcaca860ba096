/**
 * Late and implausible shares of the pipelines that commit their offsets to Kafka
 * (`unique-users`, `clean-users`): they keep no counts in PostgreSQL, so `monitor` derives
 * them from Kafka itself. A pipeline's side topic (unique-users: its late topic;
 * clean-users: its dead-letter topic) holds every record it rejected, in the one
 * dead-letter format (docs/dead-letters.md): `x-pipeline`, `x-reason` (`x-original-reason`
 * on a reference), `x-source-topic`, `x-source-partition`, `x-source-offset`.
 *
 * For a group of such a pipeline, the records it rejected as late or implausible are the
 * side records of that pipeline and source topic whose source offset lies in what the
 * group consumed: [log start, committed offset) per partition. These pipelines are at
 * least once, so a restart can send a side record again: positions are counted once.
 */
import type { Log, LogRecord, PartitionOffsets } from '../log/types.ts';

/** Reasons counted as late (the `late` outcome of every pipeline). */
export const LATE_REASONS: ReadonlySet<string> = new Set(['late', 'beyond-lateness', 'window-closed']);

export const isLateOrImplausible = (reason: string): boolean => LATE_REASONS.has(reason) || reason.startsWith('implausible-');

/** A pipeline that commits to Kafka, and where its late and implausible records go. */
export interface KafkaPipeline {
  /** Its name, as in `x-pipeline`; also its default consumer group. */
  name: string;
  /** The side topics that may hold its late or implausible records, for one input topic. */
  sideTopics(input: string): string[];
}

export interface SideTopicNames {
  /** unique-users' `--late-topic` (default `user-tracker-late`). */
  lateTopic?: string;
  /** clean-users' `--dead-letter-topic` (default `<input>-dlq`). */
  deadLetterTopic?: string;
}

export function kafkaPipelines(names: SideTopicNames = {}): KafkaPipeline[] {
  return [
    { name: 'unique-users', sideTopics: () => [names.lateTopic ?? 'user-tracker-late'] },
    { name: 'clean-users', sideTopics: (input) => [names.deadLetterTopic ?? `${input}-dlq`] },
  ];
}

/** The pipeline a group belongs to: its name is the pipeline's, or starts with it and `-`. */
export function pipelineOfGroup(group: string, pipelines: readonly KafkaPipeline[]): KafkaPipeline | undefined {
  return pipelines.find((p) => group === p.name || group.startsWith(`${p.name}-`));
}

/** One group's rejections over what it consumed. */
export interface GroupRejections {
  group: string;
  pipeline: string;
  topic: string;
  /** Records consumed: committed − log start, per partition, summed. */
  consumed: number;
  late: number;
  implausible: Record<string, number>;
  /** Side records counted again at a position already counted (re-sent after a restart). */
  duplicates: number;
  /** The side topics read. */
  sideTopics: string[];
}

export interface SideTopicOptions extends SideTopicNames {
  /** Stop reading a side topic after this many distinct rejected positions (default 2 million). */
  maxPositions?: number;
  /** Called with a line of progress while a large side topic is read. */
  progress?: (line: string) => void;
  /** A side topic of more records than this reports progress, every this many (default 200,000). */
  progressEvery?: number;
}

export const DEFAULT_MAX_POSITIONS = 2_000_000;
const PROGRESS_EVERY = 200_000;

interface GroupRange {
  group: string;
  topic: string;
  /** Committed offset per partition. */
  positions: ReadonlyMap<number, bigint>;
  /** The source topic's offsets (its log start bounds what the group consumed). */
  offsets: readonly PartitionOffsets[];
}

export interface SideTopicReport {
  /** Groups whose side topics were all read. */
  rejections: GroupRejections[];
  notes: string[];
  /** Groups whose share is unknown: a side topic could not be read (not authorized, ...). */
  unreadable: Array<{ group: string; topic: string; sideTopic: string; error: string }>;
}

/** pipeline → source topic → partition → offset → reason. */
type Rejected = Map<string, Map<string, Map<number, Map<number, string>>>>;

/**
 * The late and implausible records of every group of a Kafka-committing pipeline among
 * `groups`, over what it consumed; notes say what could not be read in full.
 */
export async function sideTopicRejections(log: Log, groups: readonly GroupRange[], options: SideTopicOptions = {}): Promise<SideTopicReport> {
  const pipelines = kafkaPipelines(options);
  const mine = groups.flatMap((g) => {
    const pipeline = pipelineOfGroup(g.group, pipelines);
    return pipeline ? [{ ...g, pipeline, sideTopics: pipeline.sideTopics(g.topic) }] : [];
  });
  const notes: string[] = [];
  if (mine.length === 0) return { rejections: [], notes, unreadable: [] };
  const existing = new Set(await log.listTopics());
  const rejected: Rejected = new Map();
  let duplicatesBy = new Map<string, number>();
  const read = new Set<string>();
  const failed = new Map<string, string>();
  for (const g of mine) {
    for (const side of g.sideTopics) {
      if (read.has(side) || !existing.has(side)) continue;
      read.add(side);
      try {
        duplicatesBy = mergeCounts(duplicatesBy, await readSideTopic(log, side, rejected, options, notes));
      } catch (error) {
        failed.set(side, (error as Error).message);
      }
    }
  }
  const unreadable = mine.flatMap((g) => g.sideTopics.filter((t) => failed.has(t)).map((t) => ({ group: g.group, topic: g.topic, sideTopic: t, error: failed.get(t)! })));
  const rejections = mine.filter((g) => !g.sideTopics.some((t) => failed.has(t))).map((g) => {
    const view: GroupRejections = { group: g.group, pipeline: g.pipeline.name, topic: g.topic, consumed: 0, late: 0, implausible: {}, duplicates: duplicatesBy.get(`${g.pipeline.name}\u0000${g.topic}`) ?? 0, sideTopics: g.sideTopics };
    const byPartition = rejected.get(g.pipeline.name)?.get(g.topic);
    for (const p of g.offsets) {
      const committed = g.positions.get(p.partition);
      if (committed === undefined || committed <= p.earliest) continue;
      view.consumed += Number(committed - p.earliest);
      const from = Number(p.earliest);
      const to = Number(committed);
      for (const [offset, reason] of byPartition?.get(p.partition) ?? []) {
        if (offset < from || offset >= to) continue;
        if (LATE_REASONS.has(reason)) view.late++;
        else view.implausible[reason] = (view.implausible[reason] ?? 0) + 1;
      }
    }
    return view;
  });
  for (const g of mine) {
    const missing = g.sideTopics.filter((t) => !existing.has(t));
    if (missing.length > 0) notes.push(`group ${g.group} (${g.pipeline.name}): side topic ${missing.join(', ')} does not exist; no late or implausible records counted from it`);
  }
  return { rejections, notes, unreadable };
}

function mergeCounts(a: Map<string, number>, b: Map<string, number>): Map<string, number> {
  for (const [key, n] of b) a.set(key, (a.get(key) ?? 0) + n);
  return a;
}

/** Adds one side topic's late and implausible positions; returns the re-sent ones by pipeline and source topic. */
async function readSideTopic(log: Log, topic: string, rejected: Rejected, options: SideTopicOptions, notes: string[]): Promise<Map<string, number>> {
  const duplicates = new Map<string, number>();
  const offsets = await log.offsets(topic);
  const total = offsets.reduce((n, p) => n + Number(p.latest - p.earliest), 0);
  if (total === 0) return duplicates;
  const maxPositions = options.maxPositions ?? DEFAULT_MAX_POSITIONS;
  const stop = new AbortController();
  let seen = 0;
  let positions = 0;
  const every = options.progressEvery ?? PROGRESS_EVERY;
  let nextProgress = every;
  const to = new Map(offsets.map((p) => [p.partition, p.latest]));
  try {
    for await (const batch of log.readRange({ topic, to, signal: stop.signal })) {
      for (const record of batch) {
        seen++;
        const side = sideRecord(record);
        if (!side || !isLateOrImplausible(side.reason)) continue;
        let byTopic = rejected.get(side.pipeline);
        if (!byTopic) rejected.set(side.pipeline, (byTopic = new Map()));
        let byPartition = byTopic.get(side.topic);
        if (!byPartition) byTopic.set(side.topic, (byPartition = new Map()));
        let byOffset = byPartition.get(side.partition);
        if (!byOffset) byPartition.set(side.partition, (byOffset = new Map()));
        if (byOffset.has(side.offset)) {
          const key = `${side.pipeline}\u0000${side.topic}`;
          duplicates.set(key, (duplicates.get(key) ?? 0) + 1);
          continue;
        }
        byOffset.set(side.offset, side.reason);
        positions++;
      }
      if (total > every && seen >= nextProgress) {
        options.progress?.(`monitor: ${topic}: read ${seen.toLocaleString('en-US')} of ${total.toLocaleString('en-US')} side records`);
        nextProgress = seen - (seen % every) + every;
      }
      if (positions >= maxPositions) {
        notes.push(`side topic ${topic}: stopped after ${seen.toLocaleString('en-US')} of ${total.toLocaleString('en-US')} records at ${positions.toLocaleString('en-US')} distinct late or implausible positions (the memory bound); the shares from it are lower bounds`);
        stop.abort();
        break;
      }
    }
  } catch (error) {
    if (!stop.signal.aborted) throw error;
  }
  return duplicates;
}

interface SideRecord {
  pipeline: string;
  reason: string;
  topic: string;
  partition: number;
  offset: number;
}

/** The headers that place a side record, or null for a record not in the dead-letter format. */
export function sideRecord(record: LogRecord): SideRecord | null {
  let pipeline: string | undefined;
  let reason: string | undefined;
  let original: string | undefined;
  let topic: string | undefined;
  let partition: string | undefined;
  let offset: string | undefined;
  for (const [name, value] of record.headers) {
    if (name === 'x-pipeline') pipeline = value.toString('utf8');
    else if (name === 'x-reason') reason = value.toString('utf8');
    else if (name === 'x-original-reason') original = value.toString('utf8');
    else if (name === 'x-source-topic') topic = value.toString('utf8');
    else if (name === 'x-source-partition') partition = value.toString('utf8');
    else if (name === 'x-source-offset') offset = value.toString('utf8');
  }
  // A reference (too large to dead-letter) keeps the reason it was rejected for apart.
  const why = original ?? reason;
  if (pipeline === undefined || why === undefined || topic === undefined || !/^\d+$/.test(partition ?? '') || !/^\d+$/.test(offset ?? '')) return null;
  return { pipeline, reason: why, topic, partition: Number(partition), offset: Number(offset) };
}
