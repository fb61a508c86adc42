-- Worker liveness: every process that runs queue workers registers here and heartbeats every second; a claimed job
-- names its worker. A worker whose heartbeat is older than the timeout is dead: any live worker makes its jobs due
-- again in one statement, so a crash is taken over in seconds rather than when a job's lease runs out.
CREATE TABLE workers (
    id TEXT PRIMARY KEY,
    host TEXT NOT NULL,
    pid INTEGER NOT NULL,
    started_at BIGINT NOT NULL,
    heartbeat_at BIGINT NOT NULL
);
ALTER TABLE jobs ADD COLUMN worker_id TEXT;
CREATE INDEX jobs_worker ON jobs (worker_id) WHERE worker_id IS NOT NULL;
