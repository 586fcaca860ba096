-- Durable state of `unique-users` as chains (docs/users.md "Durable state"): a snapshot may be
-- a delta on the one its writer wrote before (parent_id), holding of each exact set only the
-- members added since. A restart reads the named snapshot and its parents down to a full one.
ALTER TABLE unique_users_state ADD COLUMN IF NOT EXISTS parent_id text;
