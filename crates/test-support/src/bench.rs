//! What the benchmarks share: the binary's allocator ([`bench_allocator!`](crate::bench_allocator)),
//! settings from the environment, quantiles, CPU and memory readers, and an MCP server whose
//! tools answer at once.

use std::collections::BTreeMap;
use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

pub use mimalloc::MiMalloc;
use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, ContentBlock, ListToolsResult,
    PaginatedRequestParams, ServerCapabilities, ServerConfig, Tool,
};
use rmcp::service::RequestContext;
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::{StreamableHttpServerConfig, StreamableHttpService};
use rmcp::{ErrorData, RoleServer, ServerHandler};
use serde_json::json;
use tokio_util::sync::CancellationToken;

/// Makes mimalloc, the allocator the `mcp-fleet` binary uses, the bench's global allocator, so
/// the libraries run as they do in the binary.
#[macro_export]
macro_rules! bench_allocator {
    () => {
        #[global_allocator]
        static ALLOCATOR: $crate::bench::MiMalloc = $crate::bench::MiMalloc;
    };
}

/// The environment variable `name` parsed, or `default` when it is unset or does not parse.
pub fn env_or<T: FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The `q` quantile (0..=1) of sorted `samples`; zero when there are none.
pub fn quantile(sorted: &[Duration], q: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    sorted[((sorted.len() - 1) as f64 * q).round() as usize]
}

/// The median of `xs` (the upper one of an even count); zero when there are none.
pub fn median(mut xs: Vec<Duration>) -> Duration {
    xs.sort_unstable();
    xs.get(xs.len() / 2).copied().unwrap_or_default()
}

/// Linux reports CPU time in clock ticks (`USER_HZ`), 100 a second on every common configuration.
const TICKS_PER_SECOND: u64 = 100;

/// utime + stime, in clock ticks, from the text of a `/proc/.../stat` file.
fn stat_ticks(stat: &str) -> Option<(&str, u64)> {
    // The command name is in parentheses and may contain spaces; after it, the state is field
    // 0, utime field 11 and stime field 12.
    let (open, close) = (stat.find('(')?, stat.rfind(')')?);
    let mut fields = stat[close + 1..].split_whitespace().skip(11);
    let user: u64 = fields.next()?.parse().ok()?;
    let system: u64 = fields.next()?.parse().ok()?;
    Some((&stat[open + 1..close], user + system))
}

/// The CPU time this process has used so far, user and system, all threads (Linux:
/// `/proc/self/stat`, to 10 ms). `None` elsewhere.
pub fn process_cpu() -> Option<Duration> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    let (_, ticks) = stat_ticks(&stat)?;
    Some(Duration::from_millis(ticks * 1000 / TICKS_PER_SECOND))
}

/// CPU seconds (user + system) each of this process's threads has used, by thread name with
/// trailing digits and dashes dropped, so that a runtime's threads add up. Empty off Linux.
pub fn thread_cpu() -> BTreeMap<String, f64> {
    let mut by_name = BTreeMap::new();
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return by_name;
    };
    for task in tasks.flatten() {
        let Ok(stat) = std::fs::read_to_string(task.path().join("stat")) else {
            continue;
        };
        let Some((name, ticks)) = stat_ticks(&stat) else {
            continue;
        };
        let name = name.trim_end_matches(|c: char| c.is_ascii_digit() || c == '-');
        *by_name.entry(name.to_string()).or_insert(0.0) += ticks as f64 / TICKS_PER_SECOND as f64;
    }
    by_name
}

/// What each thread group of [`thread_cpu`] used between two readings, largest first (groups
/// under 10 ms left out).
pub fn cpu_spent(
    before: &BTreeMap<String, f64>,
    after: &BTreeMap<String, f64>,
) -> Vec<(String, f64)> {
    let mut spent: Vec<(String, f64)> = after
        .iter()
        .map(|(name, s)| (name.clone(), s - before.get(name).copied().unwrap_or(0.0)))
        .filter(|(_, s)| *s >= 0.01)
        .collect();
    spent.sort_by(|a, b| b.1.total_cmp(&a.1));
    spent
}

