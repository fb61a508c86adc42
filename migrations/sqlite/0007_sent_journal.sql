-- Sends recorded as they come back (docs/reliability.md §Duplicates): a run job sends outside any transaction and
-- records every outcome in one commit at the end; the provider batches it has already seen accepted are written here
-- meanwhile, each in a small commit of its own, so that a worker killed before that end does not make the job's next
-- attempt send them again. Deliveries planned by a run have ids derived from what they send (notification, step,
-- integration, target), so the next attempt plans the same ids and finds them here. The run's commit deletes its rows.
CREATE TABLE sent_journal (
    delivery_id TEXT PRIMARY KEY,
    provider_message_id TEXT,
    created_at BIGINT NOT NULL
);
