-- The change feed: one row per committed change to the registry (entry created, replaced or
-- deleted, status changed), numbered by the registry revision its transaction takes from
-- `registry_meta`. From this migration on, that counter counts every change, not only
-- registrations (an entry's `reg_rev` is still the revision of its last registration). The
-- counter row is locked until commit, so revisions are gap-free and commit in order: a reader
-- that has seen revision N has seen every revision before it. The oldest rows are pruned past
-- the retention. `data` is JSON text, served as is.
CREATE TABLE events (
    revision  INTEGER PRIMARY KEY NOT NULL,
    kind      TEXT NOT NULL,
    server_id TEXT NOT NULL,
    at        TEXT NOT NULL,
    data      TEXT NOT NULL
) STRICT;
