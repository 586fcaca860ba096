-- Stocks: per-ticker price aggregates over tumbling event-time windows (aggregate stocks)
-- and what the aggregator needs to be exactly-once across crashes and rebalances.

-- One row per (ticker, window). Sum, count, min and max are stored so the average is
-- exact (avg_price = price_sum / sample_count in numeric) and so parts of one window
-- coming from several partitions add up (see docs/stocks.md).
CREATE TABLE IF NOT EXISTS stock_windows (
  ticker       text        NOT NULL,
  window_start timestamptz NOT NULL,
  window_end   timestamptz NOT NULL,
  sample_count bigint      NOT NULL CHECK (sample_count > 0),
  price_sum    bigint      NOT NULL,
  price_min    bigint      NOT NULL,
  price_max    bigint      NOT NULL,
  avg_price    numeric     GENERATED ALWAYS AS (price_sum::numeric / sample_count) STORED,
  updated_at   timestamptz NOT NULL DEFAULT now(),
  CHECK (window_end > window_start),
  -- The primary key is also the API's index: per ticker, ordered by time.
  PRIMARY KEY (ticker, window_start)
);

-- Open (not yet emitted) windows of each partition, written in the same transaction as
-- the partition's stored offset: every record before the stored offset is either in an
-- emitted stock_windows row or here, never both, never neither.
CREATE TABLE IF NOT EXISTS stock_window_state (
  consumer     text        NOT NULL,
  topic        text        NOT NULL,
  partition    int         NOT NULL,
  ticker       text        NOT NULL,
  window_start timestamptz NOT NULL,
  window_end   timestamptz NOT NULL,
  sample_count bigint      NOT NULL,
  price_sum    bigint      NOT NULL,
  price_min    bigint      NOT NULL,
  price_max    bigint      NOT NULL,
  PRIMARY KEY (consumer, topic, partition, window_start, ticker)
);

-- Each partition's stream time (max event time, or where the idle timer moved it), so a
-- restarted aggregator judges lateness exactly as the one before it.
CREATE TABLE IF NOT EXISTS stock_partition_clock (
  consumer    text        NOT NULL,
  topic       text        NOT NULL,
  partition   int         NOT NULL,
  stream_time timestamptz NOT NULL,
  PRIMARY KEY (consumer, topic, partition)
);
