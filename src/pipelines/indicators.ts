/**
 * `indicators`: prices → per-symbol EMA and moving volatility → the `volatility` topic.
 *
 * Source: a consumer-group member on the prices topic whose position and per-symbol
 * state live in Postgres (per input partition). Operators: decode, then one
 * SymbolIndicators per (partition, symbol), in arrival order. Sinks: the output topic
 * (keyed by symbol) and a dead-letter topic for malformed prices.
 *
 * Per batch: publish the output (awaiting acks), then commit the new states and the
 * next offsets in one transaction. A crash between the two replays the batch from the
 * committed state: the same records again with the same values (at-least-once output,
 * deterministic values; `seq`, the symbol's price count, tells a replayed record).
 */
import type { Logger } from 'pino';
import { SymbolIndicators } from '../core/indicators.ts';
import { DEFAULT_PRICE_FIELDS, decodePriceMessage, encodeIndicatorMessage } from '../core/price-message.ts';
import type { PriceFields } from '../core/price-message.ts';
import { saveOffsets } from '../db/offset-store.ts';
import { BatchCounts, addCounts } from '../db/pipeline-counts.ts';
import type { PartitionCounts } from '../db/pipeline-counts.ts';
import type { Database } from '../db/types.ts';
import type { Log, LogRecord, Producer, RecordToProduce } from '../log/types.ts';
import { metrics } from '../observability/metrics.ts';
import { loadIndicatorStates, saveIndicatorStates } from './indicator-state-store.ts';
import type { KeptState } from './indicator-state-store.ts';
import { runStoredOffsetConsumer } from './stored-offset-consumer.ts';
import type { Claims, StoredOffsetSink } from './stored-offset-consumer.ts';

export interface IndicatorsOptions {
  log: Log;
  db: Database;
  logger: Logger;
  signal: AbortSignal;
  inputTopic: string;
  outputTopic: string;
  deadLetterTopic: string;
  group: string;
  window: number;
  fields?: PriceFields;
  /** Partitions of topics this pipeline has to create (input if missing, output, dead letters). */
  partitions?: number;
  /** Return once the input's end offsets at start are processed (single member). */
  stopAtEnd?: boolean;
  /** Longest pause before rejoining after an outage. */
  maxBackoffMs?: number;
}

export interface IndicatorsReport {
  read: number;
  published: number;
  deadLettered: number;
}

const PIPELINE = 'indicators';
/** Records published and committed together. */
const SLICE = 50_000;

export async function runIndicators(options: IndicatorsOptions): Promise<IndicatorsReport> {
  const { log, inputTopic, outputTopic, deadLetterTopic } = options;
  const partitions = options.partitions ?? 3;
  await log.createTopics([{ name: inputTopic, partitions }]);
  const inputPartitions = (await log.offsets(inputTopic)).length;
  // Same partition count as the input: one symbol's outputs stay on one partition, in order.
  await log.createTopics([{ name: outputTopic, partitions: inputPartitions }, { name: deadLetterTopic, partitions: 1 }]);
  const producer = log.producer();
  const sink = new IndicatorsSink(options, producer);
  try {
    await runStoredOffsetConsumer({
      log,
      db: options.db,
      group: options.group,
      topics: [inputTopic],
      sink,
      logger: options.logger,
      signal: options.signal,
      stopAtEnd: options.stopAtEnd,
      maxBackoffMs: options.maxBackoffMs,
    });
  } finally {
    await producer.close();
  }
  return sink.report;
}

interface Slice {
  read: number;
  output: RecordToProduce[];
  deadLetters: RecordToProduce[];
  /** What happened to each record, per partition, committed with the offsets. */
  counts: ReadonlyMap<number, PartitionCounts>;
  kept: KeptState[];
  next: Map<number, bigint>;
}

class IndicatorsSink implements StoredOffsetSink {
  readonly report: IndicatorsReport = { read: 0, published: 0, deadLettered: 0 };
  readonly #options: IndicatorsOptions;
  readonly #producer: Producer;
  readonly #fields: PriceFields;
  /** partition → symbol → indicators; only the assigned partitions. */
  #states = new Map<number, Map<string, SymbolIndicators>>();

  constructor(options: IndicatorsOptions, producer: Producer) {
    this.#options = options;
    this.#producer = producer;
    this.#fields = options.fields ?? DEFAULT_PRICE_FIELDS;
  }

  async assigned(claims: Claims): Promise<void> {
    const { db, group, inputTopic, window } = this.#options;
    const claim = claims.topics.get(inputTopic);
    const states = new Map<number, Map<string, SymbolIndicators>>();
    for (const partition of claim?.partitions ?? []) states.set(partition, new Map());
    for (const kept of await loadIndicatorStates(db, group, inputTopic, claim?.partitions ?? [])) {
      states.get(kept.partition)?.set(kept.symbol, new SymbolIndicators(window, kept.snapshot));
    }
    this.#states = states;
  }

