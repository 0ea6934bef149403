-- 003: the endpoint fleet (`workflow::fleet`): enrolment tokens (SHA-256 only; a token works
-- once) and enrolled agents (SHA-256 of the secret, the highest record number taken, status).
CREATE TABLE enrol_tokens (
    sha256 text PRIMARY KEY,
    label text NOT NULL,
    created bigint NOT NULL,
    expires bigint NOT NULL,
    created_by text NOT NULL,
    used bigint,
    agent text
);
CREATE TABLE agents (
    name text PRIMARY KEY,
    secret_sha256 text NOT NULL,
    created bigint NOT NULL,
    label text NOT NULL,
    last_seen bigint,
    last_seq bigint NOT NULL,
    revoked bigint,
    status text NOT NULL
);
-- Policies for the agents: each upload a new version; agents fetch the latest.
CREATE TABLE fleet_policies (
    version bigserial PRIMARY KEY,
    text text NOT NULL,
    sha256 text NOT NULL,
    created bigint NOT NULL,
    actor text NOT NULL
);
