-- The four tables written for every delivery (notifications, messages, deliveries, execution details) no longer check
-- their environment_id, nor execution details their notification_id, against the parent table on every row. Each
-- such check is a row lock query on the parent: eight per delivered push, about a tenth of the database's work in
-- a fan-out (docs/benchmarks.md, 5 December). Herald writes these ids itself from rows it has just read, and never
-- deletes an environment or a notification, so the cascades these constraints declared never ran. The constraints
-- that do cascade (a message's deliveries) stay.
ALTER TABLE notifications DROP CONSTRAINT IF EXISTS notifications_environment_id_fkey;
ALTER TABLE messages DROP CONSTRAINT IF EXISTS messages_environment_id_fkey;
ALTER TABLE deliveries DROP CONSTRAINT IF EXISTS deliveries_environment_id_fkey;
ALTER TABLE execution_details DROP CONSTRAINT IF EXISTS execution_details_environment_id_fkey;
ALTER TABLE execution_details DROP CONSTRAINT IF EXISTS execution_details_notification_id_fkey;
