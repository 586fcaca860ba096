/**
 * The stocks aggregator's sink: emitted windows, open-window state, stream times and the
 * consumed offsets, all written in ONE transaction (see docs/stocks.md for why this is
 * exactly-once). Offsets and fencing are those of offset-store.ts.
 */
import type { PartitionSnapshot, TickerWindow } from '../core/stock-windows.ts';
import { claimInTransaction, saveOffsets } from './offset-store.ts';
import { addCounts } from './pipeline-counts.ts';
import type { PartitionCounts } from './pipeline-counts.ts';
import type { Database, Queryable } from './types.ts';

export interface StockPartitionClaim {
  /** Fencing token for every later commit on these partitions. */
  generation: number;
  /** The next offset to read, for every claimed partition. */
  offsets: Map<number, bigint>;
  /** Stream time and open windows to resume with, for every claimed partition. */
  snapshots: Map<number, PartitionSnapshot>;
}

/**
 * Takes over `starts`' partitions (partition → where to start if nothing is stored) for
 * `consumer` with a fresh generation (offset-store's claim, which also writes a row for
 * partitions that have none, so a previous owner that never committed is fenced too),
 * and returns where each resumes with its open windows.
 */
export async function claimStockPartitions(db: Database, consumer: string, topic: string, starts: ReadonlyMap<number, bigint>): Promise<StockPartitionClaim> {
  const partitions = [...starts.keys()];
  return db.transaction(async (tx) => {
    const { generation, offsets } = await claimInTransaction(tx, consumer, topic, partitions, starts);
    const snapshots = await loadStockSnapshots(tx, consumer, topic, partitions);
    return { generation, offsets, snapshots };
  });
}

interface StateRow {
  partition: number;
  ticker: string;
  window_start: Date;
  window_end: Date;
  sample_count: string;
  price_sum: string;
  price_min: string;
  price_max: string;
}

/** Stream time and open windows of the partitions, as last committed. */
export async function loadStockSnapshots(tx: Queryable, consumer: string, topic: string, partitions: number[]): Promise<Map<number, PartitionSnapshot>> {
  const clocks = await tx.query<{ partition: number; stream_time: Date }>(
    'SELECT partition, stream_time FROM stock_partition_clock WHERE consumer = $1 AND topic = $2 AND partition = ANY($3::int[])',
    [consumer, topic, partitions],
  );
  const state = await tx.query<StateRow>(
    `SELECT partition, ticker, window_start, window_end, sample_count, price_sum, price_min, price_max
     FROM stock_window_state WHERE consumer = $1 AND topic = $2 AND partition = ANY($3::int[])
     ORDER BY partition, window_start, ticker`,
    [consumer, topic, partitions],
  );
  const snapshots = new Map<number, { streamTime: number | null; open: TickerWindow[] }>();
  for (const partition of partitions) snapshots.set(partition, { streamTime: null, open: [] });
  for (const row of clocks.rows) snapshots.get(row.partition)!.streamTime = row.stream_time.getTime();
  for (const row of state.rows) {
    snapshots.get(row.partition)!.open.push({
      ticker: row.ticker,
      start: row.window_start.getTime(),
      end: row.window_end.getTime(),
      summary: { count: Number(row.sample_count), sum: Number(row.price_sum), min: Number(row.price_min), max: Number(row.price_max) },
    });
  }
  return snapshots;
}

export interface StockCommit {
  consumer: string;
  topic: string;
  generation: number;
  /** Next offset of every partition this commit covers. */
  offsets: ReadonlyMap<number, bigint>;
  /** The state of the same partitions after the records up to those offsets (stream time and open windows). */
  snapshots: ReadonlyMap<number, Pick<PartitionSnapshot<unknown>, 'streamTime' | 'open'>>;
  /** Closed windows to add into stock_windows, one per (ticker, start). */
  closed: readonly TickerWindow[];
  /** What happened to the records up to those offsets (for `monitor`'s accounting). */
  counts?: ReadonlyMap<number, PartitionCounts>;
}

