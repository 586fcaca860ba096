/**
 * A user-defined pipeline on the tickflow runtime, in one file: the 1-minute VWAP
 * (volume-weighted average price) of every symbol, from a topic of trades
 * `{"ts": "2024-03-01 09:30:00.250", "symbol": "ACME", "price": 12.34, "qty": 100}`
 * (keyed by symbol, `ts` in UTC) into the PostgreSQL table `vwap_minutes`, exactly once.
 *
 * Only the logic is here. The runtime (runStreamTask) claims the partitions and hands us
 * the state kept for them, commits our rows, our state and the offsets in ONE
 * transaction, and sends rejected trades to the dead-letter topic. docs/runtime.md walks
 * through this file.
 *
 *   node examples/vwap.ts --brokers 127.0.0.1:9092 --database-url postgres://… [--topic trades] [--until-end]
 */
import { parseArgs } from 'node:util';
import { KafkaLog, TumblingWindows, Watermark, WindowAggregator, isSymbol, openDatabase, parseTs, runStreamTask, valueText } from 'tickflow';
import type { Database, LogRecord, PartitionClaim, ProcessContext, Processor, Queryable, StreamTaskOptions, StreamTaskReport } from 'tickflow';

/** One symbol's trades in one minute. Sums of integers (cents), so exact. */
interface Sums { trades: number; volume: number; notionalCents: number }
interface ClosedMinute extends Sums { symbol: string; minute: number }
/** What is kept per input partition: its stream time and its open minutes. */
interface SavedPartition { streamTime: number | null; open: (Sums & { symbol: string; start: number })[] }
interface Checkpoint { closed: ClosedMinute[]; saved: Map<number, SavedPartition> }

const MINUTES = new TumblingWindows(60_000);
const none = (): Sums => ({ trades: 0, volume: 0, notionalCents: 0 });
const add = (a: Sums, b: Sums): Sums => ({ trades: a.trades + b.trades, volume: a.volume + b.volume, notionalCents: a.notionalCents + b.notionalCents });

export async function createVwapTables(db: Queryable): Promise<void> {
  await db.query(`
    CREATE TABLE IF NOT EXISTS vwap_minutes (
      symbol text NOT NULL, minute timestamptz NOT NULL, trades int NOT NULL,
      volume bigint NOT NULL, notional_cents bigint NOT NULL,
      vwap numeric GENERATED ALWAYS AS (round(notional_cents::numeric / volume / 100, 6)) STORED,
      PRIMARY KEY (symbol, minute));
    CREATE TABLE IF NOT EXISTS vwap_open_minutes (
      consumer text NOT NULL, topic text NOT NULL, partition int NOT NULL, state jsonb NOT NULL,
      PRIMARY KEY (consumer, topic, partition));`);
}

/** One input partition's minutes: open ones are state, closed ones become rows. */
class PartitionMinutes {
  readonly watermark: Watermark;
  readonly minutes: WindowAggregator<string, Sums, Sums>;

  constructor(allowedLatenessMs: number, saved?: SavedPartition) {
    this.watermark = new Watermark(allowedLatenessMs);
    this.minutes = new WindowAggregator({ windows: MINUTES, watermark: this.watermark, init: none, add });
    for (const { start, symbol, ...sums } of saved?.open ?? []) this.minutes.add(start, symbol, sums);
    if (saved?.streamTime != null) this.watermark.advanceTo(saved.streamTime);
  }

  save(): SavedPartition {
    const streamTime = Number.isFinite(this.watermark.streamTime) ? this.watermark.streamTime : null;
    return { streamTime, open: this.minutes.peek().map(({ window, key, value }) => ({ start: window.start, symbol: key, ...value })) };
  }
}

export class VwapProcessor implements Processor<Checkpoint> {
  readonly #group: string;
  readonly #topic: string;
  readonly #allowedLatenessMs: number;
  #partitions = new Map<number, PartitionMinutes>();
  #closed: ClosedMinute[] = [];
  #changed = new Set<number>();

  constructor(options: { group: string; topic: string; allowedLatenessMs: number }) {
    this.#group = options.group;
    this.#topic = options.topic;
    this.#allowedLatenessMs = options.allowedLatenessMs;
  }

