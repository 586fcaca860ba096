-- Consumed offsets of sinks that commit their output and their position in one
-- Postgres transaction (exactly-once). next_offset is the NEXT offset to read.
-- generation fences stale instances after a rebalance (see offset-store.ts).
CREATE TABLE IF NOT EXISTS stored_offsets (
  consumer    text        NOT NULL,
  topic       text        NOT NULL,
  partition   int         NOT NULL,
  next_offset bigint      NOT NULL,
  generation  int         NOT NULL DEFAULT 0,
  updated_at  timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (consumer, topic, partition)
);
