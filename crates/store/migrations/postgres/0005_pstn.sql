-- PSTN (issue 12): carrier trunks, their keep-alive status, voice connector groups, phone
-- numbers associated with a group, and the CDR fields of PSTN calls as columns.
CREATE TABLE carriers (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    body TEXT NOT NULL,
    updated_ms BIGINT NOT NULL
);
CREATE TABLE carrier_status (
    name TEXT PRIMARY KEY,
    up BIGINT NOT NULL,
    last_options_ms BIGINT,
    last_status BIGINT
);
CREATE TABLE vc_groups (
    id TEXT PRIMARY KEY,
    body TEXT NOT NULL,
    created_ms BIGINT NOT NULL
);
CREATE TABLE vc_group_members (
    group_id TEXT NOT NULL REFERENCES vc_groups(id) ON DELETE CASCADE,
    vc_id TEXT NOT NULL REFERENCES voice_connectors(id),
    priority BIGINT NOT NULL,
    PRIMARY KEY (group_id, vc_id)
);
CREATE INDEX vc_group_members_vc ON vc_group_members(vc_id);
ALTER TABLE phone_numbers ADD COLUMN group_id TEXT;
CREATE INDEX phone_numbers_group ON phone_numbers(group_id);
ALTER TABLE call_records ADD COLUMN direction TEXT;
ALTER TABLE call_records ADD COLUMN source_number TEXT;
ALTER TABLE call_records ADD COLUMN source_country TEXT;
ALTER TABLE call_records ADD COLUMN destination_number TEXT;
ALTER TABLE call_records ADD COLUMN destination_country TEXT;
ALTER TABLE call_records ADD COLUMN carrier TEXT;
ALTER TABLE call_records ADD COLUMN attempts TEXT;
ALTER TABLE call_records ADD COLUMN billable_seconds BIGINT;
