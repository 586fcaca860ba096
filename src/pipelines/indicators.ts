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
import type { Decoded, PriceFields, PriceMessage, PriceRules } from '../core/price-message.ts';
import { DEFAULT_MAX_PRICE_RATIO, PriceLevel } from '../core/price-level.ts';
import type { PriceLevelOptions, PriceLevelSink, WaitingPrice } from '../core/price-level.ts';
import { loadHeldRecords, replaceHeldRecords } from '../db/held-records.ts';
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
  /** A price more than this factor away from its symbol's level is dead-lettered `implausible-price` (default 10). */
  maxPriceRatio?: number;
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
    processor: new IndicatorsProcessor(options, options.stopAtEnd ? new Map((await log.offsets(inputTopic)).map((p) => [p.partition, p.latest])) : null),
    deadLetterTopic,
    logger: options.logger,
    signal: options.signal,
    untilEnd: options.stopAtEnd,
    maxRecordBytes: options.maxRecordBytes,
  });
  return { read: report.read, published: report.published, deadLettered: report.deadLettered };
}

interface HeldPrice {
  readonly record: LogRecord;
  readonly message: PriceMessage;
}

interface SymbolEntry {
  readonly indicators: SymbolIndicators;
  /** The symbol's sanity bound: prices far from its level wait here, then are taken or refused. */
  readonly level: PriceLevel<HeldPrice>;
}

interface Undecodable {
  record: LogRecord;
  reason: string;
  detail: string;
}

/** Decisions on waiting prices, with the batch they are made in. */
type LevelSink = PriceLevelSink<HeldPrice> & { readonly context: ProcessContext };

interface IndicatorsCheckpoint {
  states: KeptState[];
  /** The records held back in each partition whose held set changed. */
  held: Map<number, LogRecord[]>;
}

/**
 * Per (input partition, symbol) one SymbolIndicators behind the symbol's PriceLevel, in
 * arrival order. Its checkpoint is the snapshots of the symbols that changed and the
 * records held back in their partitions, taken with the offsets of the same records.
 */
class IndicatorsProcessor implements Processor<IndicatorsCheckpoint> {
  readonly #options: IndicatorsOptions;
  readonly #fields: PriceFields;
  readonly #rules: PriceRules;
  readonly #levelOptions: PriceLevelOptions;
  /** Where each partition's input ends, for a bounded run (--stop-at-end): waiting prices are decided there. */
  readonly #ends: ReadonlyMap<number, bigint> | null;
  /** partition → symbol → indicators; only the assigned partitions. */
  #states = new Map<number, Map<string, SymbolEntry>>();
  #changed = new Map<string, { partition: number; symbol: string; entry: SymbolEntry }>();
  #heldChanged = new Set<number>();
  /** Kept held records that no longer decode (the rules changed between runs): refused at the next batch. */
  #undecodable: Undecodable[] = [];

  constructor(options: IndicatorsOptions, ends: ReadonlyMap<number, bigint> | null) {
    this.#options = options;
    this.#fields = options.fields ?? DEFAULT_PRICE_FIELDS;
    this.#rules = { strictTs: options.strictTs ?? false };
    this.#levelOptions = { maxRatio: options.maxPriceRatio ?? DEFAULT_MAX_PRICE_RATIO };
    this.#ends = ends;
  }

