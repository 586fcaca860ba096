-- What each exactly-once sink did with the records it consumed, per partition, updated in
-- the same transaction as its stored offsets. `monitor` reconciles them:
--   next_offset - first_offset = accepted + invalid + late + dropped
CREATE TABLE IF NOT EXISTS pipeline_counts (
  consumer     text        NOT NULL,
  topic        text        NOT NULL,
  partition    int         NOT NULL,
  first_offset bigint      NOT NULL,
  accepted     bigint      NOT NULL DEFAULT 0,
  invalid      bigint      NOT NULL DEFAULT 0,
  late         bigint      NOT NULL DEFAULT 0,
  dropped      bigint      NOT NULL DEFAULT 0,
  updated_at   timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (consumer, topic, partition)
);
