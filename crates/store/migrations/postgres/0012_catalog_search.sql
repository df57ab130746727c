-- Full-text search reads a narrow table of its own: each tool's `tsvector`, with what a search
-- filters and orders by before it cuts the page (the serving entry and version, the tool's
-- name). Ranking reads every match's `tsvector`; in `catalog_items` each match was a wide row
-- (JSON body and all) on a heap page of its own, ~9,000 pages for a query matching 10,000 of
-- 200,000 tools; here a page holds dozens of them. Items are joined by key for the page only.
-- Kept in step with `catalog_items` by the trigger below (tools only; prompts and resources are
-- not searched) and its foreign key.
CREATE TABLE catalog_search (
    item_id   BIGINT PRIMARY KEY REFERENCES catalog_items (item_id) ON DELETE CASCADE,
    server_id TEXT COLLATE "C" NOT NULL,
    version   TEXT NOT NULL,
    name      TEXT NOT NULL,
    search    TSVECTOR NOT NULL
);
INSERT INTO catalog_search (item_id, server_id, version, name, search)
    SELECT item_id, server_id, version, name, search FROM catalog_items WHERE kind = 'tool';
CREATE INDEX catalog_search_search ON catalog_search USING GIN (search);

CREATE FUNCTION catalog_search_put() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM catalog_search WHERE item_id = NEW.item_id;
    IF NEW.kind = 'tool' THEN
        INSERT INTO catalog_search (item_id, server_id, version, name, search) VALUES (
            NEW.item_id, NEW.server_id, NEW.version, NEW.name,
            setweight(to_tsvector('english', NEW.words), 'A')
                || setweight(to_tsvector('english', NEW.description), 'B'));
    END IF;
    RETURN NULL;
END
$$;
CREATE TRIGGER catalog_items_search AFTER INSERT OR UPDATE ON catalog_items
    FOR EACH ROW EXECUTE FUNCTION catalog_search_put();

-- The search no longer reads the items' own tsvector.
DROP INDEX catalog_items_search;
ALTER TABLE catalog_items DROP COLUMN search;
