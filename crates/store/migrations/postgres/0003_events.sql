-- The change feed: one row per committed change to the registry (entry created, replaced or
-- deleted, status changed), numbered by the registry revision its transaction takes from
-- `registry_meta`. From this migration on, that counter counts every change, not only
-- registrations (an entry's `reg_rev` is still the revision of its last registration). The
-- counter row is locked until commit, so revisions are gap-free and commit in order: a reader
-- that has seen revision N has seen every revision before it. Every writer locks the entry rows
-- it touches before the counter row, so writers never deadlock. The oldest rows are pruned past
-- the retention. `data` is JSON text (not JSONB: served byte for byte as written).
CREATE TABLE events (
    revision  BIGINT PRIMARY KEY,
    kind      TEXT NOT NULL,
    server_id TEXT NOT NULL,
    at        TIMESTAMPTZ NOT NULL,
    data      TEXT NOT NULL
);
