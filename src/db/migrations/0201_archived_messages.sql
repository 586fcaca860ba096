-- Every message `tickflow archive` has read, once: (topic, partition, offset) is the key,
-- so a replay or a restart can never add a second row. Header values are kept as text
-- when they are UTF-8, else base64 ({"key": k, "value": v} or {"key": k, "base64": v}),
-- in their original order.
CREATE TABLE IF NOT EXISTS archived_messages (
  topic        text        NOT NULL,
  partition    int         NOT NULL,
  "offset"     bigint      NOT NULL,
  key          bytea,
  value        bytea,
  headers      jsonb       NOT NULL DEFAULT '[]',
  record_time  timestamptz NOT NULL,
  archived_at  timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (topic, partition, "offset")
);
