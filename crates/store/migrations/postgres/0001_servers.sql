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
    metadata       JSONB NOT NULL
);

CREATE INDEX servers_status_id ON servers (status, id);
CREATE INDEX servers_tags ON servers USING GIN (tags);
