//! `watch`: the registry's changes as they happen (as `consul watch`), one line per change,
//! resuming after the last one seen when the stream drops.

use std::collections::HashMap;

use anyhow::Context;
use clap::Args;
use mcp_fleet_discovery::{Backoff, Change, ChangeFeed, ClientError, ListOptions};
use serde_json::Value;

use crate::commands::client::RegistryArg;

/// Options of `watch`.
#[derive(Debug, Args)]
pub(crate) struct WatchArgs {
    #[command(flatten)]
    registry: RegistryArg,
    /// Only servers having any of these tags (comma-separated), and their services' routing.
    #[arg(long, value_delimiter = ',')]
    tags: Vec<String>,
    /// Start with the changes after this revision (default: from now).
    #[arg(long, value_name = "REVISION")]
    since: Option<i64>,
    /// One JSON object per line (`{"revision","event","data"}`) instead of text.
    #[arg(long)]
    json: bool,
}

/// How long to wait between reconnection attempts.
const RECONNECT: Backoff = Backoff {
    initial: std::time::Duration::from_millis(250),
    max: std::time::Duration::from_secs(10),
};

pub(crate) async fn run(args: WatchArgs) -> anyhow::Result<()> {
    let client = args.registry.client()?;
    let mut filter = if args.tags.is_empty() {
        None
    } else {
        Some(TagFilter::load(&client, args.tags.clone()).await?)
    };
    let mut feed = ChangeFeed::new(client, args.since);
    // The first connection's failure is the command's; later ones are retried.
    let after = feed
        .connect()
        .await
        .with_context(|| format!("cannot follow the change feed of {}", args.registry.url()))?;
    eprintln!(
        "watching {} from revision {}",
        args.registry.url(),
        revision(after)
    );
    let mut attempt = 0;
    let mut connected = true;
    loop {
        let failed = if connected {
            match feed.next().await {
                Ok(change) => {
                    if filter.as_mut().is_none_or(|f| f.admits(&change)) {
                        print(&change, args.json)?;
                    }
                    continue;
                }
                Err(e) => e,
            }
        } else {
            match feed.connect().await {
                Ok(after) => {
                    connected = true;
                    attempt = 0;
                    eprintln!("reconnected; resuming after revision {}", revision(after));
                    continue;
                }
                Err(e) => e,
            }
        };
        connected = false;
        match failed {
            ClientError::Problem { status: 410, .. } => {
                eprintln!(
                    "the changes after revision {} are no longer kept; following from now",
                    revision(feed.revision())
                );
                feed.from_now();
            }
            e @ ClientError::Problem { status, .. } if status < 500 => {
                return Err(e).context("the registry refused the change feed");
            }
            e => {
                let wait = RECONNECT.delay(attempt);
                attempt = attempt.saturating_add(1);
                eprintln!(
                    "{e}; reconnecting in {}",
                    humantime::format_duration(round(wait))
                );
                tokio::time::sleep(wait).await;
            }
        }
    }
}

/// A revision for messages.
fn revision(revision: Option<i64>) -> String {
    revision.map_or_else(|| "now".into(), |r| r.to_string())
}

/// `wait` to the millisecond, for messages.
fn round(wait: std::time::Duration) -> std::time::Duration {
    std::time::Duration::from_millis(u64::try_from(wait.as_millis()).unwrap_or(u64::MAX))
}

/// Prints one change: `REVISION  EVENT  SUBJECT  DETAIL`, or its JSON.
fn print(change: &Change, json: bool) -> anyhow::Result<()> {
    use std::io::Write;
    let line = if json {
        serde_json::json!({
            "revision": change.revision,
            "event": change.kind,
            "data": change.data,
        })
        .to_string()
    } else {
        let subject = change.subject().unwrap_or("?");
        let detail = detail(change);
        let line = format!("{:<6} {:<9} {subject}", change.revision, change.kind);
        if detail.is_empty() {
            line
        } else {
            format!("{line}  {detail}")
        }
    };
    let mut out = std::io::stdout().lock();
    writeln!(out, "{line}")
        .and_then(|()| out.flush())
        .context("cannot write to standard output")
}

/// What changed, in a few words.
fn detail(change: &Change) -> String {
    let data = &change.data;
    let text = |key: &str| data.get(key).and_then(Value::as_str).unwrap_or_default();
    match change.kind.as_str() {
        "created" | "replaced" => {
            let tags = data
                .get("tags")
                .and_then(Value::as_array)
                .map(|tags| {
                    tags.iter()
                        .filter_map(Value::as_str)
                        .collect::<Vec<_>>()
                        .join(",")
                })
                .unwrap_or_default();
            format!("{} {} [{tags}]", text("version"), text("url"))
        }
        "status" => match data.get("lastError").and_then(Value::as_str) {
            Some(error) if !error.is_empty() => {
                format!("{} → {}: {error}", text("from"), text("to"))
            }
            _ => format!("{} → {}", text("from"), text("to")),
        },
        "routing" => match data.get("weights").and_then(Value::as_object) {
            Some(weights) => weights
                .iter()
                .map(|(version, weight)| format!("{version}={weight}"))
                .collect::<Vec<_>>()
                .join(", "),
            None => "policy deleted".into(),
        },
        _ => String::new(),
    }
}

/// Which changes concern servers having any of the tags: `status` and `deleted` events carry
/// no tags, so the matching servers (and their services) are known from a listing at the start
/// and kept up to date from `created` and `replaced` events.
struct TagFilter {
    tags: Vec<String>,
    /// Matching server id → its service.
    servers: HashMap<String, String>,
}

impl TagFilter {
    async fn load(
        client: &mcp_fleet_discovery::RegistryClient,
        tags: Vec<String>,
    ) -> anyhow::Result<Self> {
        let options = ListOptions {
            tags: tags.clone(),
            status: Some("any".into()),
            limit: Some(1000),
            cursor: None,
        };
        let entries = client.list_all(&options).await?;
        let servers = entries
            .iter()
            .map(|e| (e.id.to_string(), e.service.to_string()))
            .collect();
        Ok(Self { tags, servers })
    }

    /// Whether `change` concerns a matching server (or service), noting those that come and go.
    fn admits(&mut self, change: &Change) -> bool {
        let Some(subject) = change.subject() else {
            return false;
        };
        match change.kind.as_str() {
            "created" | "replaced" => {
                let tags = change.data.get("tags").and_then(Value::as_array);
                let matches = tags.is_some_and(|tags| {
                    tags.iter()
                        .filter_map(Value::as_str)
                        .any(|t| self.tags.iter().any(|want| want == t))
                });
                let service = change
                    .data
                    .get("service")
                    .and_then(Value::as_str)
                    .unwrap_or(subject)
                    .to_owned();
                // A replacement that drops the tags is shown once, as the server leaving.
                let known = if matches {
                    self.servers.insert(subject.to_owned(), service).is_some()
                } else {
                    self.servers.remove(subject).is_some()
                };
                matches || known
            }
            "deleted" => self.servers.remove(subject).is_some(),
            "routing" => self.servers.values().any(|s| s == subject),
            _ => self.servers.contains_key(subject),
        }
    }
}
