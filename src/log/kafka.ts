import { Admin, Consumer, ListOffsetTimestamps, Producer as KafkaProducer, ProduceAcks } from '@platformatic/kafka';
import type { ConnectionOptions, FetchIsolationLevelValue, ListedOffsetsTopic } from '@platformatic/kafka';
import { TickflowError } from '../core/errors.ts';
import { withRetries } from '../observability/retry.ts';
import { DEFAULT_FETCH, fetchOnce, isolationCode } from './kafka-fetch.ts';
import type { FetchClient, FetchObserver, FetchOutcome, FetchPosition, FetchTuning, IsolationLevel, KafkaClassifier } from './kafka-fetch.ts';
import { classifyKafkaError, topicListedSince, topicMayBeMissing, unknownTopic } from './kafka-errors.ts';
import type { KafkaErrorContext, KafkaSecurityContext } from './kafka-errors.ts';
import { FastProduce } from './kafka-produce.ts';
import { TransactionCoordinator } from './kafka-transaction.ts';
import { groupMember } from './kafka-group.ts';
import { listOpenTransactions } from './kafka-open-transactions.ts';
import type { CommittedOffset, GroupConsumer, Log, LogRecord, PartitionOffsets, Producer, RangeReadOptions, SubscribeOptions, TopicSpec, TransactionalProducer, TransactionOptions, OpenTransaction, StableOffsets } from './types.ts';

export interface KafkaLogOptions {
  brokers: readonly string[];
  clientId?: string;
  /** TLS to the brokers (true for system CAs, or node tls options). */
  tls?: ConnectionOptions['tls'] | true;
  sasl?: { mechanism: 'PLAIN' | 'SCRAM-SHA-256' | 'SCRAM-SHA-512'; username: string; password: string };
  fetch?: Partial<FetchTuning>;
  /** Upper bound of one produce request; the broker's default message.max.bytes is 1 MiB. */
  maxRequestBytes?: number;
  /**
   * How reads treat transactions (default read_committed): fetches skip aborted
   * transactions and end offsets are the last stable offsets (`offsets().latest`).
   */
  isolationLevel?: IsolationLevel;
}

/** Replicas of a topic tickflow creates, when its spec does not say: min(this, brokers). */
const DEFAULT_REPLICAS = 3;
/** How long a produce request may wait for all in-sync replicas; the socket waits longer. */
const PRODUCE_TIMEOUT_MS = 30_000;
const REQUEST_TIMEOUT_MS = 45_000;

/**
 * The Kafka adapter, on @platformatic/kafka. Only this folder imports the Kafka library.
 *
 * Every call rides through faults (a broker lost, a leader election, a coordinator move,
 * stale metadata): errors are classified once (kafka-errors.ts), and the retriable ones are
 * retried under the one fault policy (`withRetries`, until --retry-for) with the cached
 * metadata dropped before each retry.
 */
export class KafkaLog implements Log {
  readonly kind = 'kafka' as const;
  readonly description: string;
  readonly #options: KafkaLogOptions;
  readonly #fetch: FetchTuning;
  #admin: Admin | null = null;
  #reader: Admin | null = null;
  #legacyReader: Consumer | null = null;
  #closables = new Set<{ close(): Promise<void> }>();
  /** Set by close(): from then on no client is created (one made later would never be closed). */
  #closed = false;
  #closing: Promise<void> | null = null;
  readonly #classify: KafkaClassifier = (error, context) => this.#classifyError(error, context);

  constructor(options: KafkaLogOptions) {
    if (options.brokers.length === 0) throw new TickflowError('BAD_CONFIG', 'no Kafka brokers given');
    this.#options = options;
    this.#fetch = { ...DEFAULT_FETCH, ...options.fetch, ...(options.isolationLevel ? { isolationLevel: options.isolationLevel } : {}) };
    this.description = `kafka ${options.brokers.join(',')}`;
  }

