//! Abuse limits: per-client token buckets on writes and on the reads that cost the most
//! (listings, `/status`, the change feed), answered `429` with `Retry-After`; and caps on how
//! many entries the registry, and each credential, may hold.
//!
//! The buckets are each process's own: N replicas behind a load balancer admit up to N times
//! the rate in all. The caps are the database's, so they hold for the whole cluster.

use std::net::{IpAddr, SocketAddr};
use std::num::NonZeroU32;
use std::time::Duration;

use axum::extract::{ConnectInfo, Request, State};
use axum::http::Method;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use governor::clock::{Clock, DefaultClock};
use governor::{Quota, RateLimiter};

use chrono::Utc;
use mcp_fleet_store::{CapReached, EntryCaps};

use crate::AppState;
use crate::auth::Checked;
use crate::error::ApiError;

/// Rate limits (requests per second per client, with a burst) and entry caps. A rate of 0
/// turns that limit off; so does `None` for a cap.
#[derive(Debug, Clone, Default)]
pub struct LimitsConfig {
    /// Writes per second per client.
    pub write_rate: u32,
    /// Writes a client may make at once before the rate applies.
    pub write_burst: u32,
    /// Listing, `/status` and `/events` requests per second per client.
    pub read_rate: u32,
    /// Reads a client may make at once.
    pub read_burst: u32,
    /// Most entries the registry holds.
    pub max_entries: Option<u64>,
    /// Most entries one credential may have registered (counted by `updatedBy`).
    pub max_entries_per_principal: Option<u64>,
    /// Proxies and load balancers whose `Forwarded` / `X-Forwarded-For` headers name the
    /// client a request is counted against; from anyone else those headers are ignored.
    pub trusted_proxies: Vec<ipnet::IpNet>,
}

impl LimitsConfig {
    /// The caps on stored entries, which the store enforces in the write's transaction: for
    /// every replica on one database at once.
    pub(crate) fn entry_caps(&self) -> EntryCaps {
        EntryCaps {
            max_entries: self.max_entries,
            max_per_principal: self.max_entries_per_principal,
        }
    }
}

/// What a client is told when a registration would pass a cap, naming the flag that sets it.
pub(crate) fn explain(cap: &CapReached) -> String {
    match cap {
        CapReached::Entries { held, max } => format!(
            "the registry holds {held} entries, its limit (--max-entries {max}); delete some \
             or raise the limit"
        ),
        CapReached::PerPrincipal {
            principal,
            held,
            max,
        } => format!(
            "{principal} has registered {held} entries, its limit (--max-entries-per-token {max})"
        ),
    }
}

type Keyed = RateLimiter<String, governor::state::keyed::HashMapStateStore<String>, DefaultClock>;

/// The rate limiters of one registry process.
pub(crate) struct Limiter {
    writes: Option<Keyed>,
    reads: Option<Keyed>,
    clock: DefaultClock,
}

impl std::fmt::Debug for Limiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Limiter").finish_non_exhaustive()
    }
}

fn keyed(rate: u32, burst: u32) -> Option<Keyed> {
    let rate = NonZeroU32::new(rate)?;
    let burst = NonZeroU32::new(burst.max(rate.get())).unwrap_or(rate);
    Some(RateLimiter::hashmap(
        Quota::per_second(rate).allow_burst(burst),
    ))
}

impl Limiter {
    pub(crate) fn new(config: &LimitsConfig) -> Self {
        Self {
            writes: keyed(config.write_rate, config.write_burst),
            reads: keyed(config.read_rate, config.read_burst),
            clock: DefaultClock::default(),
        }
    }

    /// Whether requests of this kind are limited at all.
    fn applies(&self, write: bool) -> bool {
        if write {
            self.writes.is_some()
        } else {
            self.reads.is_some()
        }
    }

    /// `Err(seconds to wait)` when `client` is over the limit of its kind of request.
    fn check(&self, write: bool, client: String) -> Result<(), u64> {
        let limiter = if write { &self.writes } else { &self.reads };
        let Some(limiter) = limiter else {
            return Ok(());
        };
        let result = limiter.check_key(&client).map_err(|not_until| {
            let wait: Duration = not_until.wait_time_from(self.clock.now());
            wait.as_secs_f64().ceil().max(1.0) as u64
        });
        // Forget idle clients now and then, so the table stays small.
        if limiter.len() > 100_000 {
            limiter.retain_recent();
        }
        result
    }
}

/// The address a request came from: its peer's, or the client a trusted proxy names.
fn address(request: &Request, trusted: &[ipnet::IpNet]) -> IpAddr {
    let peer = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map_or(IpAddr::from([0, 0, 0, 0]), |c| c.0.ip());
    crate::forwarded::client(peer, request.headers(), trusted)
}

/// The registry token (`mcpf_<id>.<secret>`) a request presents, if any.
fn registry_token(request: &Request) -> Option<&str> {
    let token = crate::auth::bearer(request.headers())?.ok()?;
    crate::auth::tokens::split(token).map(|_| token)
}

/// Whether a request counts as a write, an expensive read, or neither (`None`).
fn kind(request: &Request) -> Option<bool> {
    match *request.method() {
        Method::POST | Method::PUT | Method::DELETE | Method::PATCH => Some(true),
        Method::GET | Method::HEAD => {
            let path = request.uri().path();
            (path == "/servers" || path == "/status" || path == "/events").then_some(false)
        }
        _ => None,
    }
}

/// The rate-limit middleware. A request counts against its registry token's id once that
/// token is verified (so clients behind one NAT or proxy keep their own budgets), else against
/// its address: a made-up or unverified token buys no budget of its own. A token is verified
/// only after its address's budget admitted the request, so a flood of bad tokens costs at
/// most that rate of lookups (and none for a token refused lately).
pub(crate) async fn limit(
    State(state): State<AppState>,
    mut request: Request,
    next: Next,
) -> Response {
    let Some(write) = kind(&request) else {
        return next.run(request).await;
    };
    if !state.limiter().applies(write) {
        return next.run(request).await;
    }
    let token = registry_token(&request).map(str::to_owned);
    let verified = token
        .as_deref()
        .and_then(|t| state.token_cache().verified_id(t, Utc::now()))
        .map(str::to_owned);
    let client = match &verified {
        Some(id) => format!("token:{id}"),
        None => format!(
            "ip:{}",
            address(&request, &state.config().limits.trusted_proxies)
        ),
    };
    if let Err(wait) = state.limiter().check(write, client) {
        tracing::debug!(write, "rate limited");
        return ApiError::RateLimited(wait).into_response();
    }
    // While the database is away, reads answered from memory must not wait for it; a
    // database error is the handler's to report, if it needs the token.
    if verified.is_none()
        && let Some(token) = token
        && !state.cache().database_known_away()
        && let Ok(found) = state.verify_token(&token).await
    {
        request.extensions_mut().insert(Checked(found));
    }
    next.run(request).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_client_has_its_own_bucket() {
        let limiter = Limiter::new(&LimitsConfig {
            write_rate: 1,
            write_burst: 3,
            ..LimitsConfig::default()
        });
        for _ in 0..3 {
            assert_eq!(limiter.check(true, "a".into()), Ok(()));
        }
        assert!(limiter.check(true, "a".into()).is_err());
        assert_eq!(limiter.check(true, "b".into()), Ok(()), "another client");
        // Reads are not limited here.
        for _ in 0..100 {
            assert_eq!(limiter.check(false, "a".into()), Ok(()));
        }
    }
}
