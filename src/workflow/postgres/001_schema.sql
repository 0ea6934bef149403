-- 001: the shared store. Records and the rows that index them are partitioned by month on
-- `time` (Unix seconds, UTC months); partitions are made by the writers as records arrive
-- (`records_pYYYYMM` and kin) and dropped whole by the retention purge. Every index starts
-- with the column its queries filter on and continues with `time` (and the record id for the
-- side tables), so that a query touches only the partitions of its window and one index range
-- in each, and reads a search's newest matches in order without sorting them.

CREATE SEQUENCE records_id_seq;

CREATE TABLE records (
    id            bigint  NOT NULL,
    time          bigint  NOT NULL,
    channel       text    NOT NULL,
    "user"        text,
    gateway       text,
    sender        text    NOT NULL,
    sender_domain text    NOT NULL,
    subject       text    NOT NULL,
    action        text    NOT NULL,
    would_action  text    NOT NULL,
    risk          integer NOT NULL,
    external      boolean NOT NULL,
    size          bigint  NOT NULL,
    attach_bytes  bigint  NOT NULL,
    flags         integer NOT NULL,
    approval      text,
    detail        text    NOT NULL,
    PRIMARY KEY (time, id)
) PARTITION BY RANGE (time);
CREATE INDEX records_id ON records (id);
CREATE INDEX records_sender ON records (sender, time, id);
CREATE INDEX records_user ON records ("user", time, id);
CREATE INDEX records_action ON records (action, time);
CREATE INDEX records_sender_domain ON records (sender_domain, time, id);
CREATE INDEX records_gateway ON records (gateway, time);

CREATE TABLE record_recipients (
    record_id bigint  NOT NULL,
    time      bigint  NOT NULL,
    address   text    NOT NULL,
    domain    text    NOT NULL,
    external  boolean NOT NULL
) PARTITION BY RANGE (time);
-- A record's recipients (PPAP pairing), with its time: one partition.
CREATE INDEX rr_record ON record_recipients (record_id);
CREATE INDEX rr_address ON record_recipients (address, time, record_id);
CREATE INDEX rr_domain ON record_recipients (domain, time, record_id);

CREATE TABLE record_attachments (
    record_id bigint  NOT NULL,
    time      bigint  NOT NULL,
    location  text    NOT NULL,
    name      text    NOT NULL,
    kind      text    NOT NULL,
    size      bigint  NOT NULL,
    sha256    text    NOT NULL,
    depth     integer NOT NULL,
    external  boolean NOT NULL
) PARTITION BY RANGE (time);
CREATE INDEX ra_sha ON record_attachments (sha256, time, record_id);

CREATE TABLE record_detectors (
    record_id bigint NOT NULL,
    time      bigint NOT NULL,
    detector  text   NOT NULL
) PARTITION BY RANGE (time);
CREATE INDEX rd_detector ON record_detectors (detector, time, record_id);

-- Rate windows per minute: kind 1 = a sender's external mails and attachment bytes, kind 2 =
-- external sends of an attachment (SHA-256). Partitioned by month of `minute`.
CREATE TABLE rate_counts (
    kind   smallint NOT NULL,
    key    text     NOT NULL,
    minute bigint   NOT NULL,
    n      bigint   NOT NULL,
    bytes  bigint   NOT NULL,
    PRIMARY KEY (kind, key, minute)
) PARTITION BY RANGE (minute);

CREATE TABLE approvals (
    id        text   PRIMARY KEY,
    record_id bigint NOT NULL,
    state     text   NOT NULL,
    created   bigint NOT NULL,
    expires   bigint NOT NULL,
    gateway   text,
    detail    text   NOT NULL
);
CREATE INDEX approvals_state ON approvals (state, created);
CREATE INDEX approvals_gateway ON approvals (gateway, state);

CREATE TABLE approval_events (
    id       bigserial PRIMARY KEY,
    approval text   NOT NULL,
    time     bigint NOT NULL,
    actor    text   NOT NULL,
    kind     text   NOT NULL,
    detail   text   NOT NULL
);
CREATE INDEX ae_approval ON approval_events (approval, time);
-- A one-time sign-in link is used once, whichever console process sees it first.
CREATE UNIQUE INDEX ae_once ON approval_events (approval, kind, detail) WHERE kind = 'link_signin';

CREATE TABLE evidence (
    sha256  text   PRIMARY KEY,
    size    bigint NOT NULL,
    created bigint NOT NULL,
    expires bigint NOT NULL
);
CREATE TABLE evidence_refs (
    id        bigserial PRIMARY KEY,
    sha256    text   NOT NULL,
    record_id bigint NOT NULL,
    location  text   NOT NULL
);
CREATE INDEX er_record ON evidence_refs (record_id);
CREATE INDEX er_sha ON evidence_refs (sha256);
-- Evidence copies themselves: every host (a console anywhere) reads them from here.
CREATE TABLE evidence_blobs (
    sha256 text  PRIMARY KEY,
    data   bytea NOT NULL
);
ALTER TABLE evidence_blobs ALTER COLUMN data SET STORAGE EXTERNAL;

CREATE TABLE alert_outbox (
    id         bigserial PRIMARY KEY,
    sink       text    NOT NULL,
    payload    text    NOT NULL,
    attempts   integer NOT NULL,
    next_try   bigint  NOT NULL,
    last_error text
);
CREATE INDEX outbox_next ON alert_outbox (next_try);

CREATE TABLE secrets (
    name  text  PRIMARY KEY,
    value bytea NOT NULL
);

CREATE TABLE console_sessions (
    key     text   PRIMARY KEY,
    detail  text   NOT NULL,
    created bigint NOT NULL,
    last    bigint NOT NULL
);

CREATE TABLE login_attempts (
    key   text    PRIMARY KEY,
    n     integer NOT NULL,
    since bigint  NOT NULL
);

CREATE TABLE turns (
    name text   PRIMARY KEY,
    last bigint NOT NULL
);

CREATE TABLE purges (
    id     bigserial PRIMARY KEY,
    time   bigint NOT NULL,
    detail text   NOT NULL
);
