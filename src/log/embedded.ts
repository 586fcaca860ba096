import { partitionForKey } from '../core/murmur2.ts';
import { TickflowError } from '../core/errors.ts';
import { rangeAssign } from './assignor.ts';
import { Wakeup } from './wakeup.ts';
import type {
  Assignment,
  GroupConsumer,
  Log,
  LogRecord,
  PartitionOffsets,
  Producer,
  RangeReadOptions,
  RecordBatch,
  RecordToProduce,
  SubscribeOptions,
  TopicPartition,
  TopicPartitionOffset,
  TopicSpec,
} from './types.ts';

const MAX_BATCH = 5000;
const IDLE_WAIT_MS = 200;

/** A record on its way into storage: the storage gives it its offset. */
export interface NewRecord {
  timestamp: bigint;
  key: Buffer | null;
  value: Buffer | null;
  headers: Array<readonly [string, Buffer]>;
}

/** One partition as its storage keeps it. Offsets are numbers here (safe far beyond any embedded log). */
export interface StoredPartition {
  /** The first offset still kept (retention moves it forward). */
  start(): number;
  /** The offset the next record gets, among the records readers may see. */
  end(): number;
  /** Up to `max` records of [from, to), from at or after start(); fewer (or none) at the end. */
  read(from: number, to: number, max: number): LogRecord[];
}

/** Where the embedded log keeps topics, records and committed offsets: memory or files. */
export interface LogStorage {
  readonly description: string;
  partitions(topic: string): readonly StoredPartition[] | undefined;
  topicNames(): string[];
  /** Creates a missing topic (the caller checked it is missing). */
  createTopic(spec: TopicSpec, partitions: number): void;
  deleteTopic(name: string): void;
  /** Appends each partition's records as one batch; resolves once readers can see them. */
  append(topic: string, byPartition: ReadonlyMap<number, NewRecord[]>): Promise<void>;
  /** Every group's committed next-offsets as kept, by group then topic\0partition. */
  loadCommitted(): Map<string, Map<string, bigint>>;
  saveCommitted(group: string, committed: ReadonlyMap<string, bigint>): Promise<void>;
  close(): Promise<void>;
}

/** Where the embedded log reports what a reader should know (a position moved by retention). */
export interface EmbeddedLogger {
  warn(details: object, message: string): void;
}

interface Member {
  id: string;
  topics: readonly string[];
  assignment: Assignment;
  /** Bumped on every new assignment so the member's loop notices it. */
  version: number;
}

interface Group {
  generation: number;
  members: Map<string, Member>;
  committed: Map<string, bigint>;
}

interface Position {
  tp: TopicPartition;
  next: number;
}

const tpKey = (topic: string, partition: number) => `${topic}\u0000${partition}`;

function toBuffer(value: Buffer | string | null | undefined): Buffer | null {
  if (value === null || value === undefined) return null;
  return typeof value === 'string' ? Buffer.from(value) : value;
}

/**
 * The embedded log: Kafka's topic/partition/offset and consumer-group semantics in one
 * process, over a storage that keeps the records (MemoryLog: memory; DiskLog: segment
 * files under the data dir). Group membership lives in the process; committed offsets
 * live in the storage.
 */
export class EmbeddedLog implements Log {
  readonly kind = 'memory' as const;
  readonly description: string;
  readonly #storage: LogStorage;
  readonly #logger: EmbeddedLogger | undefined;
  #groups = new Map<string, Group>();
  #wakeup = new Wakeup();
  #nextMember = 0;
  /** Partitions that cannot be fetched (a simulated lost leader). */
  #unreachable = new Set<string>();

  constructor(storage: LogStorage, logger?: EmbeddedLogger) {
    this.#storage = storage;
    this.#logger = logger;
    this.description = storage.description;
    for (const [name, committed] of storage.loadCommitted()) this.#group(name).committed = committed;
  }

  /**
   * Fault injection for tests: an unreachable partition keeps taking records but group
   * members cannot fetch it (as when its leader is lost) and report it `unreachable()`.
   */
  setReachable(topic: string, partition: number, reachable: boolean): void {
    this.#partition(topic, partition);
    if (reachable) this.#unreachable.delete(tpKey(topic, partition));
    else this.#unreachable.add(tpKey(topic, partition));
    this.#wakeup.notify();
  }

