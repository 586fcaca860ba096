/**
 * tickflow's public API: `import { runStreamTask, KafkaLog, openDatabase } from 'tickflow'`.
 *
 * Write a Processor (only your logic), hand it to `runStreamTask` with a Log and a commit
 * strategy (by default a Database: rows + state + offsets in one PostgreSQL transaction,
 * fenced; or offsets to the Kafka consumer group after every output is acknowledged; or
 * offsets derived from what was emitted), and it runs with the runtime's guarantees:
 * retries, dead letters, accounting, metrics, shutdown (docs/runtime.md, examples/vwap.ts).
 *
 * Importing this module starts nothing (no connection, timer or server) and loads no
 * HTTP stack; the command line (`src/cli`) and the API server (`src/http`) are not part
 * of it.
 */

// The runtime.
export { runStreamTask } from './runtime/stream-task.ts';
export type { StreamTaskOptions, StreamTaskReport, TaskLogger } from './runtime/stream-task.ts';
export type { EndContext, IdleContext, PartitionClaim, ProcessContext, Processor, QuietPartition, RejectOutcome } from './runtime/processor.ts';
// Commit strategies: exactly once into PostgreSQL, at least once to Kafka, or each output once.
export { kafkaGroupAfterAck, kafkaTransaction, outputDerived, pgTransaction } from './runtime/commit-strategy.ts';
export type { CommitStrategy } from './runtime/commit-strategy.ts';

// Dead letters: one format for every pipeline (docs/dead-letters.md).
export { DEFAULT_MAX_RECORD_BYTES, deadLetter, tooLarge, tooLargeRejection } from './runtime/dead-letters.ts';
export type { DeadLetterReference, Rejection } from './runtime/dead-letters.ts';

// The log: Kafka, or the embedded in-process log with the same semantics.
export { KafkaLog } from './log/kafka.ts';
export type { KafkaLogOptions } from './log/kafka.ts';
export { MemoryLog } from './log/memory.ts';
export { DiskLog } from './log/disk.ts';
export { valueText } from './log/types.ts';
export type {
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
  TransactionalProducer,
} from './log/types.ts';

// The database: PostgreSQL, or embedded PGlite; `openDatabase` applies the migrations.
export { openDatabase } from './db/open.ts';
export type { OpenDatabaseOptions } from './db/open.ts';
export { migrate } from './db/migrations.ts';
export type { Migration } from './db/migrations.ts';
export type { Database, DbLogger, Queryable, QueryResult } from './db/types.ts';

// The fault policy (`--retry-for`) and the reconciliation `tickflow monitor` prints.
export { configureRetries, withRetries } from './observability/retry.ts';
export type { Dependency, RetryLogger, RetryOptions, RetrySettings } from './observability/retry.ts';
export { collectSnapshot } from './observability/reconciliation.ts';
export type { LateView, MonitorOptions, MonitorSnapshot, Problem } from './observability/reconciliation.ts';
export { SideTopicReader } from './observability/side-topic-shares.ts';
export type { SideTopicOptions } from './observability/side-topic-shares.ts';

// Core operators: pure, no I/O, time passed in.
export { TumblingWindows, Watermark, WindowAggregator } from './core/window.ts';
export type { ClosedWindow, Window, WindowAggregatorOptions } from './core/window.ts';
export { RunningStats, ValueCounts } from './core/stats.ts';
export { Ema } from './core/ema.ts';
export type { EmaSnapshot } from './core/ema.ts';
export { MovingVolatility } from './core/volatility.ts';
export type { VolatilitySnapshot } from './core/volatility.ts';
export { ExactDistinct, HyperLogLog } from './core/hyperloglog.ts';
export type { DistinctCounter } from './core/hyperloglog.ts';
// The price messages' rules (docs/prices.md): `ts` layouts (or `{ strictTs: true }`), symbols.
export { isSymbol, parseTs } from './core/price-message.ts';
export type { PriceRules } from './core/price-message.ts';
export { ErrorCodes, TickflowError, isTickflowError } from './core/errors.ts';
export type { ErrorCode } from './core/errors.ts';
