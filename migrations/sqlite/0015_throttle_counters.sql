-- Counters of workflow throttle steps (docs/workflows.md §Throttle): runs counted per workflow, step and rendered key
-- in fixed windows, across every Herald process on the database. Rows of windows that ended more than a day ago are
-- deleted by the dispatcher.
CREATE TABLE throttle_counters (
    environment_id TEXT NOT NULL REFERENCES environments (id) ON DELETE CASCADE,
    workflow_id TEXT NOT NULL,
    step_id TEXT NOT NULL,
    key TEXT NOT NULL,
    window_start INTEGER NOT NULL,
    window_ms INTEGER NOT NULL,
    count INTEGER NOT NULL,
    PRIMARY KEY (environment_id, workflow_id, step_id, key, window_start)
);
