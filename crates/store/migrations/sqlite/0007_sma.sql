-- Programmable calls (issue 13): SIP media applications and their settings documents
-- (logging, Alexa skill), SIP rules with one row per target application (so an application
-- a rule targets cannot be deleted), the function registry (Lambda ARN -> HTTP endpoint),
-- and the CreateSipMediaApplicationCall / UpdateSipMediaApplicationCall requests the call
-- flow takes up.
CREATE TABLE sip_media_applications (
    id TEXT PRIMARY KEY,
    body TEXT NOT NULL,
    created_ms BIGINT NOT NULL
);
CREATE TABLE sma_settings (
    sma_id TEXT NOT NULL REFERENCES sip_media_applications(id) ON DELETE CASCADE,
    kind TEXT NOT NULL,
    body TEXT NOT NULL,
    PRIMARY KEY (sma_id, kind)
);
CREATE TABLE sip_rules (
    id TEXT PRIMARY KEY,
    trigger_type TEXT NOT NULL,
    trigger_value TEXT NOT NULL,
    body TEXT NOT NULL,
    created_ms BIGINT NOT NULL,
    UNIQUE (trigger_type, trigger_value)
);
CREATE TABLE sip_rule_targets (
    rule_id TEXT NOT NULL REFERENCES sip_rules(id) ON DELETE CASCADE,
    sma_id TEXT NOT NULL REFERENCES sip_media_applications(id),
    priority BIGINT NOT NULL,
    PRIMARY KEY (rule_id, sma_id)
);
CREATE INDEX sip_rule_targets_sma ON sip_rule_targets(sma_id);
CREATE TABLE sma_functions (
    lambda_arn TEXT PRIMARY KEY,
    url TEXT NOT NULL,
    style TEXT NOT NULL,
    updated_ms BIGINT NOT NULL
);
CREATE TABLE sma_call_requests (
    id TEXT PRIMARY KEY,
    transaction_id TEXT NOT NULL,
    sma_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    body TEXT NOT NULL,
    created_ms BIGINT NOT NULL,
    taken_ms BIGINT
);
CREATE INDEX sma_call_requests_pending ON sma_call_requests(taken_ms, created_ms);
CREATE INDEX sma_call_requests_transaction ON sma_call_requests(transaction_id);
