-- The event-time guard of each partition a pipeline reads (docs/event-time.md): its stream
-- time, the times of the last records not yet agreed on, and the records it holds (their
-- event time, the stream time they were held at and their offset; the records themselves
-- are in held_records). Written in the same transaction as the partition's offsets.
CREATE TABLE IF NOT EXISTS event_time_guards (
  consumer   text        NOT NULL,
  topic      text        NOT NULL,
  partition  int         NOT NULL,
  state      jsonb       NOT NULL,
  updated_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (consumer, topic, partition)
);
