-- Carrier registration (issue 12): what the last REGISTER to each carrier with --register
-- got, written by the SIP edge, shown by `admin carriers list`.
CREATE TABLE carrier_registration (
    name TEXT PRIMARY KEY,
    state TEXT NOT NULL,
    last_status BIGINT,
    expires_ms BIGINT,
    updated_ms BIGINT NOT NULL
);
