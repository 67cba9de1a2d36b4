-- Tags of voice connectors, voice connector groups, SIP media applications and meetings,
-- by the resource's ARN (TagResource, UntagResource, ListTagsForResource).
CREATE TABLE resource_tags (
    arn TEXT NOT NULL,
    tag_key TEXT NOT NULL,
    tag_value TEXT NOT NULL,
    PRIMARY KEY (arn, tag_key)
);
