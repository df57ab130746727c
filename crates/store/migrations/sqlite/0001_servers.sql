-- Registry entries. Tags are kept twice: as JSON in `tags` (order preserved, read back as is)
-- and as rows of `server_tags` (indexed, for the ANY-of-tags filter).
CREATE TABLE servers (
    id             TEXT PRIMARY KEY NOT NULL,
    name           TEXT NOT NULL,
    description    TEXT NOT NULL,
    url            TEXT NOT NULL,
    version        TEXT NOT NULL,
    tags           TEXT NOT NULL,
    auth_type      TEXT NOT NULL,
    token_endpoint TEXT,
    health_url     TEXT,
    status         TEXT NOT NULL,
    last_seen      TEXT,
    registered_at  TEXT NOT NULL,
    updated_at     TEXT NOT NULL,
    metadata       TEXT NOT NULL
) STRICT;

CREATE INDEX servers_status_id ON servers (status, id);

CREATE TABLE server_tags (
    tag       TEXT NOT NULL,
    server_id TEXT NOT NULL REFERENCES servers (id) ON DELETE CASCADE,
    PRIMARY KEY (tag, server_id)
) STRICT, WITHOUT ROWID;

CREATE INDEX server_tags_server ON server_tags (server_id);
