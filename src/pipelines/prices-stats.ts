import { formatTs } from '../core/prices.ts';
import { DEFAULT_PRICE_FIELDS, decodePriceMessage } from '../core/price-message.ts';
import type { PriceFields, PriceRules } from '../core/price-message.ts';
import { RunningStats, ValueCounts } from '../core/stats.ts';
import { OutlierList, outlierTest } from '../core/outliers.ts';
import type { OutlierRule } from '../core/outliers.ts';
import { valueRange } from '../log/types.ts';
import type { ValueRange } from '../log/types.ts';
import { priceKeys, scanPriceBytes, SymbolNames } from '../core/price-bytes.ts';
import type { PriceBytes } from '../core/price-bytes.ts';
import type { Log, LogRecord } from '../log/types.ts';
import { metrics } from '../observability/metrics.ts';
import { DEFAULT_MAX_RECORD_BYTES, TOO_LARGE } from '../runtime/dead-letters.ts';
import { DEFAULT_MAX_PRICE_RATIO, PriceLevel } from '../core/price-level.ts';
import type { PriceLevelOptions, PriceLevelSink } from '../core/price-level.ts';
import { DEFAULT_MAX_TIME_SKEW_MS, EventTimeGuard, describeSkew } from '../core/event-time-guard.ts';
import type { EventTimeGuardOptions, EventTimeSink } from '../core/event-time-guard.ts';

/**
 * Batch statistics over a fixed snapshot of a topic: every partition from its earliest
 * offset to the end offset seen at start. Pass one builds per-(partition, symbol)
 * Welford accumulators, merged in partition order (Chan) so the answer is bit-identical
 * on every re-run whatever order the fetches interleave in. Implausible records (a time
 * far from its partition's stream, core/event-time-guard.ts; a price far from its symbol's
 * level, core/price-level.ts) are counted apart and enter no statistic. Outliers need the final
 * statistics, so pass one keeps the *candidates*: a price farther from its symbol's running
 * mean than a band narrower than the rule's (CANDIDATE_BAND; the first prices of each symbol
 * too), 16 bytes each, and the lowest and highest price it did not keep. The rule's final
 * limits form an interval around its center (the mean, or the median): when both of those
 * prices are inside it, so is every price not kept, and the outliers are exactly the kept
 * prices the rule flags. Otherwise (statistics that moved a lot over the topic), or when the
 * candidates outgrow the memory budget, a second pass re-reads the same offset range. On
 * prices that vary around a level, that keeps ~1% of them (CANDIDATE_SETTLED), and the
 * outliers found are kept flat (core/outliers.ts OutlierList).
 */

export interface StatsOptions {
  topic: string;
  rule: OutlierRule;
  fields?: PriceFields;
  /** `--strict-ts`: only `yyyy-mm-dd hh:mm:ss[.fff|.ffffff]` UTC strings for `ts`. */
  strictTs?: boolean;
  /** A price more than this factor away from its symbol's level is implausible (default 10). */
  maxPriceRatio?: number;
  /** The event-time guard's bound: a time farther from its partition's stream time is held, then counted or implausible (default 10 min). */
  maxTimeSkewMs?: number;
  /** Bytes of prices to keep between passes; 0 always takes two passes. */
  memoryBudgetBytes: number;
  /** Values above this are counted invalid as `too-large` without being parsed (default 1 MiB). */
  maxRecordBytes?: number;
  signal?: AbortSignal;
  onProgress?: (read: number, total: number) => void;
}

export interface SymbolStats {
  symbol: string;
  count: number;
  min: number;
  max: number;
  mean: number;
  stddev: number;
}

export type { Outlier } from '../core/outliers.ts';

export interface InvalidSample {
  partition: number;
  offset: string;
  /** A reason code of price-message.ts, or `too-large`. */
  reason: string;
  detail: string;
}

export interface ImplausibleSample extends InvalidSample {
  ts: string;
  symbol: string;
  price: number;
}

export interface StatsReport {
  count: number;
  symbols: SymbolStats[];
  /** In report order (time, symbol, price), kept flat: read with `at`, `slice` or iteration. */
  outliers: OutlierList;
  invalid: number;
  invalidReasons: Record<string, number>;
  invalidSamples: InvalidSample[];
  /** Well-formed messages set apart, in no statistic: `implausible-price` (and `implausible-time`). */
  implausible: number;
  implausibleReasons: Record<string, number>;
  implausibleSamples: ImplausibleSample[];
  passes: 1 | 2;
  range: Array<{ partition: number; from: string; to: string }>;
}

