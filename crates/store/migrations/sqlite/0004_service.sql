-- The logical server an entry is an instance of: entries sharing a `service` are instances of
-- one server, possibly at different versions (routing policies name a service). Existing
-- entries are their own service, as a registration without one is.
ALTER TABLE servers ADD COLUMN service TEXT NOT NULL DEFAULT '';
UPDATE servers SET service = id;

CREATE INDEX servers_service ON servers (service, version);
