-- Canary counts reported by gateway replicas: one row per service, version, replica and window
-- slot, holding the replica's whole count for that slot (a report sent twice counts once).
-- The registry sums them over a rollback window; rows past `expires_at` (Unix milliseconds,
-- when the slot has left every window) are deleted as reports arrive.
CREATE TABLE canary_observations (
    service     TEXT NOT NULL,
    version     TEXT NOT NULL,
    replica     TEXT NOT NULL,
    slot_ms     INTEGER NOT NULL,
    slot        INTEGER NOT NULL,
    calls       INTEGER NOT NULL,
    errors      INTEGER NOT NULL,
    tool_errors INTEGER NOT NULL,
    expires_at  INTEGER NOT NULL,
    PRIMARY KEY (service, slot_ms, slot, version, replica)
) STRICT;
CREATE INDEX canary_observations_expiry ON canary_observations (expires_at);