const INVALID_SAMPLES = 10;

/**
 * A price is a candidate when it is farther than this many running standard deviations from
 * its symbol's running mean: two thirds of the rule's threshold (2 for the 3-sigma default;
 * the median/MAD rule's threshold is in robust standard deviations, about one each).
 */
const CANDIDATE_BAND = 2 / 3;
/** Every symbol's first prices are candidates: its running statistics are not settled yet. */
const CANDIDATE_WARM_UP = 100;
/**
 * After this many prices of a symbol in a partition, its running mean and standard deviation
 * are within about 1% of their final values on prices that vary around a level, and the z-score
 * band tightens to SETTLED_BAND of the threshold: ~1% of prices are kept instead of ~5%, so the
 * candidates of 10M prices take ~2 MB, not ~8. (Prices that drift fail the end check and take
 * the second pass, as before. The median rule keeps the wider band: its threshold is in robust
 * deviations, which the running standard deviation overstates when anomalies are present.)
 */
const CANDIDATE_SETTLED = 10_000;
const SETTLED_BAND = 0.9;

/** Candidate prices and event times of one symbol, in growable typed arrays. */
class SymbolBuffer {
  /** Fixed-size chunks of (price, time) pairs: no copy and no spare half as they grow. */
  readonly chunks: Float64Array[] = [];
  length = 0;
  /** The lowest and highest price not kept. */
  skippedMin = Number.POSITIVE_INFINITY;
  skippedMax = Number.NEGATIVE_INFINITY;

  skip(price: number): void {
    if (price < this.skippedMin) this.skippedMin = price;
    if (price > this.skippedMax) this.skippedMax = price;
  }

  push(price: number, timeMs: number): void {
    const at = (this.length % CHUNK_PAIRS) * 2;
    if (at === 0) this.chunks.push(new Float64Array(CHUNK_PAIRS * 2));
    const chunk = this.chunks[this.chunks.length - 1]!;
    chunk[at] = price;
    chunk[at + 1] = timeMs;
    this.length++;
  }

  /** Calls `visit` with every kept (price, time), in the order kept. */
  forEach(visit: (price: number, timeMs: number) => void): void {
    for (let i = 0; i < this.length; i++) {
      const chunk = this.chunks[Math.floor(i / CHUNK_PAIRS)]!;
      const at = (i % CHUNK_PAIRS) * 2;
      visit(chunk[at]!, chunk[at + 1]!);
    }
  }
}

/** Candidate pairs per chunk (64 KiB). */
const CHUNK_PAIRS = 4096;

