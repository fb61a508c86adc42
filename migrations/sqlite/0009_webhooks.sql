-- Outbound status webhooks (README §Status webhooks, docs/webhooks.md). An endpoint receives the events whose type
-- matches one of event_types (JSON array of types and `prefix.*` patterns) and, when workflow_ids (JSON array) is
-- set, only events of those workflows. Its secret is sealed like an integration credential. failing_since is the
-- first failure of the current failing streak; disabled endpoints keep their events pending for replay.
CREATE TABLE webhook_endpoints (
    id TEXT PRIMARY KEY,
    environment_id TEXT NOT NULL REFERENCES environments (id) ON DELETE CASCADE,
    url TEXT NOT NULL,
    description TEXT,
    event_types TEXT NOT NULL,
    workflow_ids TEXT,
    secret TEXT NOT NULL,
    disabled INTEGER NOT NULL DEFAULT 0,
    disabled_reason TEXT,
    failing_since INTEGER,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);
CREATE INDEX webhook_endpoints_environment ON webhook_endpoints (environment_id, id);

-- One row per event and endpoint, written in the transaction of the state change it reports; its id is the stable
-- `webhook-id` of every attempt. status: pending, delivered, dead.
CREATE TABLE webhook_messages (
    id TEXT PRIMARY KEY,
    environment_id TEXT NOT NULL REFERENCES environments (id) ON DELETE CASCADE,
    endpoint_id TEXT NOT NULL REFERENCES webhook_endpoints (id) ON DELETE CASCADE,
    event_type TEXT NOT NULL,
    payload TEXT NOT NULL,
    status TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    last_status INTEGER,
    last_error TEXT,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);
CREATE INDEX webhook_messages_endpoint ON webhook_messages (endpoint_id, id);
