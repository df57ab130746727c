-- Every write to an entry's row gives it a new `row_version`, whichever statement or process
-- makes it, so that a process may reuse an entry's rendering for as long as its row keeps its
-- version (see `Renderings` in src/row.rs). Versions come from a sequence and are never reused,
-- also when an id is deleted and registered again.
CREATE SEQUENCE servers_row_version;

ALTER TABLE servers ADD COLUMN row_version BIGINT NOT NULL DEFAULT 0;

CREATE FUNCTION servers_next_row_version() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    NEW.row_version := nextval('servers_row_version');
    RETURN NEW;
END
$$;

CREATE TRIGGER servers_row_version BEFORE INSERT OR UPDATE ON servers
    FOR EACH ROW EXECUTE FUNCTION servers_next_row_version();
