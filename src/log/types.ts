/**
 * What pipelines need from a log (Kafka, or the embedded log: on disk under --data-dir, or in
 * memory for tests). Every adapter passes one contract suite (test/log/contract.ts), so a
 * pipeline cannot tell them apart.
 *
 * Offsets are bigint (Kafka's int64). An "end offset" is the offset the next record will
 * get (the high watermark); a range [from, to) is half-open.
 */

export interface LogRecord {
  readonly topic: string;
  readonly partition: number;
  readonly offset: bigint;
  readonly timestamp: bigint;
  readonly key: Buffer | null;
  readonly value: Buffer | null;
  readonly headers: ReadonlyArray<readonly [string, Buffer]>;
}

export interface RecordToProduce {
  key?: Buffer | string | null;
  value: Buffer | string | null;
  headers?: Record<string, Buffer | string>;
  /** Explicit partition; otherwise by key (Java-compatible murmur2), else spread. */
  partition?: number;
  /** Event time in ms; defaults to now. */
  timestamp?: bigint;
}

export interface TopicSpec {
  name: string;
  partitions?: number;
  /** Default min(3, brokers in the cluster). The embedded log ignores it. */
  replicationFactor?: number;
  /** Default one less than the replication factor, at least 1. The embedded log ignores it. */
  minInsyncReplicas?: number;
  /** Topic configs (e.g. retention.ms). The embedded log ignores them. */
  configs?: Record<string, string>;
}

export interface PartitionOffsets {
  partition: number;
  earliest: bigint;
  latest: bigint;
}

export interface TopicPartition {
  topic: string;
  partition: number;
}

export interface TopicPartitionOffset extends TopicPartition {
  /** The next offset to read. */
  offset: bigint;
}

/** An offset to commit, with the short text Kafka keeps next to it (offset commit metadata). */
export interface OffsetToCommit extends TopicPartitionOffset {
  metadata?: string;
}

/** A group's committed offset of one partition, with the metadata committed with it (null: none). */
export interface CommittedOffset {
  offset: bigint;
  metadata: string | null;
}

/**
 * Who a consumer-group member is in one generation of the group: a transaction's offsets
 * carry it (KIP-447), so the coordinator refuses them once the group has moved on.
 */
export interface GroupMember {
  generationId: number;
  memberId: string;
  /** Static membership (group.instance.id); null for a dynamic member. */
  groupInstanceId: string | null;
}

export interface Producer {
  /** Resolves once every record is acknowledged by all in-sync replicas (acks=all, idempotent). */
  send(topic: string, records: readonly RecordToProduce[]): Promise<void>;
  close(): Promise<void>;
}

/**
 * A producer whose sends form Kafka transactions: what is sent between two commits becomes
 * visible to read_committed readers together, with the consumed offsets committed in the
 * same transaction, or never.
 */
export interface TransactionalProducer extends Producer {
  readonly transactionalId: string;
  /**
   * Takes the transactional id over (InitProducerId): a new epoch fences every older
   * producer of the id, whose open transaction is aborted (one prepared to commit completes).
   */
  init(): Promise<void>;
  /**
   * Commits what was sent since the last commit or abort, with these offsets of `group`.
   * With `member`, the group coordinator accepts the offsets only from that member in that
   * generation: a member the group has moved on from is refused (FENCED, `groupFenced`) and
   * must abort.
   */
  commit(offsets?: { group: string; offsets: readonly OffsetToCommit[]; member?: GroupMember | null }): Promise<void>;
  /** Aborts what was sent since the last commit; after a failure it takes a new epoch. */
  abort(): Promise<void>;
}

/** A Kafka transaction open now (monitoring). */
export interface OpenTransaction {
  transactionalId: string;
  /** Ongoing, PrepareCommit or PrepareAbort. */
  state: string;
  producerId: bigint;
  producerEpoch: number;
  /** When its first partition was added (epoch ms, the coordinator's clock); null if not known. */
  startedAt: number | null;
  /** The coordinator aborts it once it is open this long. */
  timeoutMs: number;
  /** The partitions it wrote to (offsets committed in it show as partitions of __consumer_offsets). */
  partitions: TopicPartition[];
}

/** A partition's end for each isolation level: they differ while a transaction is open on it. */
export interface StableOffsets {
  partition: number;
  /** The end a read_committed reader sees: the first offset of the oldest transaction still open. */
  lastStable: bigint;
  /** The end a read_uncommitted reader sees. */
  highWatermark: bigint;
}

export interface TransactionOptions {
  /**
   * How long a transaction may stay open before the coordinator aborts it (default 60 s; the
   * broker refuses more than its transaction.max.timeout.ms, 15 minutes by default).
   */
  timeoutMs?: number;
}

export interface RangeReadOptions {
  topic: string;
  /** Partitions to read; default all. */
  partitions?: readonly number[];
  /** Start offset per partition; default the earliest. */
  from?: ReadonlyMap<number, bigint>;
  /** Exclusive end offset per partition; default the end offsets at the time of the call. */
  to?: ReadonlyMap<number, bigint>;
  signal?: AbortSignal;
}

