//! Store errors, split by whose fault they are.

/// What went wrong talking to the database.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database URL or options are wrong: the operator's to fix.
    #[error("database configuration: {0}")]
    Config(String),
    /// The database could not be reached or refused the operation; retrying may help.
    #[error("database unavailable: {0}")]
    Unavailable(String),
    /// Applying migrations failed.
    #[error("database migration failed: {0}")]
    Migration(String),
    /// Creating an entry would pass a cap ([`crate::Store::upsert_capped`]): nothing was
    /// written.
    #[error("entry cap reached: {0}")]
    CapReached(crate::CapReached),
    /// A stored row could not be read back as an entry.
    #[error("stored entry {id} is unreadable: {reason}")]
    Corrupt {
        /// The entry's id.
        id: String,
        /// What did not parse.
        reason: String,
    },
}

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        match e {
            sqlx::Error::Configuration(e) => Self::Config(e.to_string()),
            sqlx::Error::Migrate(e) => Self::Migration(e.to_string()),
            other => Self::Unavailable(other.to_string()),
        }
    }
}

impl From<sqlx::migrate::MigrateError> for StoreError {
    fn from(e: sqlx::migrate::MigrateError) -> Self {
        Self::Migration(e.to_string())
    }
}