  /**
   * Slices bound the output held in memory (a fetch can hold hundreds of thousands of
   * records). Two slices overlap: slice k + 1 is computed and its publishing started while
   * slice k waits for acknowledgements and its commit; commits stay in order, each after
   * its own outputs are acknowledged.
   */
  async process(records: readonly LogRecord[], claims: Claims): Promise<void> {
    const stopTimer = metrics.batchSeconds.startTimer({ pipeline: PIPELINE });
    let previous: Promise<void> | null = null;
    for (let start = 0; start < records.length; start += SLICE) {
      const slice = this.#compute(records.slice(start, start + SLICE));
      const published = this.#publish(slice);
      published.catch(() => undefined); // awaited in `committed`, unless an earlier commit failed first
      const before: Promise<void> | null = previous;
      const committed = (async () => {
        if (before) await before;
        await published;
        await this.#commit(slice, claims);
      })();
      committed.catch(() => undefined); // awaited below; a failure must not go unhandled meanwhile
      if (before) await before;
      previous = committed;
    }
    if (previous) await previous;
    stopTimer();
  }

  /** Decodes and updates the state; synchronous, so slices are computed strictly in order. */
  #compute(records: readonly LogRecord[]): Slice {
    const { window } = this.#options;
    const output: RecordToProduce[] = [];
    const deadLetters: RecordToProduce[] = [];
    const changed = new Map<string, { partition: number; symbol: string; indicators: SymbolIndicators }>();
    const next = new Map<number, bigint>();
    const counts = new BatchCounts();
    for (const record of records) {
      next.set(record.partition, record.offset + 1n);
      counts.observe(record.partition, record.offset);
      const decoded = decodePriceMessage(record.value === null ? null : record.value.toString('utf8'), this.#fields);
      if (!decoded.ok) {
        counts.count(record.partition, record.offset, 'invalid');
        metrics.invalid.inc({ pipeline: PIPELINE, reason: decoded.reason });
        deadLetters.push({
          key: record.key,
          value: record.value,
          headers: { reason: decoded.reason, detail: decoded.detail, source: `${record.topic}/${record.partition}/${record.offset}` },
        });
        continue;
      }
      const { symbol, price, ts } = decoded.value;
      const symbols = this.#states.get(record.partition);
      if (!symbols) throw new Error(`partition ${record.partition} of ${record.topic} is not assigned`); // the consumer checks generations first
      let indicators = symbols.get(symbol);
      if (!indicators) symbols.set(symbol, (indicators = new SymbolIndicators(window)));
      const values = indicators.update(price);
      counts.count(record.partition, record.offset, 'accepted');
      output.push({ key: symbol, value: encodeIndicatorMessage({ symbol, ts, price, ...values }) });
      changed.set(`${record.partition}\u0000${symbol}`, { partition: record.partition, symbol, indicators });
    }
    // Snapshots now: the next slice moves the same operators on.
    const kept = [...changed.values()].map(({ partition, symbol, indicators }) => ({ partition, symbol, snapshot: indicators.snapshot() }));
    return { read: records.length, output, deadLetters, kept, next, counts: counts.partitions };
  }

  async #publish(slice: Slice): Promise<void> {
    const { outputTopic, deadLetterTopic } = this.#options;
    await Promise.all([
      slice.output.length > 0 ? this.#producer.send(outputTopic, slice.output) : undefined,
      slice.deadLetters.length > 0 ? this.#producer.send(deadLetterTopic, slice.deadLetters) : undefined,
    ]);
  }

  async #commit(slice: Slice, claims: Claims): Promise<void> {
    const { inputTopic, outputTopic, deadLetterTopic, group } = this.#options;
    const generation = claims.topics.get(inputTopic)!.generation;
    await this.#options.db.transaction(async (tx) => {
      await saveIndicatorStates(tx, group, inputTopic, slice.kept);
      await saveOffsets(tx, group, inputTopic, slice.next, generation);
      await addCounts(tx, group, inputTopic, slice.counts);
    });
    this.report.read += slice.read;
    this.report.published += slice.output.length;
    this.report.deadLettered += slice.deadLetters.length;
    metrics.recordsIn.inc({ pipeline: PIPELINE, topic: inputTopic }, slice.read);
    if (slice.output.length > 0) metrics.recordsOut.inc({ pipeline: PIPELINE, sink: outputTopic }, slice.output.length);
    if (slice.deadLetters.length > 0) metrics.deadLettered.inc({ pipeline: PIPELINE, topic: deadLetterTopic }, slice.deadLetters.length);
  }
}
