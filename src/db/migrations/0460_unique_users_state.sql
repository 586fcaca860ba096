-- Durable state of `unique-users` (--database-url, docs/users.md "Durable state"): snapshots
-- of the open windows (exact sets or sketches of every open window of every granularity, in
-- src/core/unique-users-state.ts's format) with, per input partition, the offset up to which
-- they hold its frames. Written before the Kafka transaction whose offset metadata names the
-- snapshot; a writer keeps the one it wrote before (which commits still being made may name)
-- and deletes older ones of the same partition set.
CREATE TABLE IF NOT EXISTS unique_users_state (
  consumer_group text        NOT NULL,
  topic          text        NOT NULL,
  snapshot_id    text        NOT NULL,
  seq            bigserial   NOT NULL,
  partitions     int[]       NOT NULL,   -- the member's partitions, ascending
  positions      bigint[]    NOT NULL,   -- per partition (same order): the next offset the state does not hold
  windows        int         NOT NULL CHECK (windows >= 0),
  state          bytea       NOT NULL,
  taken_at       timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (consumer_group, topic, snapshot_id)
);
CREATE INDEX IF NOT EXISTS unique_users_state_seq ON unique_users_state (consumer_group, topic, seq);
