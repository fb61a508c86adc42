-- Fan-out writes fewer index entries. Deliveries of workflow steps have no raw send (`push_id` is NULL): the index
-- that finds a raw send's deliveries by device now holds raw-send deliveries only, instead of one entry per workflow
-- delivery in device order (a random-order insert for every delivery). Execution details are read by notification
-- only; raw sends keep no activity trail, so their index by raw send had no reader.
DROP INDEX deliveries_push_device;
CREATE INDEX deliveries_push_device ON deliveries (push_id, device_id) WHERE push_id IS NOT NULL;
DROP INDEX execution_details_push;
