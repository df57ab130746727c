-- Every write to an entry's row gives it a new `row_version`, whichever statement or process
-- makes it, so that a process may reuse an entry's rendering for as long as its row keeps its
-- version (see `Renderings` in src/row.rs). Versions come from one counter and are never reused,
-- also when an id is deleted and registered again.
CREATE TABLE row_clock (
    id    INTEGER PRIMARY KEY NOT NULL CHECK (id = 0),
    value INTEGER NOT NULL
) STRICT;
INSERT INTO row_clock (id, value) VALUES (0, 0);

ALTER TABLE servers ADD COLUMN row_version INTEGER NOT NULL DEFAULT 0;

CREATE TRIGGER servers_row_version_insert AFTER INSERT ON servers
BEGIN
    UPDATE row_clock SET value = value + 1 WHERE id = 0;
    UPDATE servers SET row_version = (SELECT value FROM row_clock WHERE id = 0)
        WHERE id = NEW.id;
END;

-- The WHEN clause stops the trigger's own update from firing it again.
CREATE TRIGGER servers_row_version_update AFTER UPDATE ON servers
WHEN NEW.row_version IS OLD.row_version
BEGIN
    UPDATE row_clock SET value = value + 1 WHERE id = 0;
    UPDATE servers SET row_version = (SELECT value FROM row_clock WHERE id = 0)
        WHERE id = NEW.id;
END;
