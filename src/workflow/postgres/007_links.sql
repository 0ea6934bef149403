-- 007: download links that replaced attachments (`action = "link"`), and every download
-- attempt with its client address and outcome.
CREATE TABLE links (
    token_sha256 text PRIMARY KEY,
    record_id bigint NOT NULL,
    name text NOT NULL,
    size bigint NOT NULL,
    sha256 text NOT NULL,
    created bigint NOT NULL,
    expires bigint NOT NULL,
    max_downloads bigint NOT NULL,
    downloads bigint NOT NULL,
    failures bigint NOT NULL,
    password text,
    sender text NOT NULL
);
CREATE INDEX links_record ON links (record_id);
CREATE TABLE link_downloads (
    id bigserial PRIMARY KEY,
    time bigint NOT NULL,
    token_sha256 text NOT NULL,
    record_id bigint NOT NULL,
    name text NOT NULL,
    client text NOT NULL,
    outcome text NOT NULL
);
CREATE INDEX link_downloads_record ON link_downloads (record_id, id);
