-- The retention sweep deletes call records by start time.
CREATE INDEX call_records_start ON call_records(start_ms);
