//! API tokens in SQLite.

use mcp_fleet_model::{Timestamp, TokenRecord};

use super::SqliteStore;
use crate::StoreError;
use crate::row::TOKEN_COLUMNS;

pub(super) async fn create_token(
    store: &SqliteStore,
    token: &TokenRecord,
) -> Result<(), StoreError> {
    let (scopes, ids) = crate::tokens::columns(token);
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "INSERT INTO tokens ({TOKEN_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
    )))
    .bind(&token.id)
    .bind(&token.secret_sha256)
    .bind(scopes)
    .bind(ids)
    .bind(&token.description)
    .bind(token.created_at)
    .bind(token.expires_at)
    .bind(token.revoked_at)
    .execute(&store.pool)
    .await?;
    Ok(())
}

pub(super) async fn token(
    store: &SqliteStore,
    id: &str,
) -> Result<Option<TokenRecord>, StoreError> {
    let row = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT {TOKEN_COLUMNS} FROM tokens WHERE id = ?"
    )))
    .bind(id)
    .fetch_optional(&store.pool)
    .await?;
    row.as_ref().map(crate::row::token).transpose()
}

pub(super) async fn tokens(store: &SqliteStore) -> Result<Vec<TokenRecord>, StoreError> {
    let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT {TOKEN_COLUMNS} FROM tokens ORDER BY created_at DESC, id"
    )))
    .fetch_all(&store.pool)
    .await?;
    rows.iter().map(crate::row::token).collect()
}

pub(super) async fn revoke_token(
    store: &SqliteStore,
    id: &str,
    now: Timestamp,
) -> Result<bool, StoreError> {
    let done = sqlx::query("UPDATE tokens SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL")
        .bind(now)
        .bind(id)
        .execute(&store.pool)
        .await?;
    Ok(done.rows_affected() > 0)
}

pub(super) async fn has_tokens(store: &SqliteStore) -> Result<bool, StoreError> {
    let any: Option<i64> = sqlx::query_scalar("SELECT 1 FROM tokens LIMIT 1")
        .fetch_optional(&store.pool)
        .await?;
    Ok(any.is_some())
}
