-- Counters of Centrifugo's limit_strategy.rate_limit (docs/api.md §Personalisation): pushes per key (a template over
-- the device, default its id) per fixed window of each policy's interval, across sends and across every Herald
-- process on the database. Rows of windows that ended more than a day ago are deleted by the dispatcher.
CREATE TABLE push_rate_counters (
    environment_id TEXT NOT NULL REFERENCES environments (id) ON DELETE CASCADE,
    key TEXT NOT NULL,
    interval_ms INTEGER NOT NULL,
    window_start INTEGER NOT NULL,
    count INTEGER NOT NULL,
    PRIMARY KEY (environment_id, key, interval_ms, window_start)
);
