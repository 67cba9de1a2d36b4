CREATE TABLE voice_connectors (
    id TEXT PRIMARY KEY,
    body TEXT NOT NULL,
    created_ms INTEGER NOT NULL
);
CREATE TABLE vc_settings (
    vc_id TEXT NOT NULL REFERENCES voice_connectors(id) ON DELETE CASCADE,
    kind TEXT NOT NULL,
    body TEXT NOT NULL,
    PRIMARY KEY (vc_id, kind)
);
CREATE TABLE termination_credentials (
    vc_id TEXT NOT NULL REFERENCES voice_connectors(id) ON DELETE CASCADE,
    username TEXT NOT NULL,
    realm TEXT NOT NULL,
    ha1_md5 TEXT NOT NULL,
    ha1_sha256 TEXT NOT NULL,
    PRIMARY KEY (vc_id, username)
);
CREATE TABLE phone_numbers (
    id TEXT PRIMARY KEY,
    vc_id TEXT,
    body TEXT NOT NULL
);
CREATE INDEX phone_numbers_vc ON phone_numbers(vc_id);
CREATE TABLE meetings (
    id TEXT PRIMARY KEY,
    client_request_token TEXT NOT NULL,
    body TEXT NOT NULL,
    created_ms INTEGER NOT NULL,
    last_audio_ms INTEGER NOT NULL
);
CREATE INDEX meetings_crt ON meetings(client_request_token);
CREATE TABLE attendees (
    id TEXT PRIMARY KEY,
    meeting_id TEXT NOT NULL REFERENCES meetings(id) ON DELETE CASCADE,
    external_user_id TEXT NOT NULL,
    capabilities TEXT NOT NULL,
    token_nonce TEXT NOT NULL,
    token_hash TEXT NOT NULL UNIQUE,
    created_ms INTEGER NOT NULL,
    UNIQUE (meeting_id, external_user_id)
);
