-- Herald schema, SQLite dialect. Kept in step with postgres/0001_initial_schema.sql: same tables, columns and
-- indexes; only types differ (INTEGER for BIGINT/BOOLEAN). Timestamps are milliseconds since the Unix epoch.
-- JSON columns hold compact JSON text. Record ids are 24-hex ObjectId-like strings that sort by creation time.

-- Instance-wide settings (e.g. the fingerprint of the credential encryption key).
CREATE TABLE instance_settings (
    name TEXT PRIMARY KEY,
    value TEXT NOT NULL
);

CREATE TABLE environments (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    created_at INTEGER NOT NULL
);

-- Secret keys: only the SHA-256 of the key is stored, plus a prefix to recognise it.
CREATE TABLE api_keys (
    id TEXT PRIMARY KEY,
    environment_id TEXT NOT NULL REFERENCES environments (id) ON DELETE CASCADE,
    key_hash TEXT NOT NULL UNIQUE,
    prefix TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    last_used_at INTEGER,
    revoked_at INTEGER
);
CREATE INDEX api_keys_environment ON api_keys (environment_id);

-- Provider instances. credentials is a JSON object of field name -> "v1:<base64(nonce|ciphertext|tag)>",
-- AES-GCM with the integration id and field name bound as associated data.
CREATE TABLE integrations (
    id TEXT PRIMARY KEY,
    environment_id TEXT NOT NULL REFERENCES environments (id) ON DELETE CASCADE,
    provider_id TEXT NOT NULL,
    channel TEXT NOT NULL,
    name TEXT NOT NULL,
    identifier TEXT NOT NULL,
    active INTEGER NOT NULL DEFAULT 1,
    is_primary INTEGER NOT NULL DEFAULT 0,
    credentials TEXT NOT NULL DEFAULT '{}',
    conditions TEXT NOT NULL DEFAULT '[]',
    configurations TEXT NOT NULL DEFAULT '{}',
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    UNIQUE (environment_id, identifier)
);
CREATE INDEX integrations_channel ON integrations (environment_id, channel, active);

CREATE TABLE subscribers (
    id TEXT PRIMARY KEY,
    environment_id TEXT NOT NULL REFERENCES environments (id) ON DELETE CASCADE,
    subscriber_id TEXT NOT NULL,
    first_name TEXT,
    last_name TEXT,
    email TEXT,
    phone TEXT,
    avatar TEXT,
    locale TEXT,
    timezone TEXT,
    data TEXT,
    is_online INTEGER,
    last_online_at INTEGER,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    UNIQUE (environment_id, subscriber_id)
);
CREATE INDEX subscribers_page ON subscribers (environment_id, id);
CREATE INDEX subscribers_email ON subscribers (environment_id, email);
CREATE INDEX subscribers_phone ON subscribers (environment_id, phone);

-- Channel credentials of a subscriber for one integration other than push tokens (chat webhookUrl, channel, …).
-- Push tokens live in devices. subscriber_id is the app's id (devices and topics may name users that have no
-- subscriber row, e.g. Centrifugo users).
CREATE TABLE subscriber_channels (
    id TEXT PRIMARY KEY,
    environment_id TEXT NOT NULL REFERENCES environments (id) ON DELETE CASCADE,
    subscriber_id TEXT NOT NULL,
    integration_id TEXT NOT NULL REFERENCES integrations (id) ON DELETE CASCADE,
    provider_id TEXT NOT NULL,
    credentials TEXT NOT NULL DEFAULT '{}',
    active INTEGER NOT NULL DEFAULT 1,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    UNIQUE (environment_id, subscriber_id, integration_id)
);
CREATE INDEX subscriber_channels_integration ON subscriber_channels (integration_id);

-- The device registry: one row per push token, unique per (environment, provider, token).
CREATE TABLE devices (
    id TEXT PRIMARY KEY,
    environment_id TEXT NOT NULL REFERENCES environments (id) ON DELETE CASCADE,
    provider TEXT NOT NULL,
    token TEXT NOT NULL,
    integration_id TEXT REFERENCES integrations (id) ON DELETE SET NULL,
    platform TEXT,
    subscriber_id TEXT,
    tags TEXT NOT NULL DEFAULT '{}',
    meta TEXT NOT NULL DEFAULT '{}',
    timezone TEXT,
    locale TEXT,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    last_success_at INTEGER,
    UNIQUE (environment_id, provider, token)
);
CREATE INDEX devices_subscriber ON devices (environment_id, subscriber_id, integration_id);
CREATE INDEX devices_integration ON devices (integration_id);
CREATE INDEX devices_page ON devices (environment_id, id);

