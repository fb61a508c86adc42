-- Subscriber preferences (README §Preferences): one row per stored layer — the global one (workflow_id '') and one
-- per workflow the subscriber changed. channels is a JSON object of the channels set at that layer
-- ({"email": false}); a channel absent from it, like a NULL enabled, has no value at that layer. Keyed by the app's
-- subscriber id, so a fan-out page loads its recipients' preferences with one IN query on the primary key.
CREATE TABLE subscriber_preferences (
    environment_id TEXT NOT NULL REFERENCES environments (id) ON DELETE CASCADE,
    subscriber_id TEXT NOT NULL,
    workflow_id TEXT NOT NULL,
    enabled INTEGER,
    channels TEXT NOT NULL,
    updated_at INTEGER NOT NULL,
    PRIMARY KEY (environment_id, subscriber_id, workflow_id)
);

-- Every change to a preference, with who made it and through which door (source 'api' or 'unsubscribe-link').
CREATE TABLE preference_changes (
    id TEXT PRIMARY KEY,
    environment_id TEXT NOT NULL REFERENCES environments (id) ON DELETE CASCADE,
    subscriber_id TEXT NOT NULL,
    workflow_id TEXT NOT NULL,
    enabled INTEGER,
    channels TEXT NOT NULL,
    source TEXT NOT NULL,
    actor TEXT NOT NULL,
    created_at INTEGER NOT NULL
);
CREATE INDEX preference_changes_subscriber ON preference_changes (environment_id, subscriber_id, id);

-- The per-environment key that seals one-click unsubscribe tokens (sealed itself like an integration credential),
-- created on first use.
ALTER TABLE environments ADD COLUMN unsubscribe_key TEXT;
