/**
 * `indicators`: prices → per-symbol EMA and moving volatility → the `volatility` topic.
 *
 * Source: a consumer-group member on the prices topic whose position and per-symbol
 * state live in Postgres (per input partition). Operators: decode, the partition's
 * event-time guard, the symbol's price level, then one SymbolIndicators per (partition,
 * symbol), in arrival order. Sinks: the output topic (keyed by symbol) and a dead-letter
 * topic for malformed and implausible prices.
 *
 * Exactly once (the default, `exactlyOnce`; Kafka only): per commit interval the outputs,
 * dead letters and consumed offsets go in one Kafka transaction, inside the PostgreSQL
 * transaction of the new states (commit strategy kafka-transaction): read_committed readers
 * see each output once. At least once (`exactlyOnce: false`): per batch, publish the output
 * (awaiting acks), then commit the new states and the next offsets in one PostgreSQL
 * transaction; a crash between the two replays the batch from the committed state: the same
 * records again with the same values (`points` and the offsets tell a replayed record).
 */
import type { Logger } from 'pino';
import { SymbolIndicators } from '../core/indicators.ts';
import { DEFAULT_PRICE_FIELDS, decodePriceMessage, encodeIndicatorMessage } from '../core/price-message.ts';
import type { Decoded, PriceFields, PriceMessage, PriceRules } from '../core/price-message.ts';
import { DEFAULT_MAX_PRICE_RATIO, PriceLevel } from '../core/price-level.ts';
import type { PriceLevelOptions, PriceLevelSink } from '../core/price-level.ts';
import { DEFAULT_MAX_TIME_SKEW_MS, EventTimeGuard, describeSkew } from '../core/event-time-guard.ts';
import type { EventTimeGuardOptions, EventTimeSink } from '../core/event-time-guard.ts';
import { loadEventTimeGuards, saveEventTimeGuards } from '../db/event-time-guards.ts';
import type { KeptGuard } from '../db/event-time-guards.ts';
import { loadHeldRecords, replaceHeldRecords } from '../db/held-records.ts';
import { ReasonCounts, addRejectionCounts } from '../db/rejection-counts.ts';
import type { ReasonsByPartition } from '../db/rejection-counts.ts';
import { loadIndicatorStates, saveIndicatorStates } from '../db/indicator-state-store.ts';
import type { KeptState } from '../db/indicator-state-store.ts';
import type { Database, Queryable } from '../db/types.ts';
import type { Log, LogRecord } from '../log/types.ts';
import type { PartitionClaim, ProcessContext, Processor } from '../runtime/processor.ts';
import { DEFAULT_TRANSACTION_INTERVAL_MS, kafkaTransaction, pgTransaction } from '../runtime/commit-strategy.ts';
import { runStreamTask } from '../runtime/stream-task.ts';
import { countingRejections } from './counted-rejections.ts';

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
  /** The event-time guard's bound: a ts farther from its partition's stream time is held, then counted or dead-lettered `implausible-time` (default 10 min). */
  maxTimeSkewMs?: number;
  /** Partitions of topics this pipeline has to create (input if missing, output, dead letters). */
  partitions?: number;
  /** Return once the input's end offsets at start are processed (single member). */
  stopAtEnd?: boolean;
  maxRecordBytes?: number;
  /** Outputs, dead letters and offsets in one Kafka transaction per commit (default: true on Kafka). */
  exactlyOnce?: boolean;
  /** Commit at most this often (default: 1 s exactly once, every batch at least once). */
  commitIntervalMs?: number;
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
  // The embedded log has no transactions: at least once there unless asked (which is refused).
  const exactlyOnce = options.exactlyOnce ?? log.transactionalProducer !== undefined;
  const report = await runStreamTask({
    pipeline: 'indicators',
    log,
    commit: exactlyOnce ? kafkaTransaction({ db: options.db }) : pgTransaction(options.db),
    commitIntervalMs: options.commitIntervalMs ?? (exactlyOnce ? DEFAULT_TRANSACTION_INTERVAL_MS : 0),
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

/** One input partition: its event-time guard, then per symbol its level and indicators. */
interface PartitionState {
  readonly guard: EventTimeGuard<HeldPrice>;
  readonly symbols: Map<string, SymbolEntry>;
  /** The guard's held version as last checkpointed. */
  savedGuardVersion: number;
}

interface Undecodable {
  record: LogRecord;
  reason: string;
  detail: string;
}

/** Decisions on held records, with the batch they are made in: waiting prices, held times. */
interface Sinks {
  readonly level: PriceLevelSink<HeldPrice> & { readonly context: ProcessContext };
  readonly guard: EventTimeSink<HeldPrice>;
}

interface IndicatorsCheckpoint {
  /** Records dead-lettered, by partition and reason. */
  reasons: ReasonsByPartition;
  states: KeptState[];
  /** The event-time guards of the partitions that changed. */
  guards: Map<number, KeptGuard>;
  /** The records held back in each partition whose held set changed. */
  held: Map<number, LogRecord[]>;
}

const IMPLAUSIBLE_PRICE = 'implausible-price';
const IMPLAUSIBLE_TIME = 'implausible-time';

/**
 * Per input partition an event-time guard, then per (partition, symbol) one
 * SymbolIndicators behind the symbol's PriceLevel, in arrival order. Its checkpoint is
 * the snapshots of the symbols and guards that changed and the records held back in
 * their partitions, taken with the offsets of the same records.
 */
class IndicatorsProcessor implements Processor<IndicatorsCheckpoint> {
  readonly #options: IndicatorsOptions;
  readonly #fields: PriceFields;
  readonly #rules: PriceRules;
  readonly #levelOptions: PriceLevelOptions;
  readonly #guardOptions: EventTimeGuardOptions;
  /** Where each partition's input ends, for a bounded run (--stop-at-end): held records are decided there. */
  readonly #ends: ReadonlyMap<number, bigint> | null;
  /** Only the assigned partitions. */
  #states = new Map<number, PartitionState>();
  #changed = new Map<string, { partition: number; symbol: string; entry: SymbolEntry }>();
  #touched = new Set<number>();
  #heldChanged = new Set<number>();
  /** Kept held records that no longer decode (the rules changed between runs): refused at the next batch. */
  #undecodable: Undecodable[] = [];
  readonly #reasons = new ReasonCounts();

  constructor(options: IndicatorsOptions, ends: ReadonlyMap<number, bigint> | null) {
    this.#options = options;
    this.#fields = options.fields ?? DEFAULT_PRICE_FIELDS;
    this.#rules = { strictTs: options.strictTs ?? false };
    this.#levelOptions = { maxRatio: options.maxPriceRatio ?? DEFAULT_MAX_PRICE_RATIO };
    const maxSkewMs = options.maxTimeSkewMs ?? DEFAULT_MAX_TIME_SKEW_MS;
    // Indicators count points, not time: no watermark, the guard only tells plausible times apart.
    this.#guardOptions = { maxSkewMs, toleranceMs: maxSkewMs };
    this.#ends = ends;
  }

  async assign(tx: Queryable, claims: readonly PartitionClaim[]): Promise<void> {
    const { group, inputTopic, window } = this.#options;
    const partitions = claims.find((c) => c.topic === inputTopic)?.partitions ?? [];
    const held = await loadHeldRecords(tx, group, inputTopic, partitions);
    const guards = await loadEventTimeGuards(tx, group, inputTopic, partitions);
    const undecodable: Undecodable[] = [];
    /** The kept held items (offsets) of a partition, with their records decoded again. */
    const rehydrate = <W extends { item: string }>(partition: number, kept: readonly W[]): Array<Omit<W, 'item'> & { item: HeldPrice }> => {
      const records = new Map((held.get(partition) ?? []).map((r) => [String(r.offset), r]));
      const out: Array<Omit<W, 'item'> & { item: HeldPrice }> = [];
      for (const k of kept) {
        const record = records.get(k.item);
        if (!record) continue;
        const decoded = this.#decode(record);
        if (decoded.ok) out.push({ ...k, item: { record, message: decoded.value } });
        else undecodable.push({ record, reason: decoded.reason, detail: decoded.detail });
      }
      return out;
    };
    const states = new Map<number, PartitionState>();
    for (const partition of partitions) {
      const kept = guards.get(partition);
      const guard = new EventTimeGuard<HeldPrice>(this.#guardOptions, kept && { ...kept, held: rehydrate(partition, kept.held) });
      states.set(partition, { guard, symbols: new Map(), savedGuardVersion: guard.version });
    }
    for (const kept of await loadIndicatorStates(tx, group, inputTopic, partitions)) {
      // A state kept before the bound existed: its EMA is the level to start from.
      const level = kept.snapshot.level ?? { reference: kept.snapshot.ema.points > 0 ? kept.snapshot.ema.value : null, block: [], waiting: [] };
      states.get(kept.partition)?.symbols.set(kept.symbol, {
        indicators: new SymbolIndicators(window, kept.snapshot),
        level: new PriceLevel(this.#levelOptions, { ...level, waiting: rehydrate(kept.partition, level.waiting) }),
      });
    }
    this.#states = states;
    this.#changed = new Map();
    this.#touched = new Set();
    this.#heldChanged = new Set();
    this.#undecodable = undecodable;
    this.#reasons.clear();
  }

  process(records: readonly LogRecord[], batch: ProcessContext): void {
    const context = countingRejections(batch, this.#reasons);
    const sinks = this.#sinks(context);
    for (const { record, reason, detail } of this.#undecodable.splice(0)) {
      context.reject(record, reason, detail);
      this.#heldChanged.add(record.partition);
    }
    for (const record of records) {
      const decoded = this.#decode(record);
      if (!decoded.ok) {
        context.reject(record, decoded.reason, decoded.detail);
      } else {
        const state = this.#states.get(record.partition)!;
        this.#touched.add(record.partition);
        const message = decoded.value;
        if (state.guard.check(message.timeMs, sinks.guard)) this.#offer(record, message, sinks.level);
        else state.guard.hold(message.timeMs, { record, message }, sinks.guard);
      }
      const end = this.#ends?.get(record.partition);
      if (end !== undefined && record.offset + 1n >= end) this.#drain(record.partition, sinks);
    }
  }

  checkpoint(): IndicatorsCheckpoint | null {
    for (const [partition, state] of this.#states) {
      if (state.guard.version !== state.savedGuardVersion) {
        this.#heldChanged.add(partition);
        state.savedGuardVersion = state.guard.version;
      }
    }
    if (this.#changed.size === 0 && this.#heldChanged.size === 0 && this.#touched.size === 0 && !this.#reasons.pending) return null;
    // Snapshots now: the next slice moves the same operators on.
    const states = [...this.#changed.values()].map(({ partition, symbol, entry }) => {
      const level = entry.level.snapshot();
      const waiting = level.waiting.map(({ price, item }) => ({ price, item: String(item.record.offset) }));
      return { partition, symbol, snapshot: { ...entry.indicators.snapshot(), level: { ...level, waiting } } };
    });
    const guards = new Map<number, KeptGuard>();
    for (const partition of new Set([...this.#touched, ...this.#heldChanged])) {
      const guard = this.#states.get(partition)!.guard.snapshot();
      guards.set(partition, { ...guard, held: guard.held.map((h) => ({ ...h, item: String(h.item.record.offset) })) });
    }
    const held = new Map<number, LogRecord[]>();
    for (const partition of this.#heldChanged) {
      const state = this.#states.get(partition)!;
      const records = state.guard.heldItems().map((h) => h.record);
      for (const entry of state.symbols.values()) for (const w of entry.level.snapshot().waiting) records.push(w.item.record);
      held.set(partition, records);
    }
    this.#changed = new Map();
    this.#touched = new Set();
    this.#heldChanged = new Set();
    return { reasons: this.#reasons.take(), states, guards, held };
  }

  async write(tx: Queryable, checkpoint: IndicatorsCheckpoint): Promise<number> {
    const { group, inputTopic } = this.#options;
    await saveIndicatorStates(tx, group, inputTopic, checkpoint.states);
    await saveEventTimeGuards(tx, group, inputTopic, checkpoint.guards);
    await replaceHeldRecords(tx, group, inputTopic, checkpoint.held);
    await addRejectionCounts(tx, group, inputTopic, checkpoint.reasons);
    return checkpoint.states.length;
  }

  revoke(): void {
    this.#states = new Map();
    this.#changed = new Map();
    this.#touched = new Set();
    this.#heldChanged = new Set();
    this.#undecodable = [];
    this.#reasons.clear();
  }

  #decode(record: LogRecord): Decoded<PriceMessage> {
    return decodePriceMessage(record.value === null ? null : record.value.toString('utf8'), this.#fields, this.#rules);
  }

  /** A price whose time the guard let through: taken at once when plausible for its symbol, else it waits. */
  #offer(record: LogRecord, message: PriceMessage, sink: Sinks['level']): void {
    const entry = this.#entry(record.partition, message.symbol);
    const waited = entry.level.waiting > 0;
    if (entry.level.check(message.price, sink)) this.#update(entry, message, sink);
    else entry.level.wait(message.price, { record, message }, sink);
    if (waited || entry.level.waiting > 0) this.#heldChanged.add(record.partition);
    this.#changed.set(`${record.partition}\u0000${message.symbol}`, { partition: record.partition, symbol: message.symbol, entry });
  }

  /** The input of a bounded run ends here: every held time, then every waiting price, is decided. */
  #drain(partition: number, sinks: Sinks): void {
    const state = this.#states.get(partition)!;
    state.guard.drain(sinks.guard);
    this.#touched.add(partition);
    for (const [symbol, entry] of state.symbols) {
      if (entry.level.waiting === 0) continue;
      entry.level.drain(sinks.level);
      this.#heldChanged.add(partition);
      this.#changed.set(`${partition}\u0000${symbol}`, { partition, symbol, entry });
    }
  }

  #entry(partition: number, symbol: string): SymbolEntry {
    const symbols = this.#states.get(partition)!.symbols;
    let entry = symbols.get(symbol);
    if (!entry) symbols.set(symbol, (entry = { indicators: new SymbolIndicators(this.#options.window), level: new PriceLevel(this.#levelOptions) }));
    return entry;
  }

  #update(entry: SymbolEntry, message: PriceMessage, sink: Sinks['level']): void {
    const { symbol, price, ts } = message;
    const values = entry.indicators.update(price);
    sink.context.emit(this.#options.outputTopic, { key: symbol, value: encodeIndicatorMessage({ symbol, ts, price, ...values }) });
  }

  #sinks(context: ProcessContext): Sinks {
    const maxRatio = this.#levelOptions.maxRatio;
    const level: Sinks['level'] = {
      context,
      take: ({ record, message }) => this.#update(this.#entry(record.partition, message.symbol), message, level),
      implausible: ({ record, message }, price, reference) => {
        const error = reference === null
          ? `price ${price} of ${message.symbol} disagrees with the majority of the symbol's first prices`
          : `price ${price} of ${message.symbol} is more than ${maxRatio}x away from its level ${reference}`;
        const headers: Record<string, string> = { 'x-price': String(price) };
        if (reference !== null) headers['x-reference-price'] = String(reference);
        context.reject(record, IMPLAUSIBLE_PRICE, error, { headers });
      },
    };
    const guard: Sinks['guard'] = {
      // A held time now within the skew of its stream: on to its price.
      release: ({ record, message }) => this.#offer(record, message, level),
      implausible: ({ record, message }, eventTime, skewMs) => {
        const streamTime = this.#states.get(record.partition)?.guard.streamTime ?? null;
        const at = new Date(eventTime).toISOString();
        const headers: Record<string, string> = { 'x-event-time': at };
        if (skewMs !== null) headers['x-time-skew-ms'] = String(skewMs);
        if (streamTime !== null) headers['x-stream-time'] = new Date(streamTime).toISOString();
        const error = skewMs === null || streamTime === null
          ? `event time ${at} (ts ${JSON.stringify(message.ts)}) never agreed with the partition's other records`
          : `event time ${at} (ts ${JSON.stringify(message.ts)}) is ${describeSkew(skewMs)} the partition's stream time ${new Date(streamTime).toISOString()}, and the stream did not confirm it`;
        context.reject(record, IMPLAUSIBLE_TIME, error, { headers });
      },
    };
    return { level, guard };
  }
}