CREATE TABLE topics (
    id TEXT PRIMARY KEY,
    environment_id TEXT NOT NULL REFERENCES environments (id) ON DELETE CASCADE,
    key TEXT NOT NULL,
    name TEXT,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    UNIQUE (environment_id, key)
);
CREATE INDEX topics_page ON topics (environment_id, id);

-- Subscriber-level topic membership (Novu topic subscriptions = Centrifugo user topics). The unique index serves
-- the fan-out: members of a topic in subscriber_id order, keyset-paginated.
CREATE TABLE topic_subscriptions (
    id TEXT PRIMARY KEY,
    environment_id TEXT NOT NULL REFERENCES environments (id) ON DELETE CASCADE,
    topic_key TEXT NOT NULL,
    subscriber_id TEXT NOT NULL,
    identifier TEXT,
    name TEXT,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    UNIQUE (environment_id, topic_key, subscriber_id)
);
CREATE INDEX topic_subscriptions_subscriber ON topic_subscriptions (environment_id, subscriber_id, topic_key);
-- Novu v2 subscription listings page by subscription id within a topic.
CREATE INDEX topic_subscriptions_page ON topic_subscriptions (environment_id, topic_key, id);

-- Device-level topic membership (Centrifugo device topics).
CREATE TABLE device_topics (
    device_id TEXT NOT NULL REFERENCES devices (id) ON DELETE CASCADE,
    environment_id TEXT NOT NULL REFERENCES environments (id) ON DELETE CASCADE,
    topic TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (device_id, topic)
);
CREATE INDEX device_topics_topic ON device_topics (environment_id, topic, device_id);

-- One trigger request (Novu event). transaction_id is unique per environment; request_hash and response let the
-- same id with the same body replay the first answer. cursor checkpoints topic expansion.
CREATE TABLE events (
    id TEXT PRIMARY KEY,
    environment_id TEXT NOT NULL REFERENCES environments (id) ON DELETE CASCADE,
    transaction_id TEXT NOT NULL,
    workflow_id TEXT NOT NULL,
    request_hash TEXT NOT NULL,
    response TEXT,
    payload TEXT NOT NULL DEFAULT '{}',
    recipients TEXT NOT NULL DEFAULT '[]',
    actor TEXT,
    tenant TEXT,
    overrides TEXT NOT NULL DEFAULT '{}',
    status TEXT NOT NULL,
    cursor TEXT,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    UNIQUE (environment_id, transaction_id)
);
CREATE INDEX events_recent ON events (environment_id, id);

-- One event x one subscriber; state is the executor's persisted state (delays, digests, step results).
CREATE TABLE notifications (
    id TEXT PRIMARY KEY,
    environment_id TEXT NOT NULL REFERENCES environments (id) ON DELETE CASCADE,
    event_id TEXT NOT NULL REFERENCES events (id) ON DELETE CASCADE,
    transaction_id TEXT NOT NULL,
    workflow_id TEXT NOT NULL,
    subscriber_id TEXT NOT NULL,
    topic_key TEXT,
    status TEXT NOT NULL,
    state TEXT NOT NULL DEFAULT '{}',
    channels TEXT NOT NULL DEFAULT '[]',
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    UNIQUE (event_id, subscriber_id)
);
CREATE INDEX notifications_recent ON notifications (environment_id, id);
CREATE INDEX notifications_transaction ON notifications (environment_id, transaction_id);
CREATE INDEX notifications_subscriber ON notifications (environment_id, subscriber_id, id);

-- One channel step x one integration for a notification (Novu message).
CREATE TABLE messages (
    id TEXT PRIMARY KEY,
    environment_id TEXT NOT NULL REFERENCES environments (id) ON DELETE CASCADE,
    notification_id TEXT NOT NULL REFERENCES notifications (id) ON DELETE CASCADE,
    transaction_id TEXT NOT NULL,
    workflow_id TEXT NOT NULL,
    subscriber_id TEXT NOT NULL,
    step_id TEXT NOT NULL,
    channel TEXT NOT NULL,
    integration_id TEXT,
    provider_id TEXT,
    status TEXT NOT NULL,
    title TEXT,
    subject TEXT,
    content TEXT,
    payload TEXT,
    overrides TEXT,
    device_tokens TEXT,
    email TEXT,
    phone TEXT,
    direct_webhook_url TEXT,
    error_id TEXT,
    error_text TEXT,
    is_read INTEGER NOT NULL DEFAULT 0,
    is_seen INTEGER NOT NULL DEFAULT 0,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);