export async function computeStats(log: Log, options: StatsOptions): Promise<StatsReport> {
  const fields = options.fields ?? DEFAULT_PRICE_FIELDS;
  const snapshot = await log.offsets(options.topic);
  const from = new Map(snapshot.map((p) => [p.partition, p.earliest]));
  const to = new Map(snapshot.map((p) => [p.partition, p.latest]));
  const total = snapshot.reduce((sum, p) => sum + Number(p.latest - p.earliest), 0);
  const range = { topic: options.topic, partitions: snapshot.map((p) => p.partition), from, to, signal: options.signal };
  const maxSkewMs = options.maxTimeSkewMs ?? DEFAULT_MAX_TIME_SKEW_MS;
  // No watermark here: the guard only tells plausible times from implausible ones.
  const screenOptions: ScreenOptions = { level: { maxRatio: options.maxPriceRatio ?? DEFAULT_MAX_PRICE_RATIO }, guard: { maxSkewMs, toleranceMs: maxSkewMs } };

  const counts = new Map<string, ValueCounts>();
  let buffers: Map<string, SymbolBuffer> | null = options.memoryBudgetBytes > 0 ? new Map() : null;
  let buffered = 0;
  const invalidReasons: Record<string, number> = {};
  const invalidSamples: InvalidSample[] = [];
  const implausibleReasons: Record<string, number> = {};
  const implausibleSamples: ImplausibleSample[] = [];
  let invalid = 0;
  let implausible = 0;
  let read = 0;

  const onInvalid = (record: LogRecord, { reason, detail }: Problem) => {
    invalid++;
    invalidReasons[reason] = (invalidReasons[reason] ?? 0) + 1;
    if (invalidSamples.length < INVALID_SAMPLES) invalidSamples.push({ partition: record.partition, offset: String(record.offset), reason, detail });
  };
  const onImplausible = (tick: HeldTick, reason: string, detail: string) => {
    implausible++;
    implausibleReasons[reason] = (implausibleReasons[reason] ?? 0) + 1;
    if (implausibleSamples.length < INVALID_SAMPLES) {
      implausibleSamples.push({ partition: tick.partition, offset: String(tick.offset), reason, detail, ts: formatTs(tick.timeMs), symbol: tick.symbol, price: tick.price });
    }
  };

  const band = CANDIDATE_BAND * options.rule.threshold;
  const settledBand = options.rule.kind === 'zscore' ? SETTLED_BAND * options.rule.threshold : band;
  /** A price that counts: into the statistics, the value counts and, if a candidate, the kept prices. */
  const take = (stats: RunningStats, symbol: string, price: number, timeMs: number) => {
    stats.push(price);
    if (options.rule.kind === 'mad') {
      let valueCounts = counts.get(symbol);
      if (!valueCounts) counts.set(symbol, (valueCounts = new ValueCounts()));
      valueCounts.push(price);
    }
    if (buffers) {
      let buffer = buffers.get(symbol);
      if (!buffer) buffers.set(symbol, (buffer = new SymbolBuffer()));
      // The symbol's statistics in this partition (merged ones are not known until the end).
      const width = stats.count > CANDIDATE_SETTLED ? settledBand : band;
      if (stats.count > CANDIDATE_WARM_UP && !(Math.abs(price - stats.mean) > width * Math.sqrt(stats.m2 / stats.count))) {
        buffer.skip(price);
      } else if ((buffered + 1) * 16 > options.memoryBudgetBytes) {
        buffers = null; // over budget: forget them, take a second pass instead
      } else {
        buffer.push(price, timeMs);
        buffered++;
      }
    }
  };

  const maxRecordBytes = options.maxRecordBytes ?? DEFAULT_MAX_RECORD_BYTES;
  const rules = { strictTs: options.strictTs ?? false };
  const pass1 = new PlausibilityScreen(screenOptions, {
    take: (state, symbol, price, timeMs) => take(state.stats, symbol, price, timeMs),
    implausible: onImplausible,
  });
  const read1 = priceReader(fields, rules, maxRecordBytes);
  for await (const batch of log.readRange(range)) {
    screenBatch(batch, read1, pass1, onInvalid);
    read += batch.length;
    metrics.recordsIn.inc({ pipeline: 'stats', topic: options.topic }, batch.length);
    options.onProgress?.(read, total);
  }
  pass1.drain();

  // Chan merge, partitions in order: the result does not depend on fetch interleaving.
  const merged = new Map<string, RunningStats>();
  for (const [, partition] of [...pass1.partitions].sort((a, b) => a[0] - b[0])) {
    for (const [symbol, state] of partition.symbols) {
      if (state.stats.count === 0) continue;
      const target = merged.get(symbol) ?? new RunningStats();
      merged.set(symbol, target.merge(state.stats));
    }
  }
  const tests = new Map([...merged].map(([symbol, stats]) => [symbol, outlierTest(options.rule, stats, counts.get(symbol))]));

  const outliers = new OutlierList();
  // One pass is enough when no price left out could be an outlier (the rule's non-outliers
  // are an interval, so its two ends decide).
  if (buffers && [...buffers].some(([symbol, b]) => b.skippedMin <= b.skippedMax && (tests.get(symbol)!(b.skippedMin) || tests.get(symbol)!(b.skippedMax)))) buffers = null;
  if (buffers) {
    for (const [symbol, buffer] of buffers) {
      const isOutlier = tests.get(symbol)!;
      buffer.forEach((price, timeMs) => {
        if (isOutlier(price)) outliers.push(symbol, price, timeMs);
      });
    }
  } else {
    // The same decisions again (they depend only on each partition's records, in order).
    const pass2 = new PlausibilityScreen(screenOptions, {
      take: (_state, symbol, price, timeMs) => {
        if (tests.get(symbol)!(price)) outliers.push(symbol, price, timeMs);
      },
      implausible: () => undefined,
    });
    const read2 = priceReader(fields, rules, maxRecordBytes);
    for await (const batch of log.readRange(range)) {
      metrics.recordsIn.inc({ pipeline: 'stats', topic: options.topic }, batch.length);
      screenBatch(batch, read2, pass2, () => undefined);
    }
    pass2.drain();
  }
  outliers.sort();

  const stddevKind = options.rule.kind === 'zscore' ? options.rule.stddev : 'sample';
  const symbols = [...merged]
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
    .map(([symbol, s]) => ({ symbol, count: s.count, min: s.min, max: s.max, mean: s.mean, stddev: s.stddev(stddevKind) }));

  return {
    count: read,
    symbols,
    outliers,
    invalid,
    invalidReasons,
    invalidSamples,
    implausible,
    implausibleReasons,
    implausibleSamples,
    passes: buffers ? 1 : 2,
    range: snapshot.map((p) => ({ partition: p.partition, from: String(p.earliest), to: String(p.latest) })),
  };
}

