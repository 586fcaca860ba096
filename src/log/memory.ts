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

interface MemoryPartition {
  records: LogRecord[];
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

const tpKey = (topic: string, partition: number) => `${topic}\u0000${partition}`;

function toBuffer(value: Buffer | string | null | undefined): Buffer | null {
  if (value === null || value === undefined) return null;
  return typeof value === 'string' ? Buffer.from(value) : value;
}

/**
 * The embedded log: Kafka's topic/partition/offset and consumer-group semantics in one
 * process, for the first run with nothing installed and for fast tests. Not durable.
 */
export class MemoryLog implements Log {
  readonly kind = 'memory' as const;
  readonly description = 'embedded in-process log';
  #topics = new Map<string, MemoryPartition[]>();
  #groups = new Map<string, Group>();
  #wakeup = new Wakeup();
  #nextMember = 0;
  /** Partitions that cannot be fetched (a simulated lost leader). */
  #unreachable = new Set<string>();

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
      if (this.#topics.has(spec.name)) continue;
      const count = spec.partitions ?? 1;
      if (!Number.isInteger(count) || count < 1) {
        throw new TickflowError('BAD_CONFIG', `topic ${spec.name}: partitions must be a positive integer, got ${count}`);
      }
      this.#topics.set(spec.name, Array.from({ length: count }, () => ({ records: [] })));
    }
    this.#rebalanceAll();
  }

  async deleteTopics(names: readonly string[]): Promise<void> {
    for (const name of names) this.#topics.delete(name);
    this.#rebalanceAll();
  }

  async listTopics(): Promise<string[]> {
    return [...this.#topics.keys()].sort();
  }

  async offsets(topic: string): Promise<PartitionOffsets[]> {
    return this.#partitions(topic).map((p, partition) => ({
      partition,
      earliest: 0n,
      latest: BigInt(p.records.length),
    }));
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
        records.forEach((record, i) => {
          const target = partitions[targets[i]];
          target.records.push({
            topic,
            partition: targets[i],
            offset: BigInt(target.records.length),
            timestamp: record.timestamp ?? now,
            key: toBuffer(record.key),
            value: toBuffer(record.value),
            headers: Object.entries(record.headers ?? {}).map(([k, v]) => [k, toBuffer(v)!] as const),
          });
        });
        this.#wakeup.notify();
      },
      close: async () => {
        closed = true;
      },
    };
  }

  async *readRange(options: RangeReadOptions): AsyncIterable<LogRecord[]> {
    const partitions = this.#partitions(options.topic);
    const wanted = options.partitions ?? partitions.map((_, i) => i);
    const ends = new Map(wanted.map((p) => [p, options.to?.get(p) ?? BigInt(this.#partition(options.topic, p).records.length)]));
    for (const partition of wanted) {
      const records = this.#partition(options.topic, partition).records;
      const end = Number(ends.get(partition)!);
      for (let offset = Number(options.from?.get(partition) ?? 0n); offset < end; offset += MAX_BATCH) {
        if (options.signal?.aborted) return;
        yield records.slice(offset, Math.min(end, offset + MAX_BATCH));
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
    const topics = this.#topics;
    const wakeup = this.#wakeup;
    const unreachable = this.#unreachable;
    async function* batches(): AsyncGenerator<RecordBatch> {
      let seenVersion = -1;
      let positions = new Map<string, { tp: TopicPartition; next: number }>();
      try {
        while (!closed && !options.signal?.aborted) {
          if (member.version !== seenVersion) {
            seenVersion = member.version;
            const assignment = member.assignment;
            const stored = (await options.onAssign?.(assignment)) ?? [];
            if (member.version !== seenVersion) continue; // rebalanced while we were seeking
            positions = startPositions(assignment.partitions, stored, options.fallback ?? 'earliest');
          }
          const records: LogRecord[] = [];
          for (const [k, position] of positions) {
            if (unreachable.has(k)) continue;
            const source = topics.get(position.tp.topic)?.[position.tp.partition]?.records ?? [];
            const take = Math.min(source.length - position.next, MAX_BATCH - records.length);
            for (let i = 0; i < take; i++) records.push(source[position.next + i]);
            position.next += take;
            if (records.length >= MAX_BATCH) break;
          }
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
  }

  #startPositions(
    group: Group,
    partitions: readonly TopicPartition[],
    stored: readonly TopicPartitionOffset[],
    fallback: 'earliest' | 'latest',
  ) {
    const positions = new Map<string, { tp: TopicPartition; next: number }>();
    for (const tp of partitions) {
      const key = tpKey(tp.topic, tp.partition);
      const fromStore = stored.find((s) => s.topic === tp.topic && s.partition === tp.partition)?.offset;
      const length = this.#partition(tp.topic, tp.partition).records.length;
      const start = fromStore ?? group.committed.get(key) ?? (fallback === 'earliest' ? 0n : BigInt(length));
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

  #partitions(topic: string): MemoryPartition[] {
    const partitions = this.#topics.get(topic);
    if (!partitions) throw new TickflowError('UNKNOWN_TOPIC', `topic ${topic} does not exist (create it first)`, { topic });
    return partitions;
  }

  #partition(topic: string, partition: number): MemoryPartition {
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
    const memberTopics = new Map([...group.members].map(([id, m]) => [id, m.topics.filter((t) => this.#topics.has(t))]));
    const counts = new Map([...this.#topics].map(([name, parts]) => [name, parts.length]));
    const assigned = rangeAssign(memberTopics, counts);
    for (const member of group.members.values()) {
      member.assignment = { generation: group.generation, partitions: assigned.get(member.id) ?? [] };
      member.version++;
    }
    this.#wakeup.notify();
  }
}
