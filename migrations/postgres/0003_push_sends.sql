-- Raw provider-payload sends (Centrifugo send_push_notification): the analytics id that update_push_status names
-- (the send's uid unless the request gave one), and each delivery's device platform for the push statistics.
ALTER TABLE pushes ADD COLUMN analytics_uid TEXT;
CREATE INDEX pushes_analytics ON pushes (environment_id, analytics_uid);
ALTER TABLE deliveries ADD COLUMN platform TEXT;
-- update_push_status finds a send's delivery to one device; the statistics group a send's deliveries.
DROP INDEX deliveries_push;
CREATE INDEX deliveries_push_device ON deliveries (push_id, device_id);