/**
 * One fetched batch through a pass. A plain function, so that V8 optimises the per-record loop
 * (the async function around it is not): times and prices stay unboxed doubles through the
 * reader, the guard and the statistics instead of a heap number at every call.
 */
function screenBatch(batch: readonly LogRecord[], reader: PriceReader, screen: PlausibilityScreen, onInvalid: (record: LogRecord, problem: Problem) => void): void {
  for (let i = 0; i < batch.length; i++) {
    const record = batch[i]!;
    const tick = reader.read(record);
    if (tick === null) onInvalid(record, reader.problem);
    else screen.offer(record, tick);
  }
}

/** A price set aside for a decision: a copy, since the reader reuses its tick. */
interface HeldTick {
  partition: number;
  offset: bigint;
  symbol: string;
  price: number;
  timeMs: number;
}

interface SymbolState {
  readonly stats: RunningStats;
  readonly level: PriceLevel<HeldTick>;
}

interface ScreenSink {
  take(state: SymbolState, symbol: string, price: number, timeMs: number): void;
  implausible(tick: HeldTick, reason: string, detail: string): void;
}

interface PartitionScreen {
  readonly guard: EventTimeGuard<HeldTick>;
  readonly guardSink: EventTimeSink<HeldTick>;
  readonly symbols: Map<string, SymbolState>;
}

export interface ScreenOptions {
  level: PriceLevelOptions;
  guard: EventTimeGuardOptions;
}

/**
 * The plausibility decisions of one pass, per partition in its order, so that both passes
 * decide alike: the partition's event-time guard first (a time far from its stream waits,
 * then counts or is refused as `implausible-time`, core/event-time-guard.ts), then the
 * symbol's level (a price far from it waits, then counts or is refused as
 * `implausible-price`, core/price-level.ts).
 */
class PlausibilityScreen {
  readonly partitions = new Map<number, PartitionScreen>();
  readonly #options: ScreenOptions;
  readonly #sink: ScreenSink;
  readonly #levelSink: PriceLevelSink<HeldTick>;
  #last: PartitionScreen | null = null;
  #lastPartition = -1;

  constructor(options: ScreenOptions, sink: ScreenSink) {
    this.#options = options;
    this.#sink = sink;
    this.#levelSink = {
      take: (tick) => sink.take(this.#state(this.#partition(tick.partition), tick.symbol), tick.symbol, tick.price, tick.timeMs),
      implausible: (tick, price, reference) => {
        const detail = reference === null
          ? `price ${price} of ${tick.symbol} disagrees with the symbol's other first prices`
          : `price ${price} of ${tick.symbol} is more than ${this.#options.level.maxRatio}x away from its level ${reference}`;
        sink.implausible(tick, 'implausible-price', detail);
      },
    };
  }

  offer(record: LogRecord, tick: ReadTick): void {
    const partition = record.partition === this.#lastPartition ? this.#last! : this.#partition(record.partition);
    const { symbol, price, timeMs } = tick;
    if (partition.guard.check(timeMs, partition.guardSink)) this.#price(partition, symbol, price, timeMs, record.partition, record);
    else partition.guard.hold(timeMs, { partition: record.partition, offset: record.offset, symbol, price, timeMs }, partition.guardSink);
  }

