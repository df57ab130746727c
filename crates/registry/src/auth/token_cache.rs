//! What the registry remembers of presented registry tokens: the ones it verified, so rate
//! limits can key a token's requests by its id without a database lookup, and the ones it
//! refused, so a flood of one bad token costs no lookup per request.
//!
//! Authorization never trusts the verified set: a write, or a read under `--auth-reads`, looks
//! its token up each time, so a token revoked (in the database, by `mcp-fleet token revoke`
//! from any process) is refused on its next request. A revoked token keeps its own rate-limit
//! bucket for at most [`VERIFIED_TTL`], refused all the while. Refusals are final (a revoked or
//! expired token stays so, a wrong secret stays wrong; a token's string exists only once it
//! is issued), so remembering them for [`REFUSED_TTL`] changes no answer.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use mcp_fleet_model::{Timestamp, TokenRecord};
use sha2::{Digest, Sha256};

use super::tokens::Refused;

/// How long a verified token is keyed by its id without being looked up again.
pub(crate) const VERIFIED_TTL: Duration = Duration::from_secs(60);
/// How long a refused token is refused without being looked up again.
pub(crate) const REFUSED_TTL: Duration = Duration::from_secs(10);
/// Most tokens remembered of each kind (about 100 bytes each).
pub(crate) const MAX_REMEMBERED: usize = 10_000;

/// A verified token, by id.
struct Verified {
    secret_sha256: [u8; 32],
    expires_at: Option<Timestamp>,
    at: Instant,
}

/// The registry's memory of presented tokens; one per [`AppState`](crate::AppState).
#[derive(Default)]
pub(crate) struct TokenCache {
    verified: Mutex<HashMap<String, Verified>>,
    /// Refused tokens by the SHA-256 of the whole token string.
    refused: Mutex<HashMap<[u8; 32], (Refused, Instant)>>,
}

impl std::fmt::Debug for TokenCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenCache").finish_non_exhaustive()
    }
}

fn digest(s: &str) -> [u8; 32] {
    Sha256::digest(s.as_bytes()).into()
}

/// Inserts into a bounded map: when full, forgets what is older than `ttl`, and everything if
/// that is not enough (a flood only costs lookups again, which the address's rate limit bounds).
fn bounded_insert<K: std::hash::Hash + Eq, V>(
    map: &mut HashMap<K, V>,
    key: K,
    value: V,
    at: impl Fn(&V) -> Instant,
    ttl: Duration,
) {
    if map.len() >= MAX_REMEMBERED {
        map.retain(|_, v| at(v).elapsed() < ttl);
        if map.len() >= MAX_REMEMBERED {
            map.clear();
        }
    }
    map.insert(key, value);
}

impl TokenCache {
    /// The id of `token` (`mcpf_<id>.<secret>`) when it was verified less than
    /// [`VERIFIED_TTL`] ago and has not expired since.
    pub(crate) fn verified_id<'t>(&self, token: &'t str, now: Timestamp) -> Option<&'t str> {
        let (id, secret) = super::tokens::split(token)?;
        let verified = self.verified.lock().unwrap_or_else(|e| e.into_inner());
        let v = verified.get(id)?;
        let fresh = v.at.elapsed() < VERIFIED_TTL && v.expires_at.is_none_or(|t| now < t);
        (fresh && v.secret_sha256 == digest(secret)).then_some(id)
    }

    /// Why `token` was refused, when it was less than [`REFUSED_TTL`] ago.
    pub(crate) fn refused(&self, token: &str) -> Option<Refused> {
        let refused = self.refused.lock().unwrap_or_else(|e| e.into_inner());
        match refused.get(&digest(token)) {
            Some((why, at)) if at.elapsed() < REFUSED_TTL => Some(why.clone()),
            _ => None,
        }
    }

    /// Remembers what a lookup of `token` found.
    pub(crate) fn remember(&self, token: &str, found: &Result<TokenRecord, Refused>) {
        let Some((id, secret)) = super::tokens::split(token) else {
            return;
        };
        let now = Instant::now();
        match found {
            Ok(record) => {
                let v = Verified {
                    secret_sha256: digest(secret),
                    expires_at: record.expires_at,
                    at: now,
                };
                let mut verified = self.verified.lock().unwrap_or_else(|e| e.into_inner());
                bounded_insert(&mut verified, id.to_owned(), v, |v| v.at, VERIFIED_TTL);
            }
            Err(why) => {
                if matches!(why, Refused::Revoked(_) | Refused::Expired(_)) {
                    let mut verified = self.verified.lock().unwrap_or_else(|e| e.into_inner());
                    verified.remove(id);
                }
                let mut refused = self.refused.lock().unwrap_or_else(|e| e.into_inner());
                let entry = (why.clone(), now);
                bounded_insert(&mut refused, digest(token), entry, |e| e.1, REFUSED_TTL);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A record as the store returns it (the cache keeps the presented secret's hash).
    fn record(id: &str) -> TokenRecord {
        TokenRecord {
            id: id.into(),
            secret_sha256: String::new(),
            scopes: vec![],
            ids: vec![],
            description: String::new(),
            created_at: chrono::Utc::now(),
            expires_at: None,
            revoked_at: None,
        }
    }

    #[test]
    fn verified_tokens_are_keyed_only_with_their_secret_and_refusals_are_kept() {
        let cache = TokenCache::default();
        let now = chrono::Utc::now();
        let good = "mcpf_tok_aaaaaaaaaaaa.right";
        assert_eq!(cache.verified_id(good, now), None);
        cache.remember(good, &Ok(record("tok_aaaaaaaaaaaa")));
        assert_eq!(cache.verified_id(good, now), Some("tok_aaaaaaaaaaaa"));
        // The same id with another secret is not the verified token.
        assert_eq!(cache.verified_id("mcpf_tok_aaaaaaaaaaaa.wrong", now), None);
        let bad = "mcpf_tok_bbbbbbbbbbbb.x";
        assert_eq!(cache.refused(bad), None);
        cache.remember(bad, &Err(Refused::Unknown));
        assert_eq!(cache.refused(bad), Some(Refused::Unknown));
        // Revoked: no longer keyed by its id.
        cache.remember(good, &Err(Refused::Revoked("tok_aaaaaaaaaaaa".into())));
        assert_eq!(cache.verified_id(good, now), None);
        assert!(cache.refused(good).is_some());
    }

    #[test]
    fn memory_is_bounded() {
        let cache = TokenCache::default();
        for i in 0..(MAX_REMEMBERED + 10) {
            cache.remember(&format!("mcpf_tok_{i}.x"), &Err(Refused::Unknown));
        }
        let refused = cache.refused.lock().expect("lock").len();
        assert!(refused <= MAX_REMEMBERED, "{refused}");
    }
}