/**
 * One transaction: the offsets first (FENCED if a newer owner claimed any of the
 * partitions — then nothing of this commit stays), then the closed windows added to
 * their rows, then the partitions' open windows and stream times replaced.
 */
export async function commitStockWindows(db: Database, commit: StockCommit): Promise<void> {
  await db.transaction(async (tx) => {
    await saveOffsets(tx, commit.consumer, commit.topic, new Map(commit.offsets), commit.generation);
    if (commit.counts) await addCounts(tx, commit.consumer, commit.topic, commit.counts);
    await writeStockWindows(tx, commit);
  });
}

/** The closed windows added to their rows, then the partitions' open windows and stream times replaced. */
export async function writeStockWindows(tx: Queryable, commit: Pick<StockCommit, 'consumer' | 'topic' | 'snapshots' | 'closed'>): Promise<void> {
  const { consumer, topic } = commit;
  const partitions = [...commit.snapshots.keys()];
  if (commit.closed.length > 0) {
    const c = columns(commit.closed);
    // Parts of one window from several partitions or members add up; min/max combine.
    await tx.query(
      `INSERT INTO stock_windows AS w (ticker, window_start, window_end, sample_count, price_sum, price_min, price_max)
       SELECT * FROM unnest($1::text[], $2::timestamptz[], $3::timestamptz[], $4::bigint[], $5::bigint[], $6::bigint[], $7::bigint[])
       ON CONFLICT (ticker, window_start) DO UPDATE SET
         sample_count = w.sample_count + EXCLUDED.sample_count,
         price_sum    = w.price_sum + EXCLUDED.price_sum,
         price_min    = least(w.price_min, EXCLUDED.price_min),
         price_max    = greatest(w.price_max, EXCLUDED.price_max),
         updated_at   = now()`,
      [c.tickers, c.starts, c.ends, c.counts, c.sums, c.mins, c.maxes],
    );
  }
  if (partitions.length === 0) return;
  await tx.query('DELETE FROM stock_window_state WHERE consumer = $1 AND topic = $2 AND partition = ANY($3::int[])', [consumer, topic, partitions]);
  const open = [...commit.snapshots].flatMap(([partition, snapshot]) => snapshot.open.map((w) => ({ partition, w })));
  if (open.length > 0) {
    const c = columns(open.map((o) => o.w));
    await tx.query(
      `INSERT INTO stock_window_state (consumer, topic, partition, ticker, window_start, window_end, sample_count, price_sum, price_min, price_max)
       SELECT $1, $2, * FROM unnest($3::int[], $4::text[], $5::timestamptz[], $6::timestamptz[], $7::bigint[], $8::bigint[], $9::bigint[], $10::bigint[])`,
      [consumer, topic, open.map((o) => o.partition), c.tickers, c.starts, c.ends, c.counts, c.sums, c.mins, c.maxes],
    );
  }
  const clocks = [...commit.snapshots].filter(([, s]) => s.streamTime !== null);
  if (clocks.length > 0) {
    await tx.query(
      `INSERT INTO stock_partition_clock (consumer, topic, partition, stream_time)
       SELECT $1, $2, * FROM unnest($3::int[], $4::timestamptz[])
       ON CONFLICT (consumer, topic, partition) DO UPDATE SET stream_time = EXCLUDED.stream_time`,
      [consumer, topic, clocks.map(([p]) => p), clocks.map(([, s]) => new Date(s.streamTime!).toISOString())],
    );
  }
}

function columns(windows: readonly TickerWindow[]) {
  return {
    tickers: windows.map((w) => w.ticker),
    starts: windows.map((w) => new Date(w.start).toISOString()),
    ends: windows.map((w) => new Date(w.end).toISOString()),
    counts: windows.map((w) => String(w.summary.count)),
    sums: windows.map((w) => String(w.summary.sum)),
    mins: windows.map((w) => String(w.summary.min)),
    maxes: windows.map((w) => String(w.summary.max)),
  };
}