  /** End of input: every held time, then every waiting price, is decided. */
  drain(): void {
    const partitions = [...this.partitions].sort((a, b) => a[0] - b[0]).map(([, p]) => p);
    for (const partition of partitions) partition.guard.drain(partition.guardSink);
    for (const partition of partitions) for (const state of partition.symbols.values()) state.level.drain(this.#levelSink);
  }

  /** A time the guard let through: now the price. The offset (of a record: read only if the price waits). */
  #price(partition: PartitionScreen, symbol: string, price: number, timeMs: number, partitionNumber: number, at: bigint | LogRecord): void {
    const state = partition.symbols.get(symbol) ?? this.#state(partition, symbol);
    if (state.level.check(price, this.#levelSink)) this.#sink.take(state, symbol, price, timeMs);
    else state.level.wait(price, { partition: partitionNumber, offset: typeof at === 'bigint' ? at : at.offset, symbol, price, timeMs }, this.#levelSink);
  }

  #partition(partition: number): PartitionScreen {
    let screen = this.partitions.get(partition);
    if (!screen) {
      const guardSink: EventTimeSink<HeldTick> = {
        release: (tick) => this.#price(screen!, tick.symbol, tick.price, tick.timeMs, tick.partition, tick.offset),
        implausible: (tick, _eventTime, skewMs) => {
          const streamTime = screen!.guard.streamTime;
          const detail = skewMs === null || streamTime === null
            ? `event time ${formatTs(tick.timeMs)} never agreed with the partition's other records`
            : `event time ${formatTs(tick.timeMs)} is ${describeSkew(skewMs)} the partition's stream time ${formatTs(streamTime)}`;
          this.#sink.implausible(tick, 'implausible-time', detail);
        },
      };
      screen = { guard: new EventTimeGuard(this.#options.guard), guardSink, symbols: new Map() };
      this.partitions.set(partition, screen);
    }
    this.#last = screen;
    this.#lastPartition = partition;
    return screen;
  }

  #state(partition: PartitionScreen, symbol: string): SymbolState {
    let state = partition.symbols.get(symbol);
    if (!state) partition.symbols.set(symbol, (state = { stats: new RunningStats(), level: new PriceLevel(this.#options.level) }));
    return state;
  }
}

interface ReadTick {
  symbol: string;
  price: number;
  timeMs: number;
}

interface Problem {
  reason: string;
  detail: string;
}

interface PriceReader {
  /** The tick (a reused object: copy what you keep), or null with `problem` set. */
  read(record: LogRecord): ReadTick | null;
  readonly problem: Problem;
}

/**
 * Reads records by the rules of price-message.ts: common messages from their bytes
 * (price-bytes.ts), the rest by `decodePriceMessage`, which names the reason. A value over
 * `maxRecordBytes` is `too-large`, unread.
 */
function priceReader(fields: PriceFields, rules: PriceRules, maxRecordBytes: number): PriceReader {
  const keys = priceKeys(fields, rules);
  const names = new SymbolNames();
  const range: ValueRange = { data: Buffer.alloc(0), start: 0, end: 0 };
  const scanned: PriceBytes = { timeMs: 0, price: 0, symbolStart: 0, symbolEnd: 0 };
  const tick: ReadTick = { symbol: '', price: 0, timeMs: 0 };
  const problem: Problem = { reason: '', detail: '' };
  const fail = (reason: string, detail: string) => {
    problem.reason = reason;
    problem.detail = detail;
    return null;
  };
  const read = (record: LogRecord): ReadTick | null => {
    if (!valueRange(record, range)) return fail('empty', 'the message has no value');
    if (range.end - range.start > maxRecordBytes) return fail(TOO_LARGE, `value of ${range.end - range.start} bytes is over --max-record-bytes ${maxRecordBytes}; not parsed`);
    if (scanPriceBytes(range.data, range.start, range.end, keys, scanned)) {
      tick.symbol = names.name(range.data, scanned.symbolStart, scanned.symbolEnd);
      tick.price = scanned.price;
      tick.timeMs = scanned.timeMs;
      return tick;
    }
    const decoded = decodePriceMessage(range.data.toString('utf8', range.start, range.end), fields, rules);
    if (!decoded.ok) return fail(decoded.reason, decoded.detail);
    tick.symbol = decoded.value.symbol;
    tick.price = decoded.value.price;
    tick.timeMs = decoded.value.timeMs;
    return tick;
  };
  return { read, problem };
}
