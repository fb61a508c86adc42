-- When a delivery's current retry window began: its first attempt, or its last manual re-drive. The retry policy's
-- maximum age is measured from here.
ALTER TABLE deliveries ADD COLUMN window_started_at BIGINT;
CREATE INDEX deliveries_environment_provider ON deliveries (environment_id, provider_id, status, id);
