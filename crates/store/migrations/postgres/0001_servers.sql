-- Registry entries. Tags are a text[] with a GIN index for the ANY-of-tags filter (`&&`).
CREATE TABLE servers (
    -- "C" collation: byte order, the same as SQLite's, so pages and cursors agree on both.
    id             TEXT COLLATE "C" PRIMARY KEY,
    name           TEXT NOT NULL,
    description    TEXT NOT NULL,
    url            TEXT NOT NULL,
    version        TEXT NOT NULL,
    tags           TEXT[] NOT NULL,
    auth_type      TEXT NOT NULL,
    token_endpoint TEXT,
    health_url     TEXT,
    status         TEXT NOT NULL,
    last_seen      TIMESTAMPTZ,
    registered_at  TIMESTAMPTZ NOT NULL,
    updated_at     TIMESTAMPTZ NOT NULL,
    metadata       JSONB NOT NULL,
    -- Health checking (see crates/registry/src/health/).
    health_mode     TEXT NOT NULL DEFAULT 'auto',
    ttl_seconds     INTEGER,
    heartbeat_at    TIMESTAMPTZ,
    last_checked_at TIMESTAMPTZ,
    last_error      TEXT,
    latency_ms      INTEGER,
    status_since    TIMESTAMPTZ,
    successes       INTEGER NOT NULL DEFAULT 0,
    failures        INTEGER NOT NULL DEFAULT 0,
    -- The registry revision of the entry's last registration: the health worker reads what
    -- changed after the revision it has seen, and drops results for superseded registrations.
    reg_rev         BIGINT NOT NULL DEFAULT 0
);

CREATE INDEX servers_reg_rev ON servers (reg_rev);

-- One counter row, locked by every registration's transaction: revisions commit in order.
CREATE TABLE registry_meta (
    key   TEXT PRIMARY KEY,
    value BIGINT NOT NULL
);
INSERT INTO registry_meta (key, value) VALUES ('revision', 0);

CREATE INDEX servers_status_id ON servers (status, id);
CREATE INDEX servers_tags ON servers USING GIN (tags);
