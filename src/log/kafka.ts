import { Admin, Consumer, ListOffsetTimestamps, Producer as KafkaProducer, ProduceAcks } from '@platformatic/kafka';
import type { ConnectionOptions, GroupAssignment } from '@platformatic/kafka';
import { TickflowError } from '../core/errors.ts';
import { DEFAULT_FETCH, fetchOnce } from './kafka-fetch.ts';
import { FastProduce } from './kafka-produce.ts';
import type { FetchPosition, FetchTuning } from './kafka-fetch.ts';
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
  SubscribeOptions,
  TopicPartitionOffset,
  TopicSpec,
} from './types.ts';

export interface KafkaLogOptions {
  brokers: readonly string[];
  clientId?: string;
  /** TLS to the brokers (true for system CAs, or node tls options). */
  tls?: ConnectionOptions['tls'] | true;
  sasl?: { mechanism: 'PLAIN' | 'SCRAM-SHA-256' | 'SCRAM-SHA-512'; username: string; password: string };
  fetch?: Partial<FetchTuning>;
  /** Upper bound of one produce request; the broker's default message.max.bytes is 1 MiB. */
  maxRequestBytes?: number;
}

const IDLE_WAIT_MS = 200;

/** The Kafka adapter, on @platformatic/kafka. Only this folder imports the Kafka library. */
export class KafkaLog implements Log {
  readonly kind = 'kafka' as const;
  readonly description: string;
  readonly #options: KafkaLogOptions;
  readonly #fetch: FetchTuning;
  #admin: Admin | null = null;
  #reader: Consumer | null = null;
  #closables = new Set<{ close(): Promise<void> }>();

  constructor(options: KafkaLogOptions) {
    if (options.brokers.length === 0) throw new TickflowError('BAD_CONFIG', 'no Kafka brokers given');
    this.#options = options;
    this.#fetch = { ...DEFAULT_FETCH, ...options.fetch };
    this.description = `kafka ${options.brokers.join(',')}`;
  }

  #base(suffix: string) {
    const { tls, sasl } = this.#options;
    return {
      clientId: `${this.#options.clientId ?? 'tickflow'}-${suffix}`,
      bootstrapBrokers: [...this.#options.brokers],
      ...(tls ? { tls: tls === true ? {} : tls } : {}),
      ...(sasl ? { sasl } : {}),
      retries: 5,
      retryDelay: 250,
      connectTimeout: 5000,
      metadataMaxAge: 5000,
    };
  }

