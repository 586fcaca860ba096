-- Unique users over any range (GET /v1/unique-users): each emitted minute of `unique-users`
-- as a HyperLogLog sketch (src/core/sketch-bytes.ts: versioned, sparse or 6-bit dense,
-- precision 12 → at most 3 KiB), with its frames, its late count and, when the minute was
-- counted exactly, its exact count. Writing a minute again replaces it.
CREATE TABLE IF NOT EXISTS user_minute_sketches (
  minute_start bigint      PRIMARY KEY CHECK (minute_start % 60 = 0), -- unix seconds
  frames       bigint      NOT NULL CHECK (frames >= 0),
  late         bigint      NOT NULL CHECK (late >= 0),
  exact_users  bigint      CHECK (exact_users >= 0),                   -- null: the minute was a sketch
  sketch       bytea       NOT NULL,
  updated_at   timestamptz NOT NULL DEFAULT now()
);

-- Rollups of whole UTC quarter hours (seconds = 900), hours (3600), 3-hour blocks (10800)
-- and days (86400): the merge of the stored minutes they span, rewritten in the
-- transaction that writes any of those minutes, so a year reads ~365 rows instead of
-- 525,600 and a day of a zone off UTC ~10. exact_users is set only when the rollup holds a
-- single minute that was counted exactly.
CREATE TABLE IF NOT EXISTS user_sketch_rollups (
  seconds     int         NOT NULL CHECK (seconds IN (900, 3600, 10800, 86400)),
  start       bigint      NOT NULL CHECK (start % seconds = 0),       -- unix seconds
  minutes     int         NOT NULL CHECK (minutes > 0),
  frames      bigint      NOT NULL CHECK (frames >= 0),
  late        bigint      NOT NULL CHECK (late >= 0),
  exact_users bigint      CHECK (exact_users >= 0),
  sketch      bytea       NOT NULL,
  updated_at  timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (seconds, start)
);

-- Keep sketches in the row: a dense precision-12 sketch (3 KiB) would otherwise go out of
-- line to TOAST (beyond ~2 KB), costing an index probe and two chunk reads per row read;
-- compressing it gains nothing (registers look random). MAIN still moves a value out of
-- line when the row cannot fit a page (a dense precision-14 sketch, 12 KiB).
ALTER TABLE user_minute_sketches ALTER COLUMN sketch SET STORAGE MAIN;
ALTER TABLE user_minute_sketches SET (toast_tuple_target = 8160);
ALTER TABLE user_sketch_rollups ALTER COLUMN sketch SET STORAGE MAIN;
ALTER TABLE user_sketch_rollups SET (toast_tuple_target = 8160);