/** Assignment given to a group member; `generation` grows with every rebalance. */
export interface Assignment {
  generation: number;
  partitions: TopicPartition[];
  /** Kafka: the member and generation this assignment belongs to (absent on the embedded log). */
  member?: GroupMember;
}

export interface SubscribeOptions {
  group: string;
  topics: readonly string[];
  /**
   * Called on every assignment (the first join and after each rebalance) before any record
   * of it is delivered. Return start offsets for some of the assigned partitions (for
   * example offsets a sink keeps in Postgres): those win; for the others the group's
   * committed offset is used, else `fallback`.
   */
  onAssign?: (assignment: Assignment) => Promise<readonly TopicPartitionOffset[] | void>;
  /** Where to start a partition with neither stored nor committed offset. Default earliest. */
  fallback?: 'earliest' | 'latest';
  sessionTimeoutMs?: number;
  heartbeatIntervalMs?: number;
  /**
   * Static membership (Kafka's group.instance.id): a member that comes back under the same
   * id within the session timeout (a restart after a crash) gets its partitions back without
   * a rebalance; closing does not leave the group, so a restart finds them waiting. Unique
   * within the group. Ignored by the embedded log (one member).
   */
  groupInstanceId?: string;
  /** Ends the iteration when aborted. */
  signal?: AbortSignal;
}

export interface RecordBatch {
  /** The assignment generation the batch was fetched under. */
  readonly generation: number;
  readonly records: readonly LogRecord[];
  /**
   * Where reading each fetched partition goes on after this batch: every record below it has
   * been delivered. On Kafka it lies past transaction markers and records of aborted
   * transactions, which take offsets but give no record to a read_committed reader; a batch
   * may then hold no record at all. Absent on logs without such offsets.
   */
  readonly positions?: readonly TopicPartitionOffset[];
}

export interface GroupConsumer extends AsyncIterable<RecordBatch> {
  /** The current assignment (empty before the first join). */
  assignment(): Assignment;
  /** Commits next-offsets to the group (for consumers that keep offsets in the log). */
  commit(offsets: readonly TopicPartitionOffset[]): Promise<void>;
  /**
   * Assigned partitions whose last fetch failed (a lost leader, no leader elected yet):
   * their records may be waiting, so they are not idle. A partition leaves the list with
   * its next successful fetch.
   */
  unreachable(): readonly TopicPartition[];
  /** Leaves the group; iteration ends. */
  close(): Promise<void>;
}

export interface Log {
  /** `memory`: the embedded log, whether its storage is memory or disk. */
  readonly kind: 'kafka' | 'memory';
  readonly description: string;
  /** Creates the topics that do not exist yet; existing ones are left as they are. */
  createTopics(specs: readonly TopicSpec[]): Promise<void>;
  deleteTopics(names: readonly string[]): Promise<void>;
  listTopics(): Promise<string[]>;
  /** Earliest and end offsets of every partition, ordered by partition. */
  offsets(topic: string): Promise<PartitionOffsets[]>;
  /** Consumer groups the log knows (for monitoring). */
  groups(): Promise<string[]>;
  /** The group's committed next-offsets for a topic (absent partitions have none). */
  committed(group: string, topic: string): Promise<Map<number, bigint>>;
  /** The same with the metadata committed next to each offset (Kafka). */
  committedWithMetadata?(group: string, topic: string): Promise<Map<number, CommittedOffset>>;
  producer(): Producer;
  /** A transactional producer (Kafka only; the embedded log has no transactions). */
  transactionalProducer?(transactionalId: string, options?: TransactionOptions): TransactionalProducer;
  /** The transactions open on the cluster (Kafka only: monitoring). */
  openTransactions?(): Promise<OpenTransaction[]>;
  /** Per partition, the last stable offset and the high watermark (Kafka only: monitoring). */
  stableOffsets?(topic: string): Promise<StableOffsets[]>;
  /** Reads a fixed offset range in batches and ends there: for batch jobs. */
  readRange(options: RangeReadOptions): AsyncIterable<LogRecord[]>;
  /** Joins a consumer group and yields batches of the assigned partitions until closed. */
  subscribe(options: SubscribeOptions): GroupConsumer;
  close(): Promise<void>;
}

export interface PartitionLag extends PartitionOffsets {
  committed: bigint | null;
  lag: bigint;
}

/** The record's value as UTF-8 text, without an intermediate Buffer view when the adapter can. */
export function valueText(record: LogRecord): string | null {
  const fast = (record as { valueText?: () => string | null }).valueText;
  return fast ? fast.call(record) : record.value === null ? null : record.value.toString('utf8');
}

/** A value as a byte range of a buffer the adapter already holds (no copy, no view object). */
export interface ValueRange {
  data: Buffer;
  start: number;
  end: number;
}

/** Fills `out` with the record's value bytes; false when the value is null. */
export function valueRange(record: LogRecord, out: ValueRange): boolean {
  const fast = (record as { valueRange?: (out: ValueRange) => boolean }).valueRange;
  if (fast) return fast.call(record, out);
  const value = record.value;
  if (value === null) return false;
  out.data = value;
  out.start = 0;
  out.end = value.length;
  return true;
}
