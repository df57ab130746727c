-- Routing policies, one per service: the whole document (weights, rollback rule, last rollback)
-- as JSON text, read and written whole. A service needs no entries to keep its policy: entries
-- come and go as instances restart. Writers lock the policy row before the revision counter,
-- as entry writers do.
CREATE TABLE routing (
    service    TEXT COLLATE "C" PRIMARY KEY,
    document   TEXT NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL
);
