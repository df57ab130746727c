-- Routing policies, one per service: the whole document (weights, rollback rule, last rollback)
-- as JSON text, read and written whole. A service needs no entries to keep its policy: entries
-- come and go as instances restart.
CREATE TABLE routing (
    service    TEXT PRIMARY KEY NOT NULL,
    document   TEXT NOT NULL,
    updated_at TEXT NOT NULL
) STRICT;
