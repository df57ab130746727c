-- The tool catalog: what each entry offered (tools, prompts, resources) at each version it was
-- listed at. `catalogs` has one row per entry and version; `catalog_items` one per item, with
-- its JSON and content hash, and a weighted tsvector (words, then description; English
-- stemming) with a GIN index for full-text search. An entry's catalogs go with the entry.
CREATE TABLE catalogs (
    server_id  TEXT NOT NULL REFERENCES servers (id) ON DELETE CASCADE,
    version    TEXT NOT NULL,
    service    TEXT NOT NULL,
    hash       TEXT NOT NULL,
    tools      BIGINT NOT NULL,
    truncated  BOOLEAN NOT NULL DEFAULT FALSE,
    fetched_at TIMESTAMPTZ NOT NULL,
    changed_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (server_id, version)
);
CREATE INDEX catalogs_service ON catalogs (service, version);

CREATE TABLE catalog_items (
    item_id     BIGSERIAL PRIMARY KEY,
    server_id   TEXT NOT NULL,
    version     TEXT NOT NULL,
    kind        TEXT NOT NULL,
    name        TEXT NOT NULL,
    words       TEXT NOT NULL,
    description TEXT NOT NULL,
    body        TEXT NOT NULL,
    hash        TEXT NOT NULL,
    search      TSVECTOR GENERATED ALWAYS AS (
        setweight(to_tsvector('english', words), 'A')
        || setweight(to_tsvector('english', description), 'B')
    ) STORED,
    UNIQUE (server_id, version, kind, name),
    FOREIGN KEY (server_id, version) REFERENCES catalogs (server_id, version) ON DELETE CASCADE
);
CREATE INDEX catalog_items_search ON catalog_items USING GIN (search);

-- The hash of each tool an operator trusts, per service, version and tool: the first one seen
-- (trust on first use), or the one accepted with `mcp-fleet tools accept`. With
-- --pin-tool-hashes the gateway withholds a tool whose hash differs.
CREATE TABLE tool_pins (
    service     TEXT NOT NULL,
    version     TEXT NOT NULL,
    tool        TEXT NOT NULL,
    hash        TEXT NOT NULL,
    accepted_by TEXT,
    accepted_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (service, version, tool)
);
