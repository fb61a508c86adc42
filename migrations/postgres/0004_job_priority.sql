-- Job priorities: workers claim due jobs of the most urgent class first — first delivery attempts and receipts (0),
-- then runs (1), then the backlog served oldest first: expansions, raw-send pages, retries (2) — so that a large
-- topic's deliveries start while its expansion continues and other triggers' deliveries do not wait behind it.
ALTER TABLE jobs ADD COLUMN priority INTEGER NOT NULL DEFAULT 1;
UPDATE jobs SET priority = 0 WHERE kind IN ('deliver', 'receipts');
UPDATE jobs SET priority = 2 WHERE kind IN ('expand', 'push');
DROP INDEX jobs_due;
CREATE INDEX jobs_due ON jobs (priority, run_at, id);
