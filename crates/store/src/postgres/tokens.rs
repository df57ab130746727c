//! API tokens in PostgreSQL: the same SQL on both backends, written once in `same_sql.rs`.

use super::PostgresStore;

crate::same_sql::tokens!(PostgresStore);
