//! Which addresses the health checker may probe: a deny/allow CIDR policy, a DNS resolver that
//! enforces it at connect time, and the HTTP client every probe goes through.
//!
//! Clients choose the URLs the registry fetches, so without this the registry would reach places
//! they cannot (cloud metadata at 169.254.169.254, link-local devices). Checking at resolution
//! time, inside the connector, closes the DNS-rebinding gap between "checked" and "connected":
//! the addresses we connect to are exactly the ones we checked. reqwest does not call the
//! resolver for literal IP hosts, so [`AddressPolicy::check_url`] must run before every probe.

use std::error::Error as StdError;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use url::{Host, Url};

/// Ranges refused unless configured otherwise: link-local (cloud metadata endpoints live there),
/// "this network", multicast, broadcast and the unspecified IPv6 address. Loopback and private
/// ranges are absent on purpose: fleets live there.
const DEFAULT_DENY: [IpNet; 7] = [
    IpNet::V4(Ipv4Net::new_assert(Ipv4Addr::new(169, 254, 0, 0), 16)),
    IpNet::V6(Ipv6Net::new_assert(
        Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 0),
        10,
    )),
    IpNet::V4(Ipv4Net::new_assert(Ipv4Addr::new(0, 0, 0, 0), 8)),
    IpNet::V4(Ipv4Net::new_assert(Ipv4Addr::new(224, 0, 0, 0), 4)),
    IpNet::V6(Ipv6Net::new_assert(
        Ipv6Addr::new(0xff00, 0, 0, 0, 0, 0, 0, 0),
        8,
    )),
    IpNet::V4(Ipv4Net::new_assert(Ipv4Addr::BROADCAST, 32)),
    IpNet::V6(Ipv6Net::new_assert(Ipv6Addr::UNSPECIFIED, 128)),
];

/// Idle connections outlive one probe (an MCP probe makes several requests) but not the gap
/// between probes: with thousands of hosts, kept-alive sockets would only hold file descriptors.
const POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(5);

/// Idle connections kept per host: entries often share one (servers behind one ingress or load
/// balancer), and a sweep's probes to it then reuse connections instead of each opening its own
/// (the sweep bench's 9,000 probes of one host: the worker's CPU time fell by about a tenth).
const POOL_IDLE_PER_HOST: usize = 32;

/// The `User-Agent` of every probe, so operators can recognise (and allow) the health checker.
const USER_AGENT: &str = concat!("mcp-fleet-health/", env!("CARGO_PKG_VERSION"));

/// Which addresses may be probed: denied ranges, and allowed ranges that carve exceptions out of
/// them. IPv4-mapped IPv6 ranges are stored in their IPv4 form, as addresses are checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct AddressPolicy {
    deny: Vec<IpNet>,
    allow: Vec<IpNet>,
}

impl AddressPolicy {
    /// The default deny list plus `extra_deny`, with `allow` exceptions (`--probe-deny-cidr`,
    /// `--probe-allow-cidr`).
    pub(crate) fn new(extra_deny: Vec<IpNet>, allow: Vec<IpNet>) -> Self {
        let deny = DEFAULT_DENY
            .into_iter()
            .chain(extra_deny)
            .map(canonical_net)
            .collect();
        let allow = allow.into_iter().map(canonical_net).collect();
        Self { deny, allow }
    }

    /// The denied ranges, defaults included (for logging the effective policy at startup).
    #[allow(dead_code)] // used by the health worker
    pub(crate) fn deny(&self) -> &[IpNet] {
        &self.deny
    }

    /// The allowed exceptions (for logging the effective policy at startup).
    #[allow(dead_code)] // used by the health worker
    pub(crate) fn allow(&self) -> &[IpNet] {
        &self.allow
    }

    /// Refuses `ip` when the most specific denied range holding it is not overridden by an
    /// allowed range at least as specific. `::ffff:a.b.c.d` is checked as `a.b.c.d`.
    pub(crate) fn check(&self, ip: IpAddr) -> Result<(), Refused> {
        let ip = ip.to_canonical();
        let Some(denied) = self
            .deny
            .iter()
            .filter(|net| net.contains(&ip))
            .max_by_key(|net| net.prefix_len())
        else {
            return Ok(());
        };
        let overridden = self
            .allow
            .iter()
            .any(|net| net.contains(&ip) && net.prefix_len() >= denied.prefix_len());
        if overridden {
            Ok(())
        } else {
            Err(Refused {
                addr: ip,
                range: *denied,
            })
        }
    }

