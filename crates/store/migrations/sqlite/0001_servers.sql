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
    metadata       TEXT NOT NULL,
    -- Health checking (see crates/registry/src/health/).
    health_mode     TEXT NOT NULL DEFAULT 'auto',
    ttl_seconds     INTEGER,
    heartbeat_at    TEXT,
    last_checked_at TEXT,
    last_error      TEXT,
    latency_ms      INTEGER,
    status_since    TEXT,
    successes       INTEGER NOT NULL DEFAULT 0,
    failures        INTEGER NOT NULL DEFAULT 0,
    -- The registry revision of the entry's last registration: the health worker reads what
    -- changed after the revision it has seen, and drops results for superseded registrations.
    reg_rev         INTEGER NOT NULL DEFAULT 0
) STRICT;

CREATE INDEX servers_reg_rev ON servers (reg_rev);

-- One counter, bumped inside every registration's transaction: revisions commit in order.
CREATE TABLE registry_meta (
    key   TEXT PRIMARY KEY NOT NULL,
    value INTEGER NOT NULL
) STRICT;
INSERT INTO registry_meta (key, value) VALUES ('revision', 0);

CREATE INDEX servers_status_id ON servers (status, id);

CREATE TABLE server_tags (
    tag       TEXT NOT NULL,
    server_id TEXT NOT NULL REFERENCES servers (id) ON DELETE CASCADE,
    PRIMARY KEY (tag, server_id)
) STRICT, WITHOUT ROWID;

CREATE INDEX server_tags_server ON server_tags (server_id);
