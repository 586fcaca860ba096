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

/** What has been read of one side topic. */
interface SideTopicState {
  rejected: Rejected;
  /** Side records repeating a position already counted, by pipeline and source topic. */
  duplicates: Map<string, number>;
  /** Next offset to read, per partition. */
  next: Map<number, bigint>;
  positions: number;
  /** Set once the memory bound is reached: the topic is read no further. */
  capped: string | null;
}

/**
 * The late and implausible records of every group of a Kafka-committing pipeline among
 * `groups`, over what it consumed; notes say what could not be read in full. One call
 * reads the side topics from their start.
 */
export async function sideTopicRejections(log: Log, groups: readonly GroupRange[], options: SideTopicOptions = {}): Promise<SideTopicReport> {
  return new SideTopicReader(options).read(log, groups);
}

/**
 * Reads side topics and keeps what it read, so that the next `read` (`monitor --watch`)
 * only reads what was added since; a topic recreated meanwhile is read again.
 */
export class SideTopicReader {
  readonly #options: SideTopicOptions;
  readonly #pipelines: KafkaPipeline[];
  readonly #topics = new Map<string, SideTopicState>();

  constructor(options: SideTopicOptions = {}) {
    this.#options = options;
    this.#pipelines = kafkaPipelines(options);
  }

  async read(log: Log, groups: readonly GroupRange[]): Promise<SideTopicReport> {
    const mine = groups.flatMap((g) => {
      const pipeline = pipelineOfGroup(g.group, this.#pipelines);
      return pipeline ? [{ ...g, pipeline, sideTopics: pipeline.sideTopics(g.topic) }] : [];
    });
    const notes: string[] = [];
    if (mine.length === 0) return { rejections: [], notes, unreadable: [] };
    const existing = new Set(await log.listTopics());
    const read = new Set<string>();
    const failed = new Map<string, string>();
    for (const side of mine.flatMap((g) => g.sideTopics)) {
      if (read.has(side) || !existing.has(side)) continue;
      read.add(side);
      try {
        await this.#readSideTopic(log, side);
      } catch (error) {
        failed.set(side, (error as Error).message);
      }
      const capped = this.#topics.get(side)?.capped;
      if (capped) notes.push(capped);
    }
    const unreadable = mine.flatMap((g) => g.sideTopics.filter((t) => failed.has(t)).map((t) => ({ group: g.group, topic: g.topic, sideTopic: t, error: failed.get(t)! })));
    const rejections = mine.filter((g) => !g.sideTopics.some((t) => failed.has(t))).map((g) => {
      const view: GroupRejections = { group: g.group, pipeline: g.pipeline.name, topic: g.topic, consumed: 0, late: 0, implausible: {}, duplicates: 0, sideTopics: g.sideTopics };
      const states = g.sideTopics.filter((t) => read.has(t)).map((t) => this.#topics.get(t)!);
      for (const state of states) view.duplicates += state.duplicates.get(`${g.pipeline.name}\u0000${g.topic}`) ?? 0;
      for (const p of g.offsets) {
        const committed = g.positions.get(p.partition);
        if (committed === undefined || committed <= p.earliest) continue;
        view.consumed += Number(committed - p.earliest);
        const from = Number(p.earliest);
        const to = Number(committed);
        for (const state of states) {
          for (const [offset, reason] of state.rejected.get(g.pipeline.name)?.get(g.topic)?.get(p.partition) ?? []) {
            if (offset < from || offset >= to) continue;
            if (LATE_REASONS.has(reason)) view.late++;
            else view.implausible[reason] = (view.implausible[reason] ?? 0) + 1;
          }
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

  /** Adds what was written to one side topic since the last read. */
  async #readSideTopic(log: Log, topic: string): Promise<void> {
    const offsets = await log.offsets(topic);
    let state = this.#topics.get(topic);
    if (state && offsets.some((p) => p.latest < (state!.next.get(p.partition) ?? 0n))) state = undefined; // recreated
    if (!state) this.#topics.set(topic, (state = { rejected: new Map(), duplicates: new Map(), next: new Map(), positions: 0, capped: null }));
    if (state.capped) return;
    const from = new Map(offsets.map((p) => {
      const next = state!.next.get(p.partition) ?? p.earliest;
      return [p.partition, next > p.earliest ? next : p.earliest];
    }));
    const to = new Map(offsets.map((p) => [p.partition, p.latest]));
    const total = offsets.reduce((n, p) => n + Number(p.latest - from.get(p.partition)!), 0);
    if (total === 0) return;
    const maxPositions = this.#options.maxPositions ?? DEFAULT_MAX_POSITIONS;
    const every = this.#options.progressEvery ?? PROGRESS_EVERY;
    const stop = new AbortController();
    let seen = 0;
    let nextProgress = every;
    try {
      for await (const batch of log.readRange({ topic, from, to, signal: stop.signal })) {
        for (const record of batch) {
          seen++;
          state.next.set(record.partition, record.offset + 1n);
          const side = sideRecord(record);
          if (side && isLateOrImplausible(side.reason)) this.#add(state, side);
        }
        if (total > every && seen >= nextProgress) {
          this.#options.progress?.(`monitor: ${topic}: read ${seen.toLocaleString('en-US')} of ${total.toLocaleString('en-US')} side records`);
          nextProgress = seen - (seen % every) + every;
        }
        if (state.positions >= maxPositions) {
          state.capped = `side topic ${topic}: stopped after ${seen.toLocaleString('en-US')} of ${total.toLocaleString('en-US')} records at ${state.positions.toLocaleString('en-US')} distinct late or implausible positions (the memory bound); the shares from it are lower bounds`;
          stop.abort();
          break;
        }
      }
    } catch (error) {
      if (!stop.signal.aborted) throw error;
    }
  }

  #add(state: SideTopicState, side: SideRecord): void {
    let byTopic = state.rejected.get(side.pipeline);
    if (!byTopic) state.rejected.set(side.pipeline, (byTopic = new Map()));
    let byPartition = byTopic.get(side.topic);
    if (!byPartition) byTopic.set(side.topic, (byPartition = new Map()));
    let byOffset = byPartition.get(side.partition);
    if (!byOffset) byPartition.set(side.partition, (byOffset = new Map()));
    if (byOffset.has(side.offset)) {
      const key = `${side.pipeline}\u0000${side.topic}`;
      state.duplicates.set(key, (state.duplicates.get(key) ?? 0) + 1);
      return;
    }
    byOffset.set(side.offset, side.reason);
    state.positions++;
  }
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
