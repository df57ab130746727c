//! Health-work leases in PostgreSQL (`crate::lease`): the clock is the server's, and replicas
//! claiming at once skip the rows another is taking (`FOR UPDATE SKIP LOCKED`).

use super::PostgresStore;

crate::lease::leases!(
    PostgresStore,
    "CAST(EXTRACT(EPOCH FROM clock_timestamp()) * 1000 AS BIGINT)",
    " FOR UPDATE SKIP LOCKED"
);
