-- The operator console (docs/console.md). A session is what signing in with an environment's secret key yields: the
-- cookie carries its id and an HMAC of it (the key never leaves the sign-in request). Revoking the key ends its
-- sessions (ON DELETE CASCADE for deletion; the session check joins api_keys for revocation).
CREATE TABLE console_sessions (
    id TEXT PRIMARY KEY,
    environment_id TEXT NOT NULL REFERENCES environments (id) ON DELETE CASCADE,
    api_key_id TEXT NOT NULL REFERENCES api_keys (id) ON DELETE CASCADE,
    csrf_token TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    revoked_at INTEGER
);
CREATE INDEX console_sessions_expiry ON console_sessions (expires_at);

-- Per-minute counters the console's overview draws (docs/console.md §Overview): triggers per workflow and delivery
-- transitions per provider and status. Written with the state change they count, in the same statement batch; a
-- counter row is split over shards so concurrent workers on PostgreSQL do not queue on one row lock. Kept 8 days.
CREATE TABLE console_stats (
    environment_id TEXT NOT NULL,
    minute INTEGER NOT NULL,
    metric TEXT NOT NULL,
    label TEXT NOT NULL,
    shard INTEGER NOT NULL,
    count INTEGER NOT NULL,
    PRIMARY KEY (environment_id, minute, metric, label, shard)
);

-- The console's Activity page filters by status newest first; without this a rare status scans every notification.
CREATE INDEX notifications_status ON notifications (environment_id, status, id);
