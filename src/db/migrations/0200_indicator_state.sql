-- Per-symbol state of `tickflow indicators`, per input partition: the EMA and the
-- volatility window (an IndicatorSnapshot as JSON; every number round-trips exactly).
-- Written in the same transaction as the consumer's stored_offsets row, so state and
-- position always agree; `consumer` is the consumer group.
CREATE TABLE IF NOT EXISTS indicator_state (
  consumer   text        NOT NULL,
  topic      text        NOT NULL,
  partition  int         NOT NULL,
  symbol     text        NOT NULL,
  state      jsonb       NOT NULL,
  updated_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (consumer, topic, partition, symbol)
);
