-- 005: the admin log: searches, exports, views of messages and attachments, policy changes in
-- the console and the CLI, written before the action is carried out.
CREATE TABLE admin_actions (
    id bigserial PRIMARY KEY,
    time bigint NOT NULL,
    actor text NOT NULL,
    action text NOT NULL,
    target text NOT NULL,
    detail text NOT NULL,
    client text NOT NULL
);
CREATE INDEX admin_actions_actor ON admin_actions (actor, id);