  async assign(tx: Queryable, claims: readonly PartitionClaim[]): Promise<void> {
    const { group, inputTopic, window } = this.#options;
    const partitions = claims.find((c) => c.topic === inputTopic)?.partitions ?? [];
    const states = new Map<number, Map<string, SymbolEntry>>();
    for (const partition of partitions) states.set(partition, new Map());
    const held = await loadHeldRecords(tx, group, inputTopic, partitions);
    const undecodable: Undecodable[] = [];
    for (const kept of await loadIndicatorStates(tx, group, inputTopic, partitions)) {
      const records = new Map((held.get(kept.partition) ?? []).map((r) => [String(r.offset), r]));
      const waiting: WaitingPrice<HeldPrice>[] = [];
      for (const { price, item: offset } of kept.snapshot.level?.waiting ?? []) {
        const record = records.get(offset);
        if (!record) continue;
        const decoded = this.#decode(record);
        if (decoded.ok) waiting.push({ price, item: { record, message: decoded.value } });
        else undecodable.push({ record, reason: decoded.reason, detail: decoded.detail });
      }
      // A state kept before the bound existed: its EMA is the level to start from.
      const level = kept.snapshot.level ?? { reference: kept.snapshot.ema.points > 0 ? kept.snapshot.ema.value : null, block: [], waiting: [] };
      states.get(kept.partition)?.set(kept.symbol, {
        indicators: new SymbolIndicators(window, kept.snapshot),
        level: new PriceLevel(this.#levelOptions, { ...level, waiting }),
      });
    }
    this.#states = states;
    this.#changed = new Map();
    this.#heldChanged = new Set();
    this.#undecodable = undecodable;
  }

  process(records: readonly LogRecord[], context: ProcessContext): void {
    const sink = this.#sink(context);
    for (const { record, reason, detail } of this.#undecodable.splice(0)) {
      context.reject(record, reason, detail);
      this.#heldChanged.add(record.partition);
    }
    for (const record of records) {
      const decoded = this.#decode(record);
      if (!decoded.ok) context.reject(record, decoded.reason, decoded.detail);
      else this.#offer(record, decoded.value, sink);
      const end = this.#ends?.get(record.partition);
      if (end !== undefined && record.offset + 1n >= end) this.#drain(record.partition, sink);
    }
  }

  checkpoint(): IndicatorsCheckpoint | null {
    if (this.#changed.size === 0 && this.#heldChanged.size === 0) return null;
    // Snapshots now: the next slice moves the same operators on.
    const states = [...this.#changed.values()].map(({ partition, symbol, entry }) => {
      const level = entry.level.snapshot();
      const waiting = level.waiting.map(({ price, item }) => ({ price, item: String(item.record.offset) }));
      return { partition, symbol, snapshot: { ...entry.indicators.snapshot(), level: { ...level, waiting } } };
    });
    const held = new Map<number, LogRecord[]>();
    for (const partition of this.#heldChanged) {
      const records: LogRecord[] = [];
      for (const entry of this.#states.get(partition)?.values() ?? []) for (const w of entry.level.snapshot().waiting) records.push(w.item.record);
      held.set(partition, records);
    }
    this.#changed = new Map();
    this.#heldChanged = new Set();
    return { states, held };
  }

  async write(tx: Queryable, checkpoint: IndicatorsCheckpoint): Promise<number> {
    await saveIndicatorStates(tx, this.#options.group, this.#options.inputTopic, checkpoint.states);
    await replaceHeldRecords(tx, this.#options.group, this.#options.inputTopic, checkpoint.held);
    return checkpoint.states.length;
  }

  revoke(): void {
    this.#states = new Map();
    this.#changed = new Map();
    this.#heldChanged = new Set();
    this.#undecodable = [];
  }

  #decode(record: LogRecord): Decoded<PriceMessage> {
    return decodePriceMessage(record.value === null ? null : record.value.toString('utf8'), this.#fields, this.#rules);
  }

  /** A well-formed price: taken at once when plausible for its symbol, else it waits. */
  #offer(record: LogRecord, message: PriceMessage, sink: LevelSink): void {
    const entry = this.#entry(record.partition, message.symbol);
    const waited = entry.level.waiting > 0;
    if (entry.level.check(message.price, sink)) this.#update(entry, message, sink);
    else entry.level.wait(message.price, { record, message }, sink);
    if (waited || entry.level.waiting > 0) this.#heldChanged.add(record.partition);
    this.#changed.set(`${record.partition}\u0000${message.symbol}`, { partition: record.partition, symbol: message.symbol, entry });
  }

  /** The input of a bounded run ends here: every waiting price is decided. */
  #drain(partition: number, sink: LevelSink): void {
    for (const [symbol, entry] of this.#states.get(partition) ?? []) {
      if (entry.level.waiting === 0) continue;
      entry.level.drain(sink);
      this.#heldChanged.add(partition);
      this.#changed.set(`${partition}\u0000${symbol}`, { partition, symbol, entry });
    }
  }

  #entry(partition: number, symbol: string): SymbolEntry {
    const symbols = this.#states.get(partition)!;
    let entry = symbols.get(symbol);
    if (!entry) symbols.set(symbol, (entry = { indicators: new SymbolIndicators(this.#options.window), level: new PriceLevel(this.#levelOptions) }));
    return entry;
  }

  #update(entry: SymbolEntry, message: PriceMessage, sink: LevelSink): void {
    const { symbol, price, ts } = message;
    const values = entry.indicators.update(price);
    sink.context.emit(this.#options.outputTopic, { key: symbol, value: encodeIndicatorMessage({ symbol, ts, price, ...values }) });
  }

  #sink(context: ProcessContext): LevelSink {
    const maxRatio = this.#levelOptions.maxRatio;
    const sink: LevelSink = {
      context,
      take: ({ record, message }: HeldPrice) => this.#update(this.#entry(record.partition, message.symbol), message, sink),
      implausible: ({ record, message }: HeldPrice, price: number, reference: number | null) => {
        const error = reference === null
          ? `price ${price} of ${message.symbol} disagrees with the majority of the symbol's first prices`
          : `price ${price} of ${message.symbol} is more than ${maxRatio}x away from its level ${reference}`;
        const headers: Record<string, string> = { 'x-price': String(price) };
        if (reference !== null) headers['x-reference-price'] = String(reference);
        context.reject(record, IMPLAUSIBLE_PRICE, error, { headers });
      },
    };
    return sink;
  }
}

const IMPLAUSIBLE_PRICE = 'implausible-price';
