-- Scale-out (issue 16): the node registry and meeting placement.
-- A node's row is written at start and by its heartbeat every second, with its load; a node
-- whose heartbeat is older than --node-dead-after is dead. `draining` is 1 once it drains.
CREATE TABLE nodes (
    id TEXT PRIMARY KEY,
    advertise_sip TEXT,
    advertise_http TEXT,
    media_ip TEXT,
    started_ms BIGINT NOT NULL,
    heartbeat_ms BIGINT NOT NULL,
    legs BIGINT NOT NULL,
    meetings BIGINT NOT NULL,
    cpu_permille BIGINT NOT NULL,
    draining BIGINT NOT NULL
);
-- The node hosting a meeting's media, chosen at its first join (NULL: not placed yet).
ALTER TABLE meetings ADD COLUMN node_id TEXT;
