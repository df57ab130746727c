-- Canary counts reported by gateway replicas: one row per service, version, replica and window
-- slot, holding the replica's whole count for that slot (a report sent twice counts once).
-- The registry sums them over a rollback window; rows past `expires_at` (Unix milliseconds,
-- when the slot has left every window) are deleted as reports arrive. Writers lock the
-- service's routing row first, so that reports and rollbacks of one service take turns.
CREATE TABLE canary_observations (
    service     TEXT COLLATE "C" NOT NULL,
    version     TEXT COLLATE "C" NOT NULL,
    replica     TEXT COLLATE "C" NOT NULL,
    slot_ms     BIGINT NOT NULL,
    slot        BIGINT NOT NULL,
    calls       BIGINT NOT NULL,
    errors      BIGINT NOT NULL,
    tool_errors BIGINT NOT NULL,
    expires_at  BIGINT NOT NULL,
    PRIMARY KEY (service, slot_ms, slot, version, replica)
);
CREATE INDEX canary_observations_expiry ON canary_observations (expires_at);
