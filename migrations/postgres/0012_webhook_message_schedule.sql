-- Each status-webhook event keeps its own schedule (docs/webhooks.md §Delivery and retries): when it may be tried next
-- (a Retry-After of one event does not hold back, nor is overridden by, another's), and when its current window of
-- attempts started — its creation, or its last replay, so that a replayed event gets the whole retry period again.
ALTER TABLE webhook_messages ADD COLUMN next_attempt_at BIGINT;
ALTER TABLE webhook_messages ADD COLUMN window_started_at BIGINT;
