-- The suppression list (README §Status webhooks, docs/webhooks.md §Suppression list): email addresses (lowercased) and
-- phone numbers a provider refused for good (an invalid or unsubscribed number, a hard bounce). Sends to them are
-- skipped before they reach a provider, until the entry is lifted (DELETE /v1/suppressions/{channel}/{address}).
CREATE TABLE suppressions (
    environment_id TEXT NOT NULL REFERENCES environments (id) ON DELETE CASCADE,
    channel TEXT NOT NULL,
    address TEXT NOT NULL,
    reason TEXT NOT NULL,
    provider_id TEXT,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (environment_id, channel, address)
);
