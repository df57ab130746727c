//! Shared test fixtures: throwaway SQLite and PostgreSQL databases, a PostgreSQL cluster a test
//! may stop and start ([`PgCluster`]), polling with a deadline, a router served on loopback
//! ([`serve`]), a listener nothing may connect to ([`Trap`]), an OAuth 2.0 token endpoint
//! ([`TokenEndpoint`]) and a bearer-token gate for any router ([`require_bearer`]), a
//! certificate made on the spot and a TLS listener for `https://` servers ([`TestCert`]), and
//! headless Chromium for page tests ([`browser`]). Servers for faults ([`faults`]) and, with the
//! `registry` feature, a real registry and its client ([`registry`]); with `mcp-server`, a small
//! MCP server tests control (`mcp_server`); with `bench`, what the benchmarks share (`bench`).
//!
//! PostgreSQL tests use the cluster named by `MCP_FLEET_TEST_POSTGRES_URL` (which `scripts/test`
//! starts); each test gets a database of its own. Without it they are skipped, except under
//! `CI=true`, where a missing PostgreSQL is a failure.

#[cfg(feature = "bench")]
pub mod bench;
pub mod browser;
pub mod faults;
#[cfg(feature = "mcp-server")]
pub mod mcp_server;
mod pg_cluster;
#[cfg(feature = "registry")]
pub mod registry;
mod tls;
mod tokens;
mod trap;

pub use pg_cluster::PgCluster;
pub use tls::{TestCert, TlsListener};
pub use tokens::{Accepted, TokenEndpoint, accepting, bearer_accepted, require_bearer};
pub use trap::Trap;

pub use faults::{black_hole, live_server, refused_url, timed_black_hole};
#[cfg(feature = "registry")]
pub use registry::TestRegistry;

use std::future::Future;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use sqlx::Connection;

/// Serves `app` on `127.0.0.1:0` until `shutdown`; returns its base URL (`http://127.0.0.1:<port>`).
pub async fn serve(app: axum::Router, shutdown: tokio_util::sync::CancellationToken) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind a loopback port");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    tokio::spawn(async move {
        // TCP_NODELAY, as every listener mcp-fleet runs: no answer waits for a delayed ACK.
        let listener = axum::serve::ListenerExt::tap_io(listener, |tcp| {
            let _ = tcp.set_nodelay(true);
        });
        axum::serve(listener, app)
            .with_graceful_shutdown(shutdown.cancelled_owned())
            .await
    });
    url
}

/// The environment variable naming the test PostgreSQL cluster.
pub const POSTGRES_ENV: &str = "MCP_FLEET_TEST_POSTGRES_URL";

/// A database for one test; dropping it removes an SQLite file (PostgreSQL databases are left
/// to the throwaway cluster, which `scripts/test` deletes).
#[derive(Debug)]
pub struct TestDb {
    /// The `--database-url` to use.
    pub url: String,
    /// `sqlite` or `postgres`.
    pub backend: &'static str,
    _dir: Option<tempfile::TempDir>,
}

impl TestDb {
    /// The same database for another process or replica; the first `TestDb` keeps owning it.
    pub fn shared(&self) -> TestDb {
        TestDb {
            url: self.url.clone(),
            backend: self.backend,
            _dir: None,
        }
    }
}

/// A fresh SQLite database file in a temporary directory.
pub fn sqlite() -> TestDb {
    let dir = tempfile::tempdir().expect("create temp dir");
    let path = dir.path().join("registry.db");
    TestDb {
        url: format!("sqlite://{}", path.display()),
        backend: "sqlite",
        _dir: Some(dir),
    }
}

/// A fresh, empty PostgreSQL database, or `None` when no test cluster is configured (a panic
/// under `CI=true`, where PostgreSQL tests must run).
pub async fn postgres() -> Option<TestDb> {
    let Ok(admin_url) = std::env::var(POSTGRES_ENV) else {
        if std::env::var("CI").is_ok_and(|v| v == "true") {
            panic!("{POSTGRES_ENV} is not set under CI=true: PostgreSQL tests must run");
        }
        eprintln!("skipping PostgreSQL: {POSTGRES_ENV} is not set (scripts/test sets it)");
        return None;
    };
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let name = format!(
        "t_{}_{}_{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos())
    );
    let mut admin = sqlx::PgConnection::connect(&admin_url)
        .await
        .unwrap_or_else(|e| panic!("cannot connect to {POSTGRES_ENV}: {e}"));
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&mut admin)
        .await
        .expect("create test database");
    let base = admin_url
        .rsplit_once('/')
        .map_or(admin_url.as_str(), |(base, _)| base);
    Some(TestDb {
        url: format!("{base}/{name}"),
        backend: "postgres",
        _dir: None,
    })
}

/// Both backends: SQLite always, PostgreSQL when configured.
pub async fn all_backends() -> Vec<TestDb> {
    let mut dbs = vec![sqlite()];
    dbs.extend(postgres().await);
    dbs
}

/// Polls `check` until it returns `Some`, or panics with `what` after `timeout`.
pub async fn eventually<T, F, Fut>(timeout: Duration, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// How long a condition polled with [`poll`] may take to come true.
pub const DEADLINE: Duration = Duration::from_secs(20);

/// [`eventually`] with the [`DEADLINE`] every suite shares.
pub async fn poll<T, F, Fut>(what: &str, check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    eventually(DEADLINE, what, check).await
}