  async createTopics(specs: readonly TopicSpec[]): Promise<void> {
    for (const spec of specs) {
      if (this.#storage.partitions(spec.name)) continue;
      const count = spec.partitions ?? 1;
      if (!Number.isInteger(count) || count < 1) {
        throw new TickflowError('BAD_CONFIG', `topic ${spec.name}: partitions must be a positive integer, got ${count}`);
      }
      this.#storage.createTopic(spec, count);
    }
    this.#rebalanceAll();
  }

  async deleteTopics(names: readonly string[]): Promise<void> {
    for (const name of names) if (this.#storage.partitions(name)) this.#storage.deleteTopic(name);
    this.#rebalanceAll();
  }

  async listTopics(): Promise<string[]> {
    return this.#storage.topicNames().sort();
  }

  async offsets(topic: string): Promise<PartitionOffsets[]> {
    return this.#partitions(topic).map((p, partition) => ({ partition, earliest: BigInt(p.start()), latest: BigInt(p.end()) }));
  }

  async groups(): Promise<string[]> {
    return [...this.#groups.keys()].sort();
  }

  async committed(group: string, topic: string): Promise<Map<number, bigint>> {
    const result = new Map<number, bigint>();
    const committed = this.#groups.get(group)?.committed;
    if (!committed) return result;
    this.#partitions(topic).forEach((_, partition) => {
      const offset = committed.get(tpKey(topic, partition));
      if (offset !== undefined) result.set(partition, offset);
    });
    return result;
  }

  producer(): Producer {
    const roundRobin = new Map<string, number>();
    let closed = false;
    return {
      send: async (topic, records) => {
        if (closed) throw new TickflowError('LOG_ERROR', 'producer is closed');
        const partitions = this.#partitions(topic);
        const now = BigInt(Date.now());
        // Validate the whole batch first: a batch is appended entirely or not at all.
        const targets = records.map((record) => this.#choosePartition(topic, partitions.length, record, roundRobin));
        const byPartition = new Map<number, NewRecord[]>();
        records.forEach((record, i) => {
          let list = byPartition.get(targets[i]);
          if (!list) byPartition.set(targets[i], (list = []));
          list.push({
            timestamp: record.timestamp ?? now,
            key: toBuffer(record.key),
            value: toBuffer(record.value),
            headers: Object.entries(record.headers ?? {}).map(([k, v]) => [k, toBuffer(v)!] as const),
          });
        });
        if (byPartition.size === 0) return;
        await this.#storage.append(topic, byPartition);
        this.#wakeup.notify();
      },
      close: async () => {
        closed = true;
      },
    };
  }

  async *readRange(options: RangeReadOptions): AsyncIterable<LogRecord[]> {
    const { topic } = options;
    const partitions = this.#partitions(topic);
    const wanted = options.partitions ?? partitions.map((_, i) => i);
    const ends = new Map(wanted.map((p) => [p, options.to?.get(p) ?? BigInt(this.#partition(topic, p).end())]));
    for (const partition of wanted) {
      const stored = this.#partition(topic, partition);
      const end = Number(ends.get(partition)!);
      let offset = Number(options.from?.get(partition) ?? BigInt(stored.start()));
      while (offset < end) {
        if (options.signal?.aborted) return;
        offset = this.#atLeastStart(topic, partition, stored, offset);
        const records = stored.read(offset, end, MAX_BATCH);
        if (records.length === 0) break;
        offset = Number(records[records.length - 1].offset) + 1;
        yield records;
      }
    }
  }

  subscribe(options: SubscribeOptions): GroupConsumer {
    const group = this.#group(options.group);
    const member: Member = {
      id: `member-${++this.#nextMember}`,
      topics: [...options.topics],
      assignment: { generation: 0, partitions: [] },
      version: 0,
    };
    let closed = false;
    const close = async () => {
      if (closed) return;
      closed = true;
      group.members.delete(member.id);
      this.#rebalance(group);
    };
    group.members.set(member.id, member);
    this.#rebalance(group);

    const startPositions = this.#startPositions.bind(this, group);
    const fetch = this.#fetch.bind(this);
    const wakeup = this.#wakeup;
    async function* batches(): AsyncGenerator<RecordBatch> {
      let seenVersion = -1;
      let positions = new Map<string, Position>();
      try {
        while (!closed && !options.signal?.aborted) {
          if (member.version !== seenVersion) {
            seenVersion = member.version;
            const assignment = member.assignment;
            const stored = (await options.onAssign?.(assignment)) ?? [];
            if (member.version !== seenVersion) continue; // rebalanced while we were seeking
            positions = startPositions(assignment.partitions, stored, options.fallback ?? 'earliest');
          }
          const records = fetch(positions);
          if (records.length > 0) yield { generation: member.assignment.generation, records };
          else await wakeup.wait(IDLE_WAIT_MS, options.signal);
        }
      } finally {
        await close();
      }
    }
    const iterator = batches();
    return {
      assignment: () => member.assignment,
      unreachable: () => member.assignment.partitions.filter((tp) => this.#unreachable.has(tpKey(tp.topic, tp.partition))),
      commit: async (offsets: readonly TopicPartitionOffset[]) => {
        for (const { topic, partition, offset } of offsets) group.committed.set(tpKey(topic, partition), offset);
        await this.#storage.saveCommitted(options.group, group.committed);
      },
      close: async () => {
        await close();
        this.#wakeup.notify();
      },
      [Symbol.asyncIterator]: () => iterator,
    };
  }

  async close(): Promise<void> {
    this.#wakeup.notify();
    await this.#storage.close();
  }

  /** The next records of the assigned partitions, at most one batch. */
  #fetch(positions: Map<string, Position>): LogRecord[] {
    const records: LogRecord[] = [];
    for (const [k, position] of positions) {
      if (this.#unreachable.has(k)) continue;
      const stored = this.#storage.partitions(position.tp.topic)?.[position.tp.partition];
      if (!stored) continue;
      position.next = this.#atLeastStart(position.tp.topic, position.tp.partition, stored, position.next);
      const taken = stored.read(position.next, stored.end(), MAX_BATCH - records.length);
      for (const record of taken) records.push(record);
      if (taken.length > 0) position.next = Number(taken[taken.length - 1].offset) + 1;
      if (records.length >= MAX_BATCH) break;
    }
    return records;
  }

  /** A position retention has deleted under resumes at the log start, with a warning. */
  #atLeastStart(topic: string, partition: number, stored: StoredPartition, position: number): number {
    const start = stored.start();
    if (position >= start) return position;
    this.#logger?.warn({ topic, partition, position, logStart: start, skipped: start - position }, 'position is before the log start (retention deleted those records): resuming at the log start');
    return start;
  }

  #startPositions(group: Group, partitions: readonly TopicPartition[], stored: readonly TopicPartitionOffset[], fallback: 'earliest' | 'latest') {
    const positions = new Map<string, Position>();
    for (const tp of partitions) {
      const key = tpKey(tp.topic, tp.partition);
      const fromStore = stored.find((s) => s.topic === tp.topic && s.partition === tp.partition)?.offset;
      const partition = this.#partition(tp.topic, tp.partition);
      const start = fromStore ?? group.committed.get(key) ?? BigInt(fallback === 'earliest' ? partition.start() : partition.end());
      positions.set(key, { tp, next: Number(start) });
    }
    return positions;
  }

  #choosePartition(topic: string, count: number, record: RecordToProduce, roundRobin: Map<string, number>): number {
    if (record.partition !== undefined) {
      if (!Number.isInteger(record.partition) || record.partition < 0 || record.partition >= count) {
        throw new TickflowError('LOG_ERROR', `topic ${topic} has no partition ${record.partition}`);
      }
      return record.partition;
    }
    const key = toBuffer(record.key);
    if (key) return partitionForKey(key, count);
    const next = roundRobin.get(topic) ?? 0;
    roundRobin.set(topic, next + 1);
    return next % count;
  }

  #partitions(topic: string): readonly StoredPartition[] {
    const partitions = this.#storage.partitions(topic);
    if (!partitions) throw new TickflowError('UNKNOWN_TOPIC', `topic ${topic} does not exist (create it first)`, { topic });
    return partitions;
  }

  #partition(topic: string, partition: number): StoredPartition {
    const found = this.#partitions(topic)[partition];
    if (!found) throw new TickflowError('LOG_ERROR', `topic ${topic} has no partition ${partition}`);
    return found;
  }

  #group(name: string): Group {
    let group = this.#groups.get(name);
    if (!group) {
      group = { generation: 0, members: new Map(), committed: new Map() };
      this.#groups.set(name, group);
    }
    return group;
  }

  #rebalanceAll(): void {
    for (const group of this.#groups.values()) if (group.members.size > 0) this.#rebalance(group);
  }

  /** Eager rebalance, as Kafka's classic protocol: a new generation and a fresh assignment for all. */
  #rebalance(group: Group): void {
    group.generation++;
    const memberTopics = new Map([...group.members].map(([id, m]) => [id, m.topics.filter((t) => this.#storage.partitions(t) !== undefined)]));
    const counts = new Map(this.#storage.topicNames().map((name) => [name, this.#storage.partitions(name)!.length]));
    const assigned = rangeAssign(memberTopics, counts);
    for (const member of group.members.values()) {
      member.assignment = { generation: group.generation, partitions: assigned.get(member.id) ?? [] };
      member.version++;
    }
    this.#wakeup.notify();
  }
}
