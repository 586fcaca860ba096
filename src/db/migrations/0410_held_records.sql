-- Records a pipeline holds back after consuming them: a price that waits for its symbol's
-- level to be decided, an event time ahead of its partition's stream (docs/prices.md,
-- docs/event-time.md). Their offsets are already committed, so the records themselves are
-- kept here, byte for byte, in the same transaction: a restart holds exactly what the
-- last commit held, and a record finally refused is dead-lettered as it came.
CREATE TABLE IF NOT EXISTS held_records (
  consumer    text   NOT NULL,
  topic       text   NOT NULL,
  partition   int    NOT NULL,
  "offset"    bigint NOT NULL,
  record_time bigint NOT NULL,
  key         bytea,
  value       bytea,
  -- [[name, base64 value], ...] in their order
  headers     jsonb  NOT NULL DEFAULT '[]',
  PRIMARY KEY (consumer, topic, partition, "offset")
);
