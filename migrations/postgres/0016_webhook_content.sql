-- Status-webhook endpoints may opt in to the content of the messages their events are about (docs/webhooks.md §Event
-- payload): off by default, since a message body can hold personal data the receiver should not see.
ALTER TABLE webhook_endpoints ADD COLUMN include_content BOOLEAN NOT NULL DEFAULT FALSE;
