//! Health-work leases in SQLite (`crate::lease`): the clock is `julianday('now')`, and the write
//! lock taken up front already keeps claims apart.

use super::SqliteStore;

crate::lease::leases!(
    SqliteStore,
    "CAST((julianday('now') - 2440587.5) * 86400000.0 AS INTEGER)",
    ""
);
