//! API tokens in SQLite: the same SQL on both backends, written once in `same_sql.rs`.

use super::SqliteStore;

crate::same_sql::tokens!(SqliteStore);