CREATE INDEX messages_recent ON messages (environment_id, id);
CREATE INDEX messages_transaction ON messages (environment_id, transaction_id);
CREATE INDEX messages_subscriber ON messages (environment_id, subscriber_id, id);
CREATE INDEX messages_notification ON messages (notification_id);

-- Raw provider-payload sends (Centrifugo send_push_notification); uid is idempotent per environment.
CREATE TABLE pushes (
    id TEXT PRIMARY KEY,
    environment_id TEXT NOT NULL REFERENCES environments (id) ON DELETE CASCADE,
    uid TEXT NOT NULL,
    request TEXT NOT NULL,
    status TEXT NOT NULL,
    send_at INTEGER,
    expire_at INTEGER,
    cursor TEXT,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    UNIQUE (environment_id, uid)
);

-- One provider call for one device or address, with its outcome. device_id has no foreign key: the record stays
-- when an invalid token's device is removed.
CREATE TABLE deliveries (
    id TEXT PRIMARY KEY,
    environment_id TEXT NOT NULL REFERENCES environments (id) ON DELETE CASCADE,
    message_id TEXT REFERENCES messages (id) ON DELETE CASCADE,
    push_id TEXT REFERENCES pushes (id) ON DELETE CASCADE,
    device_id TEXT,
    integration_id TEXT,
    provider_id TEXT NOT NULL,
    target TEXT NOT NULL,
    status TEXT NOT NULL,
    outcome TEXT,
    attempts INTEGER NOT NULL DEFAULT 0,
    provider_message_id TEXT,
    error_code TEXT,
    error_text TEXT,
    next_attempt_at INTEGER,
    push_status TEXT,
    push_status_at INTEGER,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);
CREATE INDEX deliveries_status ON deliveries (environment_id, status, id);
CREATE INDEX deliveries_message ON deliveries (message_id);
CREATE INDEX deliveries_push ON deliveries (push_id);

-- Append-only activity trail (Novu execution details).
CREATE TABLE execution_details (
    id TEXT PRIMARY KEY,
    environment_id TEXT NOT NULL REFERENCES environments (id) ON DELETE CASCADE,
    notification_id TEXT REFERENCES notifications (id) ON DELETE CASCADE,
    push_id TEXT REFERENCES pushes (id) ON DELETE CASCADE,
    message_id TEXT,
    delivery_id TEXT,
    step_id TEXT,
    provider_id TEXT,
    status TEXT NOT NULL,
    detail TEXT NOT NULL,
    source TEXT NOT NULL,
    is_retry INTEGER NOT NULL DEFAULT 0,
    raw TEXT,
    created_at INTEGER NOT NULL
);
CREATE INDEX execution_details_notification ON execution_details (notification_id, id);
CREATE INDEX execution_details_push ON execution_details (push_id, id);

-- Open digest windows: one per (workflow, step, subscriber, rendered key) while open.
CREATE TABLE digests (
    id TEXT PRIMARY KEY,
    environment_id TEXT NOT NULL REFERENCES environments (id) ON DELETE CASCADE,
    workflow_id TEXT NOT NULL,
    step_id TEXT NOT NULL,
    subscriber_id TEXT NOT NULL,
    digest_key TEXT NOT NULL,
    notification_id TEXT NOT NULL,
    closes_at INTEGER NOT NULL,
    event_count INTEGER NOT NULL DEFAULT 0,
    events TEXT NOT NULL DEFAULT '[]',
    status TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);
CREATE UNIQUE INDEX digests_open ON digests (environment_id, workflow_id, step_id, subscriber_id, digest_key)
    WHERE status = 'open';

-- The durable queue. run_at is when a job is due; a claim moves run_at to the lease's expiry, so a job whose
-- worker died is simply due again. Completed jobs are deleted.
CREATE TABLE jobs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    environment_id TEXT,
    kind TEXT NOT NULL,
    payload TEXT NOT NULL,
    transaction_id TEXT,
    run_at INTEGER NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    lease_token TEXT,
    leased_at INTEGER,
    last_error TEXT,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);
CREATE INDEX jobs_due ON jobs (run_at, id);
CREATE INDEX jobs_transaction ON jobs (environment_id, transaction_id) WHERE transaction_id IS NOT NULL;

-- Idempotency-Key replays (POST/PATCH), kept 24 h.
CREATE TABLE idempotency_keys (
    environment_id TEXT NOT NULL REFERENCES environments (id) ON DELETE CASCADE,
    key TEXT NOT NULL,
    request_hash TEXT NOT NULL,
    state TEXT NOT NULL,
    status_code INTEGER,
    response_headers TEXT,
    response_body TEXT,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    PRIMARY KEY (environment_id, key)
);
CREATE INDEX idempotency_keys_expiry ON idempotency_keys (expires_at);
