//! The HTTP client every probe (and alert) goes through: the address policy at connect time.
//!
//! The policy itself (`mcp_fleet_model::AddressPolicy`) and the guarded resolver
//! (`mcp_fleet_net::guard`) are shared with the discovery library and the gateway, so
//! every outbound connection made on an entry's behalf obeys the same rules. reqwest does not
//! call the resolver for literal IP hosts, so [`AddressPolicy::check_url`] must run before
//! every probe.

use std::sync::Arc;
use std::time::Duration;

pub(crate) use mcp_fleet_model::AddressPolicy;
pub use mcp_fleet_model::parse_cidr;
pub(crate) use mcp_fleet_net::guard::refused_by_policy;

/// Idle connections outlive one probe (an MCP probe makes several requests) but not the gap
/// between probes: with thousands of hosts, kept-alive sockets would only hold file descriptors.
const POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(5);

/// Idle connections kept per host: entries often share one (servers behind one ingress or load
/// balancer), and a sweep's probes to it then reuse connections instead of each opening its own
/// (docs/perf.md, health sweep).
const POOL_IDLE_PER_HOST: usize = 32;

/// The `User-Agent` of every probe, so operators can recognise (and allow) the health checker.
const USER_AGENT: &str = concat!("mcp-fleet-health/", env!("CARGO_PKG_VERSION"));

/// The HTTP client for probes: resolves through the guarded resolver, follows no redirects (a
/// redirect could point anywhere, literal IPs included), ignores proxy settings (the proxy would
/// resolve for us), and keeps idle connections per host, briefly.
///
/// Fails only if the TLS backend cannot be initialised.
pub(crate) fn probe_client(
    policy: Arc<AddressPolicy>,
    timeout: Duration,
) -> Result<reqwest::Client, reqwest::Error> {
    mcp_fleet_net::guard::client_builder(policy)
        .timeout(timeout)
        .connect_timeout(timeout)
        .user_agent(USER_AGENT)
        .pool_max_idle_per_host(POOL_IDLE_PER_HOST)
        .pool_idle_timeout(POOL_IDLE_TIMEOUT)
        .build()
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::{TcpListener, TcpStream};
    use tokio::sync::mpsc;

    use std::net::SocketAddr;

    use url::Url;

    use super::*;

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
        let net = |s| parse_cidr(s).expect("test CIDR parses");
        AddressPolicy::new(
            mcp_fleet_model::PolicyMode::Default,
            vec![net("127.0.0.0/8"), net("::1/128")],
            Vec::new(),
        )
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
