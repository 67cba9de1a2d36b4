-- Where a voice connector's call audio is streamed (`voice-connector admin streaming set`):
-- a WebSocket URL, whether the socket may send audio back, and the URL streaming status
-- events are POSTed to. The row with vc_id '*' is the default for every connector.
CREATE TABLE streaming_targets (
    vc_id TEXT PRIMARY KEY,
    url TEXT NOT NULL,
    bidirectional BIGINT NOT NULL,
    notify_url TEXT,
    updated_ms BIGINT NOT NULL
);
