-- Whether a catalog lists a tool whose hash differs from the tool's pin (changed in place, or
-- listed otherwise than first seen, and not accepted): kept by the writes of listings and pins,
-- so that /status reads it with the catalog's row instead of comparing every entry's tools.
ALTER TABLE catalogs ADD COLUMN unpinned INTEGER NOT NULL DEFAULT 0;
UPDATE catalogs SET unpinned = EXISTS (
    SELECT 1 FROM catalog_items i
    JOIN tool_pins p ON p.service = catalogs.service AND p.version = i.version AND p.tool = i.name
    WHERE i.server_id = catalogs.server_id AND i.version = catalogs.version AND i.kind = 'tool'
        AND i.hash <> p.hash
);
