//! API tokens as both backends store them: scopes and id patterns as comma-separated text.

use mcp_fleet_model::{Timestamp, TokenRecord, parse_id_patterns, parse_scopes};

use crate::StoreError;

/// A token's columns as both backends read them.
pub(crate) struct RawToken {
    pub(crate) id: String,
    pub(crate) secret_sha256: String,
    pub(crate) scopes: String,
    pub(crate) ids: String,
    pub(crate) description: String,
    pub(crate) created_at: Timestamp,
    pub(crate) expires_at: Option<Timestamp>,
    pub(crate) revoked_at: Option<Timestamp>,
}

impl RawToken {
    pub(crate) fn into_record(self) -> Result<TokenRecord, StoreError> {
        let bad = |reason: String| StoreError::Corrupt {
            id: format!("token {}", self.id),
            reason,
        };
        Ok(TokenRecord {
            scopes: parse_scopes(&self.scopes).map_err(bad)?,
            ids: parse_id_patterns(&self.ids).map_err(bad)?,
            id: self.id,
            secret_sha256: self.secret_sha256,
            description: self.description,
            created_at: self.created_at,
            expires_at: self.expires_at,
            revoked_at: self.revoked_at,
        })
    }
}

/// `scopes` and `ids` columns of `token`.
pub(crate) fn columns(token: &TokenRecord) -> (String, String) {
    let scopes: Vec<&str> = token.scopes.iter().map(|s| s.as_str()).collect();
    let ids: Vec<&str> = token.ids.iter().map(|p| p.as_str()).collect();
    (scopes.join(","), ids.join(","))
}
