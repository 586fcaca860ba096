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
import type { PriceFields, PriceRules } from '../core/price-message.ts';
import { loadIndicatorStates, saveIndicatorStates } from '../db/indicator-state-store.ts';
import type { KeptState } from '../db/indicator-state-store.ts';
import type { Database, Queryable } from '../db/types.ts';
import type { Log, LogRecord } from '../log/types.ts';
import type { PartitionClaim, ProcessContext, Processor } from '../runtime/processor.ts';
import { runStreamTask } from '../runtime/stream-task.ts';

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
  /** `--strict-ts`: only `yyyy-mm-dd hh:mm:ss[.fff|.ffffff]` UTC strings for `ts`. */
  strictTs?: boolean;
  /** Partitions of topics this pipeline has to create (input if missing, output, dead letters). */
  partitions?: number;
  /** Return once the input's end offsets at start are processed (single member). */
  stopAtEnd?: boolean;
  maxRecordBytes?: number;
}

export interface IndicatorsReport {
  read: number;
  published: number;
  deadLettered: number;
}

export async function runIndicators(options: IndicatorsOptions): Promise<IndicatorsReport> {
  const { log, inputTopic, outputTopic, deadLetterTopic } = options;
  const partitions = options.partitions ?? 3;
  await log.createTopics([{ name: inputTopic, partitions }]);
  const inputPartitions = (await log.offsets(inputTopic)).length;
  // Same partition count as the input: one symbol's outputs stay on one partition, in order.
  await log.createTopics([{ name: outputTopic, partitions: inputPartitions }, { name: deadLetterTopic, partitions: 1 }]);
  const report = await runStreamTask({
    pipeline: 'indicators',
    log,
    db: options.db,
    group: options.group,
    topics: [inputTopic],
    processor: new IndicatorsProcessor(options),
    deadLetterTopic,
    logger: options.logger,
    signal: options.signal,
    untilEnd: options.stopAtEnd,
    maxRecordBytes: options.maxRecordBytes,
  });
  return { read: report.read, published: report.published, deadLettered: report.deadLettered };
}

/**
 * Per (input partition, symbol) one SymbolIndicators, in arrival order. Its checkpoint is
 * the snapshots of the symbols that changed, taken with the offsets of the same records.
 */
class IndicatorsProcessor implements Processor<KeptState[]> {
  readonly #options: IndicatorsOptions;
  readonly #fields: PriceFields;
  readonly #rules: PriceRules;
  /** partition → symbol → indicators; only the assigned partitions. */
  #states = new Map<number, Map<string, SymbolIndicators>>();
  #changed = new Map<string, { partition: number; symbol: string; indicators: SymbolIndicators }>();

  constructor(options: IndicatorsOptions) {
    this.#options = options;
    this.#fields = options.fields ?? DEFAULT_PRICE_FIELDS;
    this.#rules = { strictTs: options.strictTs ?? false };
  }

  async assign(tx: Queryable, claims: readonly PartitionClaim[]): Promise<void> {
    const { group, inputTopic, window } = this.#options;
    const partitions = claims.find((c) => c.topic === inputTopic)?.partitions ?? [];
    const states = new Map<number, Map<string, SymbolIndicators>>();
    for (const partition of partitions) states.set(partition, new Map());
    for (const kept of await loadIndicatorStates(tx, group, inputTopic, partitions)) {
      states.get(kept.partition)?.set(kept.symbol, new SymbolIndicators(window, kept.snapshot));
    }
    this.#states = states;
    this.#changed = new Map();
  }

  process(records: readonly LogRecord[], context: ProcessContext): void {
    const { window, outputTopic } = this.#options;
    for (const record of records) {
      const decoded = decodePriceMessage(record.value === null ? null : record.value.toString('utf8'), this.#fields, this.#rules);
      if (!decoded.ok) {
        context.reject(record, decoded.reason, decoded.detail);
        continue;
      }
      const { symbol, price, ts } = decoded.value;
      const symbols = this.#states.get(record.partition)!;
      let indicators = symbols.get(symbol);
      if (!indicators) symbols.set(symbol, (indicators = new SymbolIndicators(window)));
      const values = indicators.update(price);
      context.emit(outputTopic, { key: symbol, value: encodeIndicatorMessage({ symbol, ts, price, ...values }) });
      this.#changed.set(`${record.partition}\u0000${symbol}`, { partition: record.partition, symbol, indicators });
    }
  }

  checkpoint(): KeptState[] | null {
    if (this.#changed.size === 0) return null;
    // Snapshots now: the next slice moves the same operators on.
    const kept = [...this.#changed.values()].map(({ partition, symbol, indicators }) => ({ partition, symbol, snapshot: indicators.snapshot() }));
    this.#changed = new Map();
    return kept;
  }

  async write(tx: Queryable, kept: KeptState[]): Promise<number> {
    await saveIndicatorStates(tx, this.#options.group, this.#options.inputTopic, kept);
    return kept.length;
  }

  revoke(): void {
    this.#states = new Map();
    this.#changed = new Map();
  }
}
