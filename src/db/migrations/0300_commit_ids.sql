-- The id of the runtime commit that last wrote each stored offset. A commit whose
-- connection broke after PostgreSQL committed it is retried by the runtime; finding its
-- id here tells the retry that the first attempt already landed (nothing is written twice).
ALTER TABLE stored_offsets ADD COLUMN IF NOT EXISTS commit_id text;
