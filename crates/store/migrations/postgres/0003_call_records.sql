CREATE TABLE call_records (
    id TEXT PRIMARY KEY,
    vc_id TEXT NOT NULL,
    start_ms BIGINT NOT NULL,
    body TEXT NOT NULL
);
CREATE INDEX call_records_vc ON call_records(vc_id, id);
