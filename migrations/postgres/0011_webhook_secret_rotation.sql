-- Zero-downtime secret rotation (docs/webhooks.md §Signature): after a rotation the previous secret keeps signing,
-- beside the new one, until previous_secret_expires_at, so a receiver can switch secrets without rejecting events.
ALTER TABLE webhook_endpoints ADD COLUMN previous_secret TEXT;
ALTER TABLE webhook_endpoints ADD COLUMN previous_secret_expires_at BIGINT;
