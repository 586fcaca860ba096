-- Records a pipeline dead-lettered, by reason (late, implausible-time, implausible-price,
-- bad-ts, ...), per partition, added in the same transaction as the partition's offsets
-- and pipeline_counts. `monitor --check` uses it to tell the share of late and implausible
-- records over what each consumer read (--max-late-share).
CREATE TABLE IF NOT EXISTS rejection_counts (
  consumer   text        NOT NULL,
  topic      text        NOT NULL,
  partition  int         NOT NULL,
  reason     text        NOT NULL,
  records    bigint      NOT NULL DEFAULT 0,
  updated_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (consumer, topic, partition, reason)
);
