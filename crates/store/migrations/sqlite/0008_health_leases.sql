-- Health work shared by replicas (crates/store/src/lease.rs): entries fall into 64 shards by a
-- hash of their id, and a replica probes the entries of the shards it holds a lease on. A lease
-- lasts until `until_ms` (milliseconds since 1970 by the database's clock) unless renewed; an
-- empty `owner` is a lease released for another replica to take. `health_replicas` lists the
-- replicas alive, so that each can take its fair share.
CREATE TABLE health_leases (
    shard    INTEGER PRIMARY KEY NOT NULL,
    owner    TEXT NOT NULL,
    until_ms INTEGER NOT NULL
) STRICT;

WITH RECURSIVE n (shard) AS (SELECT 0 UNION ALL SELECT shard + 1 FROM n WHERE shard < 63)
INSERT INTO health_leases (shard, owner, until_ms) SELECT shard, '', 0 FROM n;

CREATE TABLE health_replicas (
    id       TEXT PRIMARY KEY NOT NULL,
    until_ms INTEGER NOT NULL
) STRICT;
