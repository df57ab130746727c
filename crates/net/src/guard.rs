//! The address policy at connect time: a DNS resolver for reqwest that drops denied addresses,
//! the same check for the library's own TCP connects, and finding a refusal in an error chain.
//!
//! Checking inside the connector closes the DNS-rebinding gap between "checked" and
//! "connected": the addresses connected to are exactly the ones checked. reqwest does not ask
//! its resolver about literal IP hosts, so URLs are also checked with
//! [`AddressPolicy::check_url`] before their first request.

use std::error::Error as StdError;
use std::net::SocketAddr;
use std::sync::Arc;

use mcp_fleet_model::{AddressPolicy, Refused};
use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use rmcp::transport::streamable_http_client::StreamableHttpError;

/// Why a connect was given no address.
#[derive(Debug, thiserror::Error)]
pub enum ResolveError {
    /// Every address the host is (or resolved to) is denied: refused, not failed.
    #[error("{host} resolved only to denied addresses ({first})")]
    OnlyDenied {
        /// The host that was resolved.
        host: String,
        /// Why the first address was refused.
        first: Refused,
    },
    /// The lookup succeeded with an empty answer.
    #[error("{host} resolved to no addresses")]
    NoAddresses {
        /// The name that was resolved.
        host: String,
    },
    /// The system resolver failed.
    #[error("resolving {host}: {error}")]
    Lookup {
        /// The name that was resolved.
        host: String,
        /// What the system resolver said (kept in the message, not as a source, so it is not
        /// repeated when the chain is printed).
        error: std::io::Error,
    },
}

/// Finds a policy refusal in an error chain (a `reqwest::Error`, rmcp's transport errors, an
/// `io::Error` from a connector), so it can be reported as "refused: …" rather than a generic
/// connect failure.
pub fn refused_by_policy<'a>(error: &'a (dyn StdError + 'static)) -> Option<&'a ResolveError> {
    let mut next = Some(error);
    while let Some(current) = next {
        if let Some(found @ ResolveError::OnlyDenied { .. }) =
            current.downcast_ref::<ResolveError>()
        {
            return Some(found);
        }
        // `io::Error::source` skips the error it wraps.
        if let Some(io) = current.downcast_ref::<std::io::Error>()
            && let Some(inner) = io.get_ref()
            && let Some(found) = refused_by_policy(inner)
        {
            return Some(found);
        }
        // rmcp's transport error holds the client's error without naming it as its source.
        if let Some(StreamableHttpError::Client(inner)) =
            current.downcast_ref::<StreamableHttpError<reqwest::Error>>()
            && let Some(found) = refused_by_policy(inner)
        {
            return Some(found);
        }
        next = current.source();
    }
    None
}

/// Resolves `host` (a name or a literal IP, brackets allowed) with the system resolver and keeps
/// the addresses `policy` allows, with `port`.
pub async fn resolve(
    policy: &AddressPolicy,
    host: &str,
    port: u16,
) -> Result<Vec<SocketAddr>, ResolveError> {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let resolved: Vec<SocketAddr> = match host.parse::<std::net::IpAddr>() {
        Ok(ip) => vec![SocketAddr::new(ip, port)],
        Err(_) => tokio::net::lookup_host((host, port))
            .await
            .map_err(|error| ResolveError::Lookup {
                host: host.to_owned(),
                error,
            })?
            .collect(),
    };
    let mut allowed = Vec::new();
    let mut first_refusal = None;
    for addr in resolved {
        match policy.check(addr.ip()) {
            Ok(()) => allowed.push(addr),
            Err(refused) => {
                tracing::debug!(%host, %refused, "dropping denied address");
                first_refusal.get_or_insert(refused);
            }
        }
    }
    if allowed.is_empty() {
        let error = match first_refusal {
            Some(first) => ResolveError::OnlyDenied {
                host: host.to_owned(),
                first,
            },
            None => ResolveError::NoAddresses {
                host: host.to_owned(),
            },
        };
        tracing::debug!(%error, "refusing to connect");
        return Err(error);
    }
    Ok(allowed)
}

/// A reqwest resolver that drops denied addresses, so a name pointing at a denied address is
/// refused before any connection is attempted.
#[derive(Debug, Clone)]
pub struct GuardedResolver {
    policy: Arc<AddressPolicy>,
}

impl GuardedResolver {
    /// A resolver enforcing `policy`.
    pub fn new(policy: Arc<AddressPolicy>) -> Self {
        Self { policy }
    }
}

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let policy = Arc::clone(&self.policy);
        let host = name.as_str().to_owned();
        Box::pin(async move {
            let allowed = resolve(&policy, &host, 0).await?;
            let addrs: Addrs = Box::new(allowed.into_iter());
            Ok(addrs)
        })
    }
}

/// A reqwest client builder whose connections obey `policy` for names: resolves through
/// [`GuardedResolver`], follows no redirects (a redirect could point anywhere, literal IPs
/// included) and ignores proxy settings (a proxy would resolve for us). Literal IP hosts still
/// need [`AddressPolicy::check_url`] before the first request.
pub fn client_builder(policy: Arc<AddressPolicy>) -> reqwest::ClientBuilder {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .dns_resolver(Arc::new(GuardedResolver::new(policy)))
        .no_proxy()
}

#[cfg(test)]
mod tests {
    use super::*;

    use mcp_fleet_model::{PolicyMode, parse_cidr};

    fn deny_loopback() -> AddressPolicy {
        AddressPolicy::new(
            PolicyMode::Default,
            vec![
                parse_cidr("127.0.0.0/8").expect("CIDR"),
                parse_cidr("::1").expect("CIDR"),
            ],
            Vec::new(),
        )
    }

    #[tokio::test]
    async fn literal_and_named_hosts_are_both_checked() {
        let policy = deny_loopback();
        for host in [
            "127.0.0.1",
            "[::1]",
            "localhost",
            "[::ffff:127.0.0.1]",
            "[::127.0.0.1]",
        ] {
            let err = resolve(&policy, host, 80).await.expect_err(host);
            assert!(
                matches!(err, ResolveError::OnlyDenied { .. }),
                "{host}: {err}"
            );
        }
        let ok = resolve(&AddressPolicy::default(), "127.0.0.1", 80)
            .await
            .expect("allowed");
        assert_eq!(ok, [SocketAddr::from(([127, 0, 0, 1], 80))]);
    }

    #[tokio::test]
    async fn refusals_are_found_inside_io_errors() {
        let err = resolve(&deny_loopback(), "127.0.0.1", 80)
            .await
            .expect_err("denied");
        let wrapped = std::io::Error::other(err);
        let chained = std::io::Error::other(wrapped);
        let found = refused_by_policy(&chained).expect("found");
        assert_eq!(
            found.to_string(),
            "127.0.0.1 resolved only to denied addresses (address 127.0.0.1 is in the denied \
             range 127.0.0.0/8)"
        );
    }
}