    /// Checks a URL whose host is a literal IP (the resolver never sees those); domain hosts pass
    /// here and are checked by [`GuardedResolver`] when they are resolved.
    #[allow(dead_code)] // used by registration validation and the health worker
    pub(crate) fn check_url(&self, url: &Url) -> Result<(), Refused> {
        match url.host() {
            Some(Host::Ipv4(ip)) => self.check(IpAddr::V4(ip)),
            Some(Host::Ipv6(ip)) => self.check(IpAddr::V6(ip)),
            Some(Host::Domain(_)) | None => Ok(()),
        }
    }
}

impl Default for AddressPolicy {
    /// The default deny list, no exceptions.
    fn default() -> Self {
        Self::new(Vec::new(), Vec::new())
    }
}

/// An address the policy refuses, and the denied range that refuses it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("address {addr} is in the denied range {range}")]
pub(crate) struct Refused {
    /// The refused address, IPv4-mapped forms shown as IPv4.
    pub(crate) addr: IpAddr,
    /// The most specific denied range holding it.
    pub(crate) range: IpNet,
}

/// Why [`GuardedResolver`] gave the connector no address.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ResolveError {
    /// Every address the name resolved to is denied: the probe is refused, not failed.
    #[error("{host} resolved only to denied addresses ({first})")]
    OnlyDenied {
        /// The name that was resolved.
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

/// Finds a policy refusal in an error chain (such as a `reqwest::Error`), so the health worker
/// can record "refused: …" as the entry's `lastError` rather than a generic connect failure.
#[allow(dead_code)] // used by the health worker
pub(crate) fn refused_by_policy<'a>(
    mut err: &'a (dyn StdError + 'static),
) -> Option<&'a ResolveError> {
    loop {
        if let Some(found @ ResolveError::OnlyDenied { .. }) = err.downcast_ref::<ResolveError>() {
            return Some(found);
        }
        err = err.source()?;
    }
}

/// A reqwest resolver that resolves with the system resolver and drops denied addresses, so a
/// hostname pointing at a denied address is refused before any connection is attempted.
#[derive(Debug, Clone)]
pub(crate) struct GuardedResolver {
    policy: Arc<AddressPolicy>,
}

impl GuardedResolver {
    /// A resolver enforcing `policy`.
    pub(crate) fn new(policy: Arc<AddressPolicy>) -> Self {
        Self { policy }
    }
}

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let policy = Arc::clone(&self.policy);
        let host = name.as_str().to_owned();
        Box::pin(async move {
            let resolved = tokio::net::lookup_host((host.as_str(), 0))
                .await
                .map_err(|error| ResolveError::Lookup {
                    host: host.clone(),
                    error,
                })?;
            let mut allowed: Vec<SocketAddr> = Vec::new();
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
                    Some(first) => ResolveError::OnlyDenied { host, first },
                    None => ResolveError::NoAddresses { host },
                };
                tracing::debug!(%error, "refusing to connect");
                return Err(error.into());
            }
            tracing::debug!(%host, addrs = ?allowed, "resolved");
            let addrs: Addrs = Box::new(allowed.into_iter());
            Ok(addrs)
        })
    }
}

/// The HTTP client for probes: resolves through [`GuardedResolver`], follows no redirects (a
/// redirect could point anywhere, literal IPs included), ignores proxy settings (the proxy would
/// resolve for us), and keeps at most one idle connection per host, briefly.
///
/// Fails only if the TLS backend cannot be initialised.
#[allow(dead_code)] // used by the health worker
pub(crate) fn probe_client(
    policy: Arc<AddressPolicy>,
    timeout: Duration,
) -> Result<reqwest::Client, reqwest::Error> {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .dns_resolver(Arc::new(GuardedResolver::new(policy)))
        .no_proxy()
        .timeout(timeout)
        .connect_timeout(timeout)
        .user_agent(USER_AGENT)
        .pool_max_idle_per_host(POOL_IDLE_PER_HOST)
        .pool_idle_timeout(POOL_IDLE_TIMEOUT)
        .build()
}