  #adminClient(): Admin {
    this.#admin ??= new Admin(this.#base('admin'));
    return this.#admin;
  }

  /** A consumer used only for metadata, offsets and group-less fetches; it never joins a group. */
  #readerClient(): Consumer {
    this.#reader ??= new Consumer({ ...this.#base('reader'), groupId: `tickflow-reader-${process.pid}` });
    return this.#reader;
  }

  async createTopics(specs: readonly TopicSpec[]): Promise<void> {
    const existing = new Set(await this.listTopics());
    const missing = specs.filter((s) => !existing.has(s.name));
    for (const spec of missing) {
      try {
        await this.#adminClient().createTopics({
          topics: [spec.name],
          partitions: spec.partitions ?? 1,
          replicas: spec.replicationFactor ?? 1,
          configs: Object.entries(spec.configs ?? {}).map(([name, value]) => ({ name, value })),
        });
      } catch (error) {
        // Another process created it between our list and create: that is what we wanted.
        if (!String((error as Error)?.message ?? '').includes('already exists') && !hasKafkaCode(error, 36)) {
          throw wrap(error, `create topic ${spec.name}`);
        }
      }
    }
    if (missing.length > 0) await this.#awaitTopics(missing.map((s) => s.name));
  }

  /** Topic creation is asynchronous on the controller: wait until every partition has a leader. */
  async #awaitTopics(names: string[]): Promise<void> {
    for (let attempt = 0; attempt < 50; attempt++) {
      const metadata = await this.#readerClient().metadata({ topics: names, forceUpdate: true }).catch(() => null);
      const ready = metadata && names.every((n) => metadata.topics.get(n)?.partitions.every((p) => p.leader >= 0));
      if (ready) return;
      await new Promise((r) => setTimeout(r, 100));
    }
    throw new TickflowError('LOG_ERROR', `topics ${names.join(', ')} did not get leaders in time`);
  }

  async deleteTopics(names: readonly string[]): Promise<void> {
    const existing = new Set(await this.listTopics());
    const present = names.filter((n) => existing.has(n));
    if (present.length > 0) await this.#adminClient().deleteTopics({ topics: present }).catch((e) => Promise.reject(wrap(e, 'delete topics')));
  }

  async listTopics(): Promise<string[]> {
    try {
      return (await this.#adminClient().listTopics()).sort();
    } catch (error) {
      throw wrap(error, 'list topics');
    }
  }

  async offsets(topic: string): Promise<PartitionOffsets[]> {
    const reader = this.#readerClient();
    try {
      const [earliest, latest] = await Promise.all([
        reader.listOffsets({ topics: [topic], timestamp: ListOffsetTimestamps.EARLIEST }),
        reader.listOffsets({ topics: [topic], timestamp: ListOffsetTimestamps.LATEST }),
      ]);
      const first = earliest.get(topic) ?? [];
      const last = latest.get(topic) ?? [];
      return last.map((end, partition) => ({ partition, earliest: first[partition] ?? 0n, latest: end }));
    } catch (error) {
      throw wrap(error, `list offsets of ${topic}`, topic);
    }
  }

  async groups(): Promise<string[]> {
    try {
      return [...(await this.#adminClient().listGroups()).keys()].sort();
    } catch (error) {
      throw wrap(error, 'list consumer groups');
    }
  }

  async committed(group: string, topic: string): Promise<Map<number, bigint>> {
    const partitions = (await this.offsets(topic)).map((p) => p.partition);
    const answer = await this.#adminClient()
      .listConsumerGroupOffsets({ groups: [{ groupId: group, topics: [{ name: topic, partitionIndexes: partitions }] }] })
      .catch((e) => Promise.reject(wrap(e, `list offsets of group ${group}`)));
    const result = new Map<number, bigint>();
    for (const g of answer) {
      for (const t of g.topics) {
        for (const p of t.partitions) if (p.committedOffset >= 0n) result.set(p.partitionIndex, p.committedOffset);
      }
    }
    return result;
  }

  producer(): Producer {
    // The client provides connections, metadata and the producer id; batches are ours.
    const client = new KafkaProducer<Buffer, Buffer, Buffer, Buffer>({
      ...this.#base('producer'),
      idempotent: true,
      acks: ProduceAcks.ALL,
      autocreateTopics: false,
    });
    const fast = new FastProduce(client, { maxBatchBytes: this.#options.maxRequestBytes ?? 900_000, timeoutMs: 30_000 });
    // Sends are serialised so that one producer keeps its records in order on every partition.
    let tail: Promise<unknown> = Promise.resolve();
    const producer: Producer = {
      send: (topic, records) => {
        const run = tail.then(async () => {
          try {
            await fast.send(topic, records);
          } catch (error) {
            throw wrap(error, `produce to ${topic}`, topic);
          }
        });
        tail = run.catch(() => undefined);
        return run;
      },
      close: async () => {
        await tail;
        this.#closables.delete(producer);
        await client.close();
      },
    };
    this.#closables.add(producer);
    return producer;
  }

  async *readRange(options: RangeReadOptions): AsyncIterable<LogRecord[]> {
    const offsets = await this.offsets(options.topic);
    const wanted = options.partitions ?? offsets.map((p) => p.partition);
    let positions: FetchPosition[] = wanted.map((partition) => {
      const known = offsets[partition];
      if (!known) throw new TickflowError('LOG_ERROR', `topic ${options.topic} has no partition ${partition}`);
      return {
        topic: options.topic,
        partition,
        next: options.from?.get(partition) ?? known.earliest,
        end: options.to?.get(partition) ?? known.latest,
      };
    });
    const reader = this.#readerClient();
    let refresh = false;
    positions = positions.filter((p) => p.next < p.end!);
    // Double-buffered: the next fetch is in flight while the caller handles this batch.
    let pending = positions.length > 0 ? fetchOnce(reader, positions, this.#fetch, refresh) : null;
    while (pending) {
      if (options.signal?.aborted) return;
      const outcome = await pending.catch((e) => Promise.reject(wrap(e, `fetch ${options.topic}`, options.topic)));
      refresh = outcome.stale;
      if (outcome.outOfRange.length > 0) {
        const first = outcome.outOfRange.map((p) => `${p.partition}@${p.next}`).join(', ');
        throw new TickflowError('LOG_ERROR', `offsets out of range in ${options.topic}: ${first} (deleted by retention?)`);
      }
      positions = positions.filter((p) => p.next < p.end!);
      pending = positions.length > 0 ? fetchOnce(reader, positions, this.#fetch, refresh) : null;
      if (outcome.records.length > 0) yield outcome.records;
    }
  }

  subscribe(options: SubscribeOptions): GroupConsumer {
    const consumer = new Consumer({
      ...this.#base(`group-${options.group}`),
      groupId: options.group,
      sessionTimeout: options.sessionTimeoutMs ?? 10_000,
      heartbeatInterval: options.heartbeatIntervalMs ?? 1000,
      rebalanceTimeout: Math.max(options.sessionTimeoutMs ?? 10_000, 15_000),
      autocommit: false,
    });
    const wakeup = new Wakeup();
    let version = 0;
    let assignment: Assignment = { generation: 0, partitions: [] };
    consumer.on('consumer:group:join', () => {
      assignment = { generation: consumer.generationId, partitions: flatten(consumer.assignments ?? []) };
      version++;
      wakeup.notify();
    });
    let closed = false;
    let closing: Promise<void> | null = null;
    const close = () => {
      closed = true;
      wakeup.notify();
      closing ??= (async () => {
        this.#closables.delete(handle);
        if (consumer.memberId) await Promise.resolve(consumer.leaveGroup()).catch(() => undefined);
        await consumer.close().catch(() => undefined);
      })();
      return closing;
    };
    const fetchTuning = this.#fetch;
    const startPositions = async (current: Assignment): Promise<FetchPosition[]> => {
      const stored = (await options.onAssign?.(current)) ?? [];
      const positions: FetchPosition[] = [];
      const missing = current.partitions.filter((tp) => !stored.some((s) => s.topic === tp.topic && s.partition === tp.partition));
      const committed = missing.length > 0 ? await consumer.listCommittedOffsets({ topics: group(missing) }) : new Map();
      const fallback = missing.length > 0
        ? await consumer.listOffsets({
          topics: [...new Set(missing.map((tp) => tp.topic))],
          timestamp: options.fallback === 'latest' ? ListOffsetTimestamps.LATEST : ListOffsetTimestamps.EARLIEST,
        })
        : new Map();
      for (const tp of current.partitions) {
        const fromStore = stored.find((s) => s.topic === tp.topic && s.partition === tp.partition)?.offset;
        const fromGroup = committed.get(tp.topic)?.[tp.partition];
        const next = fromStore ?? (fromGroup !== undefined && fromGroup >= 0n ? fromGroup : fallback.get(tp.topic)?.[tp.partition] ?? 0n);
        positions.push({ topic: tp.topic, partition: tp.partition, next });
      }
      return positions;
    };

    async function* batches(): AsyncGenerator<RecordBatch> {
      try {
        consumer.topics.trackAll(...options.topics);
        await consumer.joinGroup({}).catch((e) => Promise.reject(wrap(e, `join group ${options.group}`)));
        let seen = -1;
        let positions: FetchPosition[] = [];
        let refresh = false;
        while (!closed && !options.signal?.aborted) {
          if (version !== seen) {
            seen = version;
            const current = assignment;
            positions = await startPositions(current);
            if (version !== seen) continue;
          }
          if (positions.length === 0) {
            await wakeup.wait(IDLE_WAIT_MS, options.signal);
            continue;
          }
          const generation = assignment.generation;
          const outcome = await fetchOnce(consumer, positions, fetchTuning, refresh);
          refresh = outcome.stale;
          if (version !== seen || closed) continue; // rebalanced meanwhile: these partitions may be gone
          for (const p of outcome.outOfRange) p.next = 0n; // retention removed them: restart at the log start
          if (outcome.records.length > 0) yield { generation, records: outcome.records };
        }
      } finally {
        await close();
      }
    }

    const iterator = batches();
    const handle: GroupConsumer = {
      assignment: () => assignment,
      commit: async (offsets: readonly TopicPartitionOffset[]) => {
        try {
          await consumer.commit({ offsets: offsets.map((o) => ({ ...o, leaderEpoch: -1 })) });
        } catch (error) {
          throw wrap(error, `commit offsets of group ${options.group}`);
        }
      },
      close,
      [Symbol.asyncIterator]: () => iterator,
    };
    this.#closables.add(handle);
    return handle;
  }

  async close(): Promise<void> {
    await Promise.all([...this.#closables].map((c) => c.close().catch(() => undefined)));
    await Promise.all([this.#admin?.close(), this.#reader?.close()].map((p) => p?.catch(() => undefined)));
    this.#admin = null;
    this.#reader = null;
  }
}

function flatten(assignments: GroupAssignment[]) {
  return assignments
    .flatMap((a) => a.partitions.map((partition) => ({ topic: a.topic, partition })))
    .sort((a, b) => a.topic.localeCompare(b.topic) || a.partition - b.partition);
}

function group(partitions: { topic: string; partition: number }[]): GroupAssignment[] {
  const byTopic = new Map<string, number[]>();
  for (const tp of partitions) byTopic.set(tp.topic, [...(byTopic.get(tp.topic) ?? []), tp.partition]);
  return [...byTopic].map(([topic, list]) => ({ topic, partitions: list }));
}

function hasKafkaCode(error: unknown, code: number): boolean {
  const seen = new Set<unknown>();
  const visit = (e: unknown): boolean => {
    if (!e || typeof e !== 'object' || seen.has(e)) return false;
    seen.add(e);
    const record = e as { apiCode?: number; errors?: unknown[]; cause?: unknown };
    return record.apiCode === code || (record.errors ?? []).some(visit) || visit(record.cause);
  };
  return visit(error);
}

/** Unknown topic or partition (3) becomes UNKNOWN_TOPIC; network failures LOG_UNAVAILABLE. */
function wrap(error: unknown, action: string, topic?: string): TickflowError {
  if (error instanceof TickflowError) return error;
  const message = (error as Error)?.message ?? String(error);
  if (topic && (hasKafkaCode(error, 3) || /unknown topic/i.test(message))) {
    return new TickflowError('UNKNOWN_TOPIC', `topic ${topic} does not exist (create it first)`, { topic }, { cause: error });
  }
  const network = /ECONNREFUSED|ETIMEDOUT|ENOTFOUND|ECONNRESET|Network|connect|timed out/i.test(message + JSON.stringify((error as { errors?: unknown })?.errors?.toString?.() ?? ''));
  return new TickflowError(network ? 'LOG_UNAVAILABLE' : 'LOG_ERROR', `${action}: ${message}`, {}, { cause: error });
}
