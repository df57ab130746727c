//! API tokens: `mcpf_<id>.<secret>`, the secret 256 random bits; the registry keeps only a
//! SHA-256 hash of the secret and compares hashes in constant time.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use mcp_fleet_model::{IdPattern, Scope, Timestamp, TokenRecord};
use mcp_fleet_store::Store;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// What every token starts with, so a leaked one is easy to recognise (and scan for).
pub const TOKEN_PREFIX: &str = "mcpf_";

/// Why a token could not be made.
#[derive(Debug, thiserror::Error)]
#[error("cannot draw random bytes for a token: {0}")]
pub struct IssueError(String);

fn sha256_hex(secret: &str) -> String {
    let digest = Sha256::digest(secret.as_bytes());
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// A new token: the string to hand out (shown once) and the record to store.
pub fn issue(
    scopes: Vec<Scope>,
    ids: Vec<IdPattern>,
    description: String,
    expires_at: Option<Timestamp>,
    now: Timestamp,
) -> Result<(String, TokenRecord), IssueError> {
    let mut id = [0u8; 6];
    let mut secret = [0u8; 32];
    getrandom::getrandom(&mut id).map_err(|e| IssueError(e.to_string()))?;
    getrandom::getrandom(&mut secret).map_err(|e| IssueError(e.to_string()))?;
    let id = format!(
        "tok_{}",
        id.iter().map(|b| format!("{b:02x}")).collect::<String>()
    );
    let secret = URL_SAFE_NO_PAD.encode(secret);
    let record = TokenRecord {
        id: id.clone(),
        secret_sha256: sha256_hex(&secret),
        scopes,
        ids,
        description,
        created_at: now,
        expires_at,
        revoked_at: None,
    };
    Ok((format!("{TOKEN_PREFIX}{id}.{secret}"), record))
}

/// Why a presented token is refused (never containing the token).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Refused {
    /// Not of the `mcpf_<id>.<secret>` form.
    Malformed,
    /// No token with that id, or the secret does not match.
    Unknown,
    /// Revoked.
    Revoked(String),
    /// Past its expiry.
    Expired(String),
}

impl Refused {
    pub(crate) fn reason(&self) -> String {
        match self {
            Self::Malformed => "the bearer token is not an mcp-fleet token (mcpf_…)".into(),
            Self::Unknown => "the bearer token is not known to this registry".into(),
            Self::Revoked(id) => format!("token {id} has been revoked"),
            Self::Expired(id) => format!("token {id} has expired"),
        }
    }
}

/// The id and secret of a token of the `mcpf_<id>.<secret>` form.
pub(crate) fn split(token: &str) -> Option<(&str, &str)> {
    let (id, secret) = token.strip_prefix(TOKEN_PREFIX)?.split_once('.')?;
    (id.starts_with("tok_") && id.len() <= 64 && !secret.is_empty()).then_some((id, secret))
}

/// Checks `token` against the store: its record when it is valid now.
pub(crate) async fn verify(
    store: &dyn Store,
    token: &str,
    now: Timestamp,
) -> Result<Result<TokenRecord, Refused>, mcp_fleet_store::StoreError> {
    let Some((id, secret)) = split(token) else {
        return Ok(Err(Refused::Malformed));
    };
    let Some(record) = store.token(id).await? else {
        return Ok(Err(Refused::Unknown));
    };
    let presented = sha256_hex(secret);
    if !bool::from(presented.as_bytes().ct_eq(record.secret_sha256.as_bytes())) {
        return Ok(Err(Refused::Unknown));
    }
    if record.revoked_at.is_some() {
        return Ok(Err(Refused::Revoked(record.id)));
    }
    if !record.is_active(now) {
        return Ok(Err(Refused::Expired(record.id)));
    }
    Ok(Ok(record))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_unique_and_only_their_hash_is_kept() {
        let now = chrono::Utc::now();
        let (a, ra) = issue(vec![Scope::Admin], vec![], String::new(), None, now).expect("a");
        let (b, rb) = issue(vec![Scope::Admin], vec![], String::new(), None, now).expect("b");
        assert_ne!(a, b);
        assert_ne!(ra.id, rb.id);
        assert!(a.starts_with("mcpf_tok_"), "{a}");
        let secret = a.split_once('.').expect("dot").1;
        assert_eq!(secret.len(), 43, "256 bits in base64url");
        assert!(!ra.secret_sha256.contains(secret));
        assert_eq!(ra.secret_sha256, sha256_hex(secret));
        assert_eq!(ra.secret_sha256.len(), 64);
    }
}