/// Parses a `--probe-deny-cidr` / `--probe-allow-cidr` value: a CIDR range, or a bare address
/// meaning just that address (/32 or /128).
#[allow(dead_code)] // used by the CLI flags
pub fn parse_cidr(s: &str) -> Result<IpNet, String> {
    let s = s.trim();
    if s.contains('/') {
        let net: IpNet = s.parse().map_err(|_| {
            format!("{s:?} is not a CIDR range (expected e.g. 10.0.0.0/8 or fd00::/8)")
        })?;
        if net.trunc() != net {
            return Err(format!(
                "{s:?} has host bits set; did you mean {}?",
                net.trunc()
            ));
        }
        Ok(net)
    } else {
        let ip: IpAddr = s.parse().map_err(|_| {
            format!(
                "{s:?} is not an IP address or CIDR range (expected e.g. 10.0.0.0/8 or 192.0.2.7)"
            )
        })?;
        Ok(IpNet::from(ip))
    }
}

/// `::ffff:a.b.c.d/(96+n)` becomes `a.b.c.d/n`, because addresses are canonicalised before
/// they are checked and an IPv6 range would never match an IPv4 address.
fn canonical_net(net: IpNet) -> IpNet {
    match net {
        IpNet::V6(v6) if v6.prefix_len() >= 96 => match v6.addr().to_ipv4_mapped() {
            Some(v4) => IpNet::V4(Ipv4Net::new_assert(v4, v6.prefix_len() - 96)),
            None => net,
        },
        _ => net,
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::{TcpListener, TcpStream};
    use tokio::sync::mpsc;

    use super::*;

    fn net(s: &str) -> IpNet {
        parse_cidr(s).expect("test CIDR parses")
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("test address parses")
    }

    /// One row per address: the range expected to refuse it, or `None` for allowed.
    fn assert_table(policy: &AddressPolicy, rows: &[(&str, Option<&str>)]) {
        for &(addr, denied_by) in rows {
            let got = policy.check(ip(addr)).err().map(|refused| refused.range);
            assert_eq!(got, denied_by.map(net), "checking {addr}");
        }
    }

    #[test]
    fn defaults_deny_metadata_link_local_multicast_and_unspecified() {
        assert_table(
            &AddressPolicy::default(),
            &[
                ("169.254.169.254", Some("169.254.0.0/16")),
                ("::ffff:169.254.169.254", Some("169.254.0.0/16")),
                ("fe80::1", Some("fe80::/10")),
                ("0.0.0.0", Some("0.0.0.0/8")),
                ("::ffff:0.0.0.0", Some("0.0.0.0/8")),
                ("224.0.0.1", Some("224.0.0.0/4")),
                ("239.255.255.250", Some("224.0.0.0/4")),
                ("ff02::1", Some("ff00::/8")),
                ("255.255.255.255", Some("255.255.255.255/32")),
                ("::", Some("::/128")),
                ("127.0.0.1", None),
                ("10.1.2.3", None),
                ("192.168.1.1", None),
                ("::ffff:10.1.2.3", None),
                ("::1", None),
                ("fd00::1", None),
                ("93.184.216.34", None),
            ],
        );
    }

    #[test]
    fn refusal_names_the_address_and_range() {
        let refused = AddressPolicy::default()
            .check(ip("::ffff:169.254.169.254"))
            .expect_err("metadata address is denied");
        assert_eq!(
            refused.to_string(),
            "address 169.254.169.254 is in the denied range 169.254.0.0/16"
        );
    }

    #[test]
    fn narrower_allow_overrides_a_wider_deny_but_not_the_reverse() {
        let policy = AddressPolicy::new(
            vec![net("10.0.0.0/8"), net("10.9.9.0/24")],
            vec![net("169.254.10.0/24"), net("10.9.0.0/16")],
        );
        assert_table(
            &policy,
            &[
                ("169.254.10.5", None),
                ("::ffff:169.254.10.5", None),
                ("169.254.169.254", Some("169.254.0.0/16")),
                ("10.9.1.1", None),
                // The /24 deny is more specific than the /16 allow.
                ("10.9.9.9", Some("10.9.9.0/24")),
                ("10.1.1.1", Some("10.0.0.0/8")),
            ],
        );
    }

    #[test]
    fn allow_of_the_same_range_lifts_a_default_deny() {
        let policy = AddressPolicy::new(Vec::new(), vec![net("169.254.0.0/16")]);
        assert_table(
            &policy,
            &[("169.254.169.254", None), ("fe80::1", Some("fe80::/10"))],
        );
    }

    #[test]
    fn extra_deny_of_loopback_denies_loopback() {
        let policy = AddressPolicy::new(vec![net("127.0.0.0/8"), net("::1")], Vec::new());
        assert_table(
            &policy,
            &[
                ("127.0.0.1", Some("127.0.0.0/8")),
                ("127.3.4.5", Some("127.0.0.0/8")),
                ("::ffff:127.0.0.1", Some("127.0.0.0/8")),
                ("::1", Some("::1/128")),
                ("10.1.2.3", None),
            ],
        );
    }

    #[test]
    fn ipv4_mapped_ranges_apply_to_ipv4_addresses() {
        let policy = AddressPolicy::new(vec![net("::ffff:10.0.0.0/104")], Vec::new());
        assert_table(
            &policy,
            &[
                ("10.1.2.3", Some("10.0.0.0/8")),
                ("::ffff:10.1.2.3", Some("10.0.0.0/8")),
            ],
        );
    }

    #[test]
    fn check_url_checks_literal_hosts_only() {
        let policy = AddressPolicy::default();
        let rows: &[(&str, bool)] = &[
            ("http://169.254.169.254/latest/meta-data", false),
            ("http://[::ffff:169.254.169.254]/", false),
            ("http://[fe80::1]:8080/mcp", false),
            // The URL parser normalises these spellings to 169.254.169.254.
            ("http://2852039166/", false),
            ("http://0xa9.0xfe.0xa9.0xfe/", false),
            ("http://0.0.0.0:8080/", false),
            ("http://127.0.0.1:8080/mcp", true),
            ("http://[::1]:8080/mcp", true),
            ("http://10.0.0.5/health", true),
            // Names are checked when they are resolved.
            ("http://metadata.google.internal/", true),
            ("http://localhost/", true),
        ];
        for &(url, allowed) in rows {
            let parsed = Url::parse(url).expect("test URL parses");
            assert_eq!(policy.check_url(&parsed).is_ok(), allowed, "checking {url}");
        }
    }

    #[test]
    fn parse_cidr_accepts_ranges_and_bare_addresses() {
        let ok: &[(&str, &str)] = &[
            ("10.0.0.0/8", "10.0.0.0/8"),
            (" fe80::/10 ", "fe80::/10"),
            ("169.254.169.254", "169.254.169.254/32"),
            ("::1", "::1/128"),
        ];
        for &(input, expected) in ok {
            assert_eq!(
                parse_cidr(input).map(|n| n.to_string()),
                Ok(expected.to_owned())
            );
        }
        let bad: &[(&str, &str)] = &[
            ("10.1.2.3/8", "did you mean 10.0.0.0/8?"),
            ("10.0.0.0/33", "is not a CIDR range"),
            ("example.com", "is not an IP address or CIDR range"),
            ("", "is not an IP address or CIDR range"),
        ];
        for &(input, expected) in bad {
            let err = parse_cidr(input).expect_err(input);
            assert!(err.contains(expected), "{input:?}: {err}");
        }
    }

    /// A hand-written HTTP/1.1 server on 127.0.0.1 that reports every accepted connection, in
    /// accept order, and records every request head. `/health` answers 200, `/old` redirects to
    /// `/health`.
    struct Upstream {
        addr: SocketAddr,
        accepted: mpsc::UnboundedReceiver<SocketAddr>,
        requests: Arc<Mutex<Vec<String>>>,
    }

    impl Upstream {
        async fn start() -> Self {
            let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
            let addr = listener.local_addr().expect("local addr");
            let (tx, accepted) = mpsc::unbounded_channel();
            let requests = Arc::new(Mutex::new(Vec::new()));
            let seen = Arc::clone(&requests);
            tokio::spawn(async move {
                while let Ok((stream, peer)) = listener.accept().await {
                    let _ = tx.send(peer);
                    tokio::spawn(serve(stream, Arc::clone(&seen)));
                }
            });
            Self {
                addr,
                accepted,
                requests,
            }
        }

        fn paths(&self) -> Vec<String> {
            let requests = self.requests.lock().expect("not poisoned");
            requests
                .iter()
                .filter_map(|head| head.split(' ').nth(1).map(str::to_owned))
                .collect()
        }

        /// Asserts nothing connected before now: connects once more and checks that this
        /// sentinel is the first connection the listener accepts (the accept queue is FIFO).
        async fn assert_no_connections(&mut self) {
            let sentinel = TcpStream::connect(self.addr)
                .await
                .expect("sentinel connects");
            let sentinel_addr = sentinel.local_addr().expect("sentinel addr");
            let first = tokio::time::timeout(Duration::from_secs(5), self.accepted.recv())
                .await
                .expect("listener accepts within the deadline")
                .expect("accept loop alive");
            assert_eq!(
                first, sentinel_addr,
                "something connected before the sentinel"
            );
        }
    }

    async fn serve(mut stream: TcpStream, seen: Arc<Mutex<Vec<String>>>) {
        let mut head = Vec::new();
        let mut buf = [0u8; 1024];
        while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < 16 * 1024 {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => head.extend_from_slice(&buf[..n]),
            }
        }
        let head = String::from_utf8_lossy(&head).into_owned();
        let path = head.split(' ').nth(1).unwrap_or_default().to_owned();
        seen.lock().expect("not poisoned").push(head);
        let response: &[u8] = match path.as_str() {
            "/health" => b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok",
            "/old" => b"HTTP/1.1 302 Found\r\nlocation: /health\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
            _ => b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
        };
        let _ = stream.write_all(response).await;
        let _ = stream.shutdown().await;
    }

    fn client(policy: AddressPolicy) -> reqwest::Client {
        probe_client(Arc::new(policy), Duration::from_secs(5)).expect("client builds")
    }

    fn deny_loopback() -> AddressPolicy {
        AddressPolicy::new(vec![net("127.0.0.0/8"), net("::1/128")], Vec::new())
    }

    #[test]
    fn metadata_url_is_refused_before_any_request() {
        let url = Url::parse("http://169.254.169.254/latest/meta-data").expect("URL parses");
        let refused = AddressPolicy::default()
            .check_url(&url)
            .expect_err("metadata endpoint is refused");
        assert_eq!(refused.range, net("169.254.0.0/16"));
    }

    #[tokio::test]
    async fn literal_ip_hosts_bypass_the_resolver_so_check_url_must_guard_them() {
        let mut upstream = Upstream::start().await;
        let url = Url::parse(&format!("http://{}/health", upstream.addr)).expect("URL parses");
        let policy = deny_loopback();
        assert!(
            policy.check_url(&url).is_err(),
            "check_url refuses the literal"
        );
        // Without check_url the request goes through: reqwest never asks the resolver about IPs.
        let response = client(policy)
            .get(url)
            .send()
            .await
            .expect("request succeeds");
        assert_eq!(response.status(), reqwest::StatusCode::OK);
        assert!(upstream.accepted.try_recv().is_ok());
    }

    #[tokio::test]
    async fn hostname_resolving_to_a_denied_address_is_refused_without_connecting() {
        let mut upstream = Upstream::start().await;
        let url = format!("http://localhost:{}/health", upstream.addr.port());
        let err = client(deny_loopback())
            .get(&url)
            .send()
            .await
            .expect_err("probe is refused");
        let refusal = refused_by_policy(&err).expect("the refusal is in the error chain");
        assert!(
            refusal
                .to_string()
                .starts_with("localhost resolved only to denied addresses (address "),
            "{refusal}"
        );
        upstream.assert_no_connections().await;
        assert!(upstream.paths().is_empty());
    }

    #[tokio::test]
    async fn hostname_resolving_to_an_allowed_address_is_probed() {
        let upstream = Upstream::start().await;
        let url = format!("http://localhost:{}/health", upstream.addr.port());
        let response = client(AddressPolicy::default())
            .get(&url)
            .send()
            .await
            .expect("probe succeeds");
        assert_eq!(response.status(), reqwest::StatusCode::OK);
        assert_eq!(response.text().await.expect("body"), "ok");
        let requests = upstream.requests.lock().expect("not poisoned").clone();
        assert_eq!(requests.len(), 1);
        assert!(
            requests[0]
                .to_ascii_lowercase()
                .contains(&format!("user-agent: {USER_AGENT}\r\n")),
            "{}",
            requests[0]
        );
    }

    #[tokio::test]
    async fn redirects_are_not_followed() {
        let upstream = Upstream::start().await;
        let url = format!("http://localhost:{}/old", upstream.addr.port());
        let response = client(AddressPolicy::default())
            .get(&url)
            .send()
            .await
            .expect("probe succeeds");
        assert_eq!(response.status(), reqwest::StatusCode::FOUND);
        assert_eq!(
            response
                .headers()
                .get(reqwest::header::LOCATION)
                .map(|v| v.as_bytes()),
            Some(&b"/health"[..])
        );
        assert_eq!(upstream.paths(), ["/old"]);
    }
}
