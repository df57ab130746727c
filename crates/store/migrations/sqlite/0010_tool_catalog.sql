-- The tool catalog: what each entry offered (tools, prompts, resources) at each version it was
-- listed at. `catalogs` has one row per entry and version; `catalog_items` one per item, with
-- its JSON and content hash; `catalog_search` indexes the items' words and descriptions for
-- full-text search (FTS5, Porter stemming), kept in step by the triggers below. An entry's
-- catalogs go with the entry.
CREATE TABLE catalogs (
    server_id  TEXT NOT NULL REFERENCES servers (id) ON DELETE CASCADE,
    version    TEXT NOT NULL,
    service    TEXT NOT NULL,
    hash       TEXT NOT NULL,
    tools      INTEGER NOT NULL,
    truncated  INTEGER NOT NULL DEFAULT 0,
    fetched_at TEXT NOT NULL,
    changed_at TEXT NOT NULL,
    PRIMARY KEY (server_id, version)
) STRICT;
CREATE INDEX catalogs_service ON catalogs (service, version);

CREATE TABLE catalog_items (
    item_id     INTEGER PRIMARY KEY,
    server_id   TEXT NOT NULL,
    version     TEXT NOT NULL,
    kind        TEXT NOT NULL,
    name        TEXT NOT NULL,
    words       TEXT NOT NULL,
    description TEXT NOT NULL,
    body        TEXT NOT NULL,
    hash        TEXT NOT NULL,
    UNIQUE (server_id, version, kind, name),
    FOREIGN KEY (server_id, version) REFERENCES catalogs (server_id, version) ON DELETE CASCADE
) STRICT;

CREATE VIRTUAL TABLE catalog_search USING fts5(
    words, description,
    content = 'catalog_items', content_rowid = 'item_id',
    tokenize = 'porter unicode61 remove_diacritics 2'
);
CREATE TRIGGER catalog_items_ai AFTER INSERT ON catalog_items BEGIN
    INSERT INTO catalog_search (rowid, words, description)
        VALUES (new.item_id, new.words, new.description);
END;
CREATE TRIGGER catalog_items_ad AFTER DELETE ON catalog_items BEGIN
    INSERT INTO catalog_search (catalog_search, rowid, words, description)
        VALUES ('delete', old.item_id, old.words, old.description);
END;
CREATE TRIGGER catalog_items_au AFTER UPDATE ON catalog_items BEGIN
    INSERT INTO catalog_search (catalog_search, rowid, words, description)
        VALUES ('delete', old.item_id, old.words, old.description);
    INSERT INTO catalog_search (rowid, words, description)
        VALUES (new.item_id, new.words, new.description);
END;

-- The hash of each tool an operator trusts, per service, version and tool: the first one seen
-- (trust on first use), or the one accepted with `mcp-fleet tools accept`. With
-- --pin-tool-hashes the gateway withholds a tool whose hash differs.
CREATE TABLE tool_pins (
    service     TEXT NOT NULL,
    version     TEXT NOT NULL,
    tool        TEXT NOT NULL,
    hash        TEXT NOT NULL,
    accepted_by TEXT,
    accepted_at TEXT NOT NULL,
    PRIMARY KEY (service, version, tool)
) STRICT;
