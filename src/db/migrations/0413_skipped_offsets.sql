-- Offsets a sink moved past that held no record for it: transaction markers and records of
-- aborted transactions (which a read_committed reader never gets), records removed by
-- compaction. They take offsets, so `monitor` counts them as accounted for:
-- next_offset − first_offset = accepted + invalid + late + dropped + skipped.
ALTER TABLE pipeline_counts ADD COLUMN IF NOT EXISTS skipped bigint NOT NULL DEFAULT 0;