/// `VmRSS` and `VmHWM` of process `pid`, in MiB (Linux: `/proc/<pid>/status`).
pub fn rss(pid: u32) -> (f64, f64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("proc status");
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
            .map_or(f64::NAN, |kb| kb / 1024.0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

/// An MCP server whose tools answer `ok` at once.
#[derive(Clone)]
pub struct EchoServer {
    tools: Arc<Vec<Tool>>,
    /// Milliseconds each `tools/list` waits before answering: a remote server's round trip.
    list_latency_ms: Arc<AtomicU64>,
    nodelay: bool,
}

impl ServerHandler for EchoServer {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, ErrorData> {
        let delay = self.list_latency_ms.load(Ordering::Relaxed);
        if delay > 0 {
            tokio::time::sleep(Duration::from_millis(delay)).await;
        }
        Ok(ListToolsResult::with_all_items((*self.tools).clone()))
    }

    async fn call_tool(
        &self,
        _request: CallToolRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        Ok(CallToolResult::success(vec![ContentBlock::text("ok")]).into())
    }
}

impl EchoServer {
    /// A server offering `tools`, answering `tools/list` after `list_latency_ms` (which the
    /// bench may change while it runs).
    pub fn new(tools: Arc<Vec<Tool>>, list_latency_ms: Arc<AtomicU64>) -> Self {
        Self {
            tools,
            list_latency_ms,
            nodelay: false,
        }
    }

    /// Sets `TCP_NODELAY` on its connections (axum's default is not to, so that answers are
    /// held back by Nagle's algorithm on reused connections).
    pub fn nodelay(mut self, nodelay: bool) -> Self {
        self.nodelay = nodelay;
        self
    }

    /// Serves MCP at `/mcp` on 127.0.0.1:0 until `stop`; returns the base URL.
    pub async fn start(self, stop: &CancellationToken) -> String {
        let config =
            StreamableHttpServerConfig::default().with_cancellation_token(stop.child_token());
        let nodelay = self.nodelay;
        let service = StreamableHttpService::new(
            move || Ok(self.clone()),
            Arc::new(LocalSessionManager::default()),
            config,
        );
        let app = axum::Router::new().nest_service("/mcp", service);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let url = format!("http://{}", listener.local_addr().expect("addr"));
        let listener = axum::serve::ListenerExt::tap_io(listener, move |tcp| {
            if nodelay {
                let _ = tcp.set_nodelay(true);
            }
        });
        let until = stop.clone();
        tokio::spawn(async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(until.cancelled_owned())
                .await
        });
        url
    }
}

/// `n` tools `tool_00`, `tool_01`, … with a one-string-argument schema and a description of
/// ordinary length.
pub fn tools(n: usize) -> Arc<Vec<Tool>> {
    let serde_json::Value::Object(schema) =
        json!({"type": "object", "properties": {"query": {"type": "string"}}})
    else {
        unreachable!("a literal object")
    };
    let schema = Arc::new(schema);
    Arc::new(
        (0..n)
            .map(|i| {
                Tool::new(
                    format!("tool_{i:02}"),
                    format!("Tool number {i}, with a description of ordinary length."),
                    schema.clone(),
                )
            })
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_ticks_reads_utime_and_stime_after_a_name_with_spaces_and_parentheses() {
        let stat = "42 (tokio (rt) 3) S 1 2 3 4 5 6 7 8 9 10 250 70 0 0";
        assert_eq!(stat_ticks(stat), Some(("tokio (rt) 3", 320)));
        assert_eq!(stat_ticks("42 (cut short) S 1 2"), None);
    }

    #[test]
    fn quantiles_and_medians_of_sorted_samples() {
        let ms = |n| Duration::from_millis(n);
        let sorted: Vec<Duration> = (1..=101).map(ms).collect();
        assert_eq!(quantile(&sorted, 0.5), ms(51));
        assert_eq!(quantile(&sorted, 0.99), ms(100));
        assert_eq!(quantile(&[], 0.5), Duration::ZERO);
        assert_eq!(median(vec![ms(3), ms(1), ms(2), ms(4)]), ms(3));
        assert_eq!(median(Vec::new()), Duration::ZERO);
    }

    #[test]
    fn env_or_falls_back_when_unset_or_unparsable() {
        assert_eq!(env_or("MCP_FLEET_TEST_SURELY_UNSET_VARIABLE", 7_u64), 7);
        // PATH is set in any test environment and is not a number.
        assert_eq!(env_or("PATH", 3_usize), 3);
    }
}