  #base(suffix: string) {
    const { tls, sasl } = this.#options;
    return {
      clientId: `${this.#options.clientId ?? 'tickflow'}-${suffix}`,
      bootstrapBrokers: [...this.#options.brokers],
      ...(tls ? { tls: tls === true ? {} : tls } : {}),
      ...(sasl ? { sasl } : {}),
      // The library's own short retries absorb a blip; withRetries rides out the rest.
      retries: 3,
      retryDelay: 250,
      connectTimeout: 5000,
      requestTimeout: REQUEST_TIMEOUT_MS,
      metadataMaxAge: 5000,
    };
  }

  #security(): KafkaSecurityContext {
    const { tls, sasl } = this.#options;
    return { tls: Boolean(tls), brokers: this.#options.brokers, ...(sasl ? { user: sasl.username, mechanism: sasl.mechanism } : {}) };
  }

  /**
   * Clients are made on first use, also by a call that was under way when close() ran (an
   * error being classified asks for the topic list, a retry reads the offsets again): once
   * closed, the log refuses, so that no client outlives it with an open connection.
   */
  #open(): void {
    if (this.#closed) throw new TickflowError('LOG_ERROR', `${this.description} is closed`);
  }

  #adminClient(): Admin {
    this.#open();
    this.#admin ??= quiet(new Admin(this.#base('admin')));
    return this.#admin;
  }

  /**
   * The client of metadata, offsets and group-less fetches. An admin client: a consumer would
   * compile its group options' validator when made (~70 ms of a short command's start-up).
   */
  #readerClient(): Admin {
    this.#open();
    this.#reader ??= quiet(new Admin(this.#base('reader')));
    return this.#reader;
  }

  /** A consumer for group-less fetches from brokers older than Kafka 3.9 (no Fetch v17); it never joins a group. */
  #legacyReaderClient(): Consumer {
    this.#open();
    this.#legacyReader ??= quiet(new Consumer({ ...this.#base('reader'), groupId: `tickflow-reader-${process.pid}` }));
    return this.#legacyReader;
  }

  /** One offset per partition of `topic` at `timestamp` (EARLIEST or LATEST), by partition. */
  async #listOffsets(topic: string, timestamp: bigint, isolationLevel: number): Promise<bigint[]> {
    const reader = this.#readerClient();
    const metadata = await reader.metadata({ topics: [topic] });
    const count = metadata.topics.get(topic)?.partitionsCount ?? 0;
    const partitions = Array.from({ length: count }, (_, partitionIndex) => ({ partitionIndex, timestamp }));
    const listed: ListedOffsetsTopic[] = await reader.listOffsets({ topics: [{ name: topic, partitions }], isolationLevel: isolationLevel as FetchIsolationLevelValue });
    const offsets = new Array<bigint>(count);
    for (const { partitionIndex, offset } of listed.find((t) => t.name === topic)?.partitions ?? []) offsets[partitionIndex] = offset;
    return offsets;
  }

  /** Drops cached metadata (leaders, brokers, controller) so the next call asks the cluster. */
  #refreshMetadata(): void {
    this.#admin?.clearMetadata();
    this.#reader?.clearMetadata();
    this.#legacyReader?.clearMetadata();
  }

  /**
   * Runs one Kafka call under the fault policy: its errors classified, the retriable ones
   * retried after a metadata refresh until --retry-for.
   */
  #call<T>(action: string, operation: () => Promise<T>, options: { topic?: string; signal?: AbortSignal } = {}): Promise<T> {
    const context: KafkaErrorContext = { action, ...(options.topic === undefined ? {} : { topic: options.topic }) };
    return withRetries(
      'kafka',
      action,
      async () => {
        try {
          return await operation();
        } catch (error) {
          throw await this.#classify(error, context);
        }
      },
      { ...(options.signal ? { signal: options.signal } : {}), beforeRetry: () => this.#refreshMetadata() },
    );
  }

  /**
   * Classifies an error; one that may mean a missing topic (a broker's UNKNOWN_TOPIC_OR_PARTITION,
   * which is also what a broker says right after a leader move) becomes UNKNOWN_TOPIC only when
   * fresh metadata confirms that the topic does not exist.
   */
  async #classifyError(error: unknown, context: KafkaErrorContext): Promise<TickflowError> {
    // A raw error code classified earlier (errorForCode) did not know who we are: say it again with it.
    const raw = error instanceof TickflowError && error.details.security !== undefined && error.cause !== undefined ? error.cause : error;
    const classified = classifyKafkaError(raw, { ...context, security: this.#security() });
    if (context.topic === undefined || !topicMayBeMissing(classified)) return classified;
    const exists = await this.#topicExists(context.topic);
    if (exists === false) return unknownTopic(context.topic, error);
    // Listed now: the answer was older than the topic; asking again finds it.
    return exists === true ? topicListedSince(classified) : classified;
  }

  /** Whether fresh metadata lists the topic; undefined when the cluster cannot be asked now. */
  async #topicExists(topic: string): Promise<boolean | undefined> {
    try {
      return (await this.#adminClient().listTopics()).includes(topic);
    } catch {
      return undefined;
    }
  }

  async createTopics(specs: readonly TopicSpec[]): Promise<void> {
    if (specs.length === 0) return;
    const existing = new Set(await this.listTopics());
    const missing = specs.filter((s) => !existing.has(s.name));
    if (missing.length === 0) return;
    const brokers = await this.#call('describe the cluster', async () => (await this.#readerClient().metadata({ topics: [], forceUpdate: true })).brokers.size);
    for (const spec of missing) {
      const { replicas, configs } = topicSettings(spec, brokers);
      await this.#call(
        `create topic ${spec.name}`,
        async () => {
          try {
            await this.#adminClient().createTopics({
              topics: [spec.name],
              partitions: spec.partitions ?? 1,
              replicas,
              configs: Object.entries(configs).map(([name, value]) => ({ name, value })),
            });
          } catch (error) {
            // Another process (or our own earlier attempt whose answer was lost) created it: that is what we wanted.
            if (classifyKafkaError(error, { action: 'create' }).details.kafkaCode !== 'TOPIC_ALREADY_EXISTS') throw error;
          }
        },
      );
    }
    await this.#awaitLeaders(missing.map((s) => s.name));
  }

  /** Topic creation is asynchronous on the controller: wait until every partition has a leader. */
  async #awaitLeaders(names: string[]): Promise<void> {
    await this.#call(`wait for leaders of ${names.join(', ')}`, async () => {
      const metadata = await this.#readerClient().metadata({ topics: names, forceUpdate: true });
      const ready = names.every((n) => metadata.topics.get(n)?.partitions.every((p) => p.leader >= 0));
      if (!ready) throw new TickflowError('LOG_UNAVAILABLE', `topics ${names.join(', ')} have no leaders yet`, { staleMetadata: true });
    });
  }

  async deleteTopics(names: readonly string[]): Promise<void> {
    const existing = new Set(await this.listTopics());
    const present = names.filter((n) => existing.has(n));
    if (present.length === 0) return;
    await this.#call('delete topics', async () => {
      try {
        await this.#adminClient().deleteTopics({ topics: present });
      } catch (error) {
        // Gone already (an earlier attempt whose answer was lost): done.
        if (classifyKafkaError(error, { action: 'delete' }).details.kafkaCode !== 'UNKNOWN_TOPIC_OR_PARTITION') throw error;
      }
    });
  }

  async listTopics(): Promise<string[]> {
    return this.#call('list topics', async () => (await this.#adminClient().listTopics()).sort());
  }

  async offsets(topic: string): Promise<PartitionOffsets[]> {
    return this.#call(
      `list offsets of ${topic}`,
      async () => {
        // read_committed: the latest offset is the last stable offset (below any open transaction).
        const isolationLevel = isolationCode(this.#fetch.isolationLevel);
        const [first, last] = await Promise.all([
          this.#listOffsets(topic, ListOffsetTimestamps.EARLIEST, isolationLevel),
          this.#listOffsets(topic, ListOffsetTimestamps.LATEST, isolationLevel),
        ]);
        return last.map((end, partition) => ({ partition, earliest: first[partition] ?? 0n, latest: end }));
      },
      { topic },
    );
  }

  async stableOffsets(topic: string): Promise<StableOffsets[]> {
    return this.#call(
      `list stable offsets of ${topic}`,
      async () => {
        const end = (level: IsolationLevel) => this.#listOffsets(topic, ListOffsetTimestamps.LATEST, isolationCode(level));
        const [lastStable, high] = await Promise.all([end('read_committed'), end('read_uncommitted')]);
        return high.map((highWatermark, partition) => ({ partition, lastStable: lastStable[partition] ?? highWatermark, highWatermark }));
      },
      { topic },
    );
  }

  async openTransactions(): Promise<OpenTransaction[]> {
    return this.#call('list open transactions', () => listOpenTransactions(this.#adminClient()));
  }

  async groups(): Promise<string[]> {
    return this.#call('list consumer groups', async () => [...(await this.#adminClient().listGroups()).keys()].sort());
  }

  async committed(group: string, topic: string): Promise<Map<number, bigint>> {
    return new Map([...(await this.committedWithMetadata(group, topic))].map(([p, c]) => [p, c.offset]));
  }

  async committedWithMetadata(group: string, topic: string): Promise<Map<number, CommittedOffset>> {
    const partitions = (await this.offsets(topic)).map((p) => p.partition);
    const answer = await this.#call(`list offsets of group ${group}`, () =>
      // requireStable: offsets a transaction is still committing are waited for (UNSTABLE_OFFSET_COMMIT, retried), never read stale.
      this.#adminClient().listConsumerGroupOffsets({ groups: [{ groupId: group, topics: [{ name: topic, partitionIndexes: partitions }] }], requireStable: true }),
    );
    const result = new Map<number, CommittedOffset>();
    for (const g of answer) {
      for (const t of g.topics) {
        for (const p of t.partitions) if (p.committedOffset >= 0n) result.set(p.partitionIndex, { offset: p.committedOffset, metadata: p.metadata || null });
      }
    }
    return result;
  }

  producer(): Producer {
    this.#open();
    const client = this.#producerClient();
    const fast = new FastProduce(client, this.#produceOptions());
    // Sends are serialised so that one producer keeps its records in order on every partition.
    const serial = serialised();
    const producer: Producer = {
      send: (topic, records) => serial.run(() => fast.send(topic, records)),
      close: async () => {
        await serial.idle();
        this.#closables.delete(producer);
        await client.close();
      },
    };
    this.#closables.add(producer);
    return producer;
  }

  /**
   * A transactional producer: tickflow's own batches (transactional bit, the coordinator's
   * producer id and epoch) and the coordinator calls of kafka-transaction.ts.
   */
  transactionalProducer(transactionalId: string, options: TransactionOptions = {}): TransactionalProducer {
    this.#open();
    const client = this.#producerClient();
    const coordinator = new TransactionCoordinator(client, transactionalId, this.#classify, options.timeoutMs);
    const fast = new FastProduce(client, { ...this.#produceOptions(), transaction: coordinator });
    const serial = serialised();
    const producer: TransactionalProducer = {
      transactionalId,
      init: () => serial.run(async () => {
        coordinator.reset();
        await coordinator.identity();
      }),
      send: (topic, records) => serial.run(() => fast.send(topic, records)),
      commit: (offsets) => serial.run(async () => {
        try {
          await coordinator.end(true, offsets ?? null);
        } catch (error) {
          coordinator.reset(); // outcome unknown: the next use takes a new epoch, which aborts it if still open
          throw error;
        }
      }),
      abort: () => serial.run(async () => {
        try {
          await coordinator.end(false);
        } catch {
          coordinator.reset();
        }
      }),
      close: async () => {
        await serial.idle();
        this.#closables.delete(producer);
        await client.close();
      },
    };
    this.#closables.add(producer);
    return producer;
  }

  /** The client provides connections, metadata and the producer id; batches are ours. */
  #producerClient(): KafkaProducer<Buffer, Buffer, Buffer, Buffer> {
    return quiet(
      new KafkaProducer<Buffer, Buffer, Buffer, Buffer>({
        ...this.#base('producer'),
        idempotent: true,
        acks: ProduceAcks.ALL,
        autocreateTopics: false,
      }),
    );
  }

  #produceOptions() {
    return { maxBatchBytes: this.#options.maxRequestBytes ?? 900_000, timeoutMs: PRODUCE_TIMEOUT_MS, classify: this.#classify };
  }

  async *readRange(options: RangeReadOptions): AsyncIterable<LogRecord[]> {
    const { from, to } = options;
    // Partitions listed, each with its start and end (a snapshot the caller took, as `stats`
    // does): nothing to look up. An empty topic then ends without another round trip.
    const given = options.partitions?.every((p) => from?.has(p) && to?.has(p)) ?? false;
    const offsets = given ? [] : await this.offsets(options.topic);
    const wanted = options.partitions ?? offsets.map((p) => p.partition);
    let positions: FetchPosition[] = wanted.map((partition) => {
      if (given) return { topic: options.topic, partition, next: from!.get(partition)!, end: to!.get(partition)! };
      const known = offsets[partition];
      if (!known) throw new TickflowError('LOG_ERROR', `topic ${options.topic} has no partition ${partition}`);
      return {
        topic: options.topic,
        partition,
        next: from?.get(partition) ?? known.earliest,
        end: to?.get(partition) ?? known.latest,
      };
    });
    const reader = this.#readerClient();
    // Ends the fetch still in flight (and its retries) when the caller stops early.
    const stop = new AbortController();
    const signal = options.signal ? AbortSignal.any([options.signal, stop.signal]) : stop.signal;
    const round = () => {
      const fetching = this.#fetchRound(reader, positions, `fetch ${options.topic}`, signal);
      fetching.catch(() => undefined); // awaited below; an early stop must not leave it unhandled
      return fetching;
    };
    positions = positions.filter((p) => p.next < p.end!);
    try {
      // Double-buffered: the next fetch is in flight while the caller handles this batch.
      let pending = positions.length > 0 ? round() : null;
      while (pending) {
        if (options.signal?.aborted) return;
        let outcome: FetchOutcome;
        try {
          outcome = await pending;
        } catch (error) {
          if (options.signal?.aborted) return; // stopped while waiting for Kafka: not a failure
          throw error;
        }
        if (outcome.outOfRange.length > 0) {
          const first = outcome.outOfRange.map((p) => `${p.partition}@${p.next}`).join(', ');
          throw new TickflowError('LOG_ERROR', `offsets out of range in ${options.topic}: ${first} (deleted by retention?)`);
        }
        positions = positions.filter((p) => p.next < p.end!);
        const fatal = outcome.failure && !outcome.failure.retriable ? outcome.failure : null;
        pending = positions.length > 0 && !fatal ? round() : null;
        if (outcome.records.length > 0) yield outcome.records;
        if (fatal) throw fatal;
      }
    } finally {
      stop.abort();
    }
  }

  /**
   * One fetch round under the fault policy. A round in which every partition failed is
   * retried (after a metadata refresh) until --retry-for; a round that delivered something
   * returns it, with the failure of the other partitions, which the next round retries from
   * the same positions. `observe` sees every attempt (null: none of the positions could be
   * fetched), so a group member knows which partitions are unreachable while it waits.
   */
  #fetchRound(client: FetchClient, positions: FetchPosition[], action: string, signal?: AbortSignal, observe?: FetchObserver): Promise<FetchOutcome> {
    return withRetries(
      'kafka',
      action,
      async () => {
        let outcome: FetchOutcome;
        try {
          outcome = await fetchOnce(client, positions, this.#fetch, this.#classify, () => this.#legacyReaderClient());
        } catch (error) {
          observe?.(positions, null);
          throw error;
        }
        observe?.(positions, outcome);
        if (outcome.failure) {
          client.clearMetadata();
          if (outcome.records.length === 0 && outcome.outOfRange.length === 0) throw outcome.failure;
        }
        return outcome;
      },
      { ...(signal ? { signal } : {}), beforeRetry: () => client.clearMetadata() },
    );
  }

  subscribe(options: SubscribeOptions): GroupConsumer {
    this.#open();
    const member = groupMember(options, {
      clientOptions: this.#base(`group-${options.group}`),
      fetchRound: (client, positions, action, signal, observe) => this.#fetchRound(client, positions, action, signal, observe),
      classify: (error, action, topics) => this.#classifyGroupError(error, action, topics),
      onClose: () => this.#closables.delete(member),
    });
    this.#closables.add(member);
    return member;
  }

  /** A group call's error; a subscribed topic that fresh metadata does not list makes it UNKNOWN_TOPIC. */
  async #classifyGroupError(error: unknown, action: string, topics: readonly string[]): Promise<TickflowError> {
    const classified = classifyKafkaError(error, { action, security: this.#security() });
    if (classified.retriable && !classified.details.staleMetadata) return classified;
    let listed = topics.length > 0;
    for (const topic of topics) {
      const exists = await this.#topicExists(topic);
      if (exists === false) return unknownTopic(topic, error);
      if (exists !== true) listed = false;
    }
    return listed ? topicListedSince(classified) : classified;
  }

  /**
   * Closes every producer, group member and client the log made. A call still under way
   * makes no new client: its next attempt, or the classification of its error, finds the
   * log closed. Closing twice waits for the same close.
   */
  close(): Promise<void> {
    this.#closed = true;
    this.#closing ??= (async () => {
      await Promise.all([...this.#closables].map((c) => c.close().catch(() => undefined)));
      await Promise.all([this.#admin?.close(), this.#reader?.close(), this.#legacyReader?.close()].map((p) => p?.catch(() => undefined)));
    })();
    return this.#closing;
  }
}

/** Runs operations one at a time, in call order; a failure does not stop the ones after it. */
function serialised(): { run<T>(operation: () => Promise<T>): Promise<T>; idle(): Promise<unknown> } {
  let tail: Promise<unknown> = Promise.resolve();
  return {
    run<T>(operation: () => Promise<T>): Promise<T> {
      const result = tail.then(operation);
      tail = result.catch(() => undefined);
      return result;
    },
    idle: () => tail,
  };
}

/**
 * Replicas and configs of a topic to create: min(3, brokers) replicas and
 * min.insync.replicas one less (at least 1), unless the spec says otherwise.
 */
export function topicSettings(spec: TopicSpec, brokers: number): { replicas: number; configs: Record<string, string> } {
  const replicas = spec.replicationFactor ?? Math.max(1, Math.min(DEFAULT_REPLICAS, brokers));
  if (!Number.isInteger(replicas) || replicas < 1) {
    throw new TickflowError('BAD_CONFIG', `topic ${spec.name}: replication factor must be a positive integer, got ${replicas}`, { topic: spec.name, setting: 'replicationFactor' });
  }
  if (brokers > 0 && replicas > brokers) {
    throw new TickflowError('BAD_CONFIG', `topic ${spec.name}: replication factor ${replicas} exceeds the ${brokers} broker(s) of the cluster`, { topic: spec.name, setting: 'replicationFactor' });
  }
  const explicitMinIsr = spec.minInsyncReplicas ?? spec.configs?.['min.insync.replicas'];
  const minIsr = explicitMinIsr === undefined ? Math.max(1, replicas - 1) : Number(explicitMinIsr);
  if (!Number.isInteger(minIsr) || minIsr < 1 || minIsr > replicas) {
    throw new TickflowError('BAD_CONFIG', `topic ${spec.name}: min.insync.replicas must be between 1 and the replication factor ${replicas}, got ${explicitMinIsr}`, { topic: spec.name, setting: 'minInsyncReplicas' });
  }
  return { replicas, configs: { ...spec.configs, 'min.insync.replicas': String(minIsr) } };
}

/**
 * The library reports errors of calls as rejections; it also emits 'error' (a group rejoin
 * that gave up). An EventEmitter without a listener would crash the process on it.
 */
function quiet<T extends { on(event: 'error', listener: (error: Error) => void): unknown }>(client: T): T {
  client.on('error', () => undefined);
  return client;
}