  async assign(tx: Queryable, claims: readonly PartitionClaim[]): Promise<void> {
    const partitions = claims.flatMap((claim) => claim.partitions);
    const { rows } = await tx.query<{ partition: number; state: SavedPartition }>(
      'SELECT partition, state FROM vwap_open_minutes WHERE consumer = $1 AND topic = $2 AND partition = ANY($3::int[])',
      [this.#group, this.#topic, partitions]);
    const saved = new Map(rows.map((row) => [row.partition, row.state]));
    this.#partitions = new Map(partitions.map((p) => [p, new PartitionMinutes(this.#allowedLatenessMs, saved.get(p))]));
    this.#closed = [];
    this.#changed = new Set();
  }

  process(records: readonly LogRecord[], context: ProcessContext): void {
    for (const record of records) {
      const trade = parseTrade(valueText(record));
      if ('reason' in trade) {
        context.reject(record, trade.reason, trade.error);
        continue;
      }
      const { minutes, watermark } = this.#partitions.get(record.partition)!;
      if (!minutes.add(trade.time, trade.symbol, { trades: 1, volume: trade.qty, notionalCents: trade.cents * trade.qty })) {
        const minute = new Date(MINUTES.windowFor(trade.time).start).toISOString();
        context.reject(record, 'late', `minute ${minute} already closed`, {
          outcome: 'late',
          headers: { 'x-event-minute': minute, 'x-watermark': new Date(watermark.current).toISOString() },
        });
        continue;
      }
      this.#changed.add(record.partition);
    }
    for (const partition of this.#changed) {
      for (const { window, key, value } of this.#partitions.get(partition)!.minutes.close()) this.#closed.push({ symbol: key, minute: window.start, ...value });
    }
    if (this.#closed.length > 0) context.commitSoon();
  }

  checkpoint(): Checkpoint | null {
    if (this.#changed.size === 0) return null;
    const checkpoint = { closed: this.#closed, saved: new Map([...this.#changed].map((p) => [p, this.#partitions.get(p)!.save()])) };
    this.#closed = [];
    this.#changed = new Set();
    return checkpoint;
  }

  async write(tx: Queryable, { closed, saved }: Checkpoint): Promise<number> {
    // Additive: exactly once makes it safe, and a symbol spread over partitions still sums right.
    await tx.query(
      `INSERT INTO vwap_minutes AS v (symbol, minute, trades, volume, notional_cents)
       SELECT * FROM unnest($1::text[], $2::timestamptz[], $3::int[], $4::bigint[], $5::bigint[])
       ON CONFLICT (symbol, minute) DO UPDATE SET trades = v.trades + EXCLUDED.trades,
         volume = v.volume + EXCLUDED.volume, notional_cents = v.notional_cents + EXCLUDED.notional_cents`,
      [closed.map((m) => m.symbol), closed.map((m) => new Date(m.minute).toISOString()), closed.map((m) => m.trades), closed.map((m) => m.volume), closed.map((m) => m.notionalCents)]);
    await tx.query(
      `INSERT INTO vwap_open_minutes (consumer, topic, partition, state)
       SELECT $1, $2, p, s FROM unnest($3::int[], $4::jsonb[]) AS t(p, s)
       ON CONFLICT (consumer, topic, partition) DO UPDATE SET state = EXCLUDED.state`,
      [this.#group, this.#topic, [...saved.keys()], [...saved.values()].map((s) => JSON.stringify(s))]);
    return closed.length;
  }

  revoke(): void {
    this.#partitions = new Map();
    this.#closed = [];
    this.#changed = new Set();
  }
}

type Trade = { time: number; symbol: string; cents: number; qty: number };

/** A trade, or why the value is not one: a stable reason code and a line for people. */
function parseTrade(text: string | null): Trade | { reason: string; error: string } {
  let value: unknown;
  try {
    value = JSON.parse(text ?? '');
  } catch {
    return { reason: 'not-json', error: 'the value is not JSON' };
  }
  const { ts, symbol, price, qty } = (typeof value === 'object' && value !== null ? value : {}) as Record<string, unknown>;
  // The trades' one layout (the prices' strict rule), not every layout `stats` accepts.
  const time = typeof ts === 'string' ? parseTs(ts, { strictTs: true }) : Number.NaN;
  if (Number.isNaN(time)) return { reason: 'bad-ts', error: `ts must be a UTC time "yyyy-mm-dd hh:mm:ss[.fff]", got ${JSON.stringify(ts)}` };
  if (typeof symbol !== 'string' || !isSymbol(symbol)) return { reason: 'bad-symbol', error: `symbol must be 1–32 characters, got ${JSON.stringify(symbol)}` };
  const cents = typeof price === 'number' ? price * 100 : Number.NaN;
  if (!(cents >= 1) || Math.abs(cents - Math.round(cents)) > 1e-6) return { reason: 'bad-price', error: `price must be positive, in whole cents, got ${JSON.stringify(price)}` };
  if (typeof qty !== 'number' || !Number.isSafeInteger(qty) || qty <= 0) return { reason: 'bad-qty', error: `qty must be a positive integer, got ${JSON.stringify(qty)}` };
  return { time, symbol, cents: Math.round(cents), qty };
}

export interface VwapOptions extends Omit<StreamTaskOptions<Checkpoint>, 'pipeline' | 'topics' | 'processor' | 'db' | 'commit'> {
  topic: string;
  /** Rows, state and offsets are committed here in one transaction. */
  db: Database;
  /** How long after a minute's end its late trades still count (event time). */
  allowedLatenessMs?: number;
}

export async function runVwap({ topic, allowedLatenessMs = 5_000, deadLetterTopic = `${topic}-dead-letters`, ...task }: VwapOptions): Promise<StreamTaskReport> {
  await createVwapTables(task.db);
  await task.log.createTopics([{ name: deadLetterTopic, partitions: 1 }]);
  const processor = new VwapProcessor({ group: task.group, topic, allowedLatenessMs });
  return runStreamTask({ ...task, pipeline: 'vwap', topics: [topic], processor, deadLetterTopic });
}

if (import.meta.main) {
  const { values } = parseArgs({
    options: { brokers: { type: 'string', default: '127.0.0.1:9092' }, 'database-url': { type: 'string' }, topic: { type: 'string', default: 'trades' }, 'until-end': { type: 'boolean' } },
  });
  const log = new KafkaLog({ brokers: values.brokers.split(',') });
  const db = await openDatabase({ url: values['database-url'] ?? process.env.DATABASE_URL });
  const stop = new AbortController();
  process.once('SIGINT', () => stop.abort());
  const logger = { debug: () => undefined, info: (o: object, m: string) => console.error(m, o), warn: (o: object, m: string) => console.error(m, o) };
  try {
    console.log(await runVwap({ log, db, topic: values.topic, group: 'vwap', logger, signal: stop.signal, untilEnd: values['until-end'] }));
  } finally {
    await db.close();
    await log.close();
  }
}
