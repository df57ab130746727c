//! `import`: mirrors the servers of an official MCP Registry v0.1 API that have a
//! Streamable HTTP remote into entries of this registry, and reports what it did to each.

use std::collections::{HashMap, HashSet};

use anyhow::Context;
use clap::Args;
use mcp_fleet_discovery::official_client::V01Query;
use mcp_fleet_discovery::{ListOptions, RegistryClient};
use mcp_fleet_model::official::{OfficialStatus, ResponseMeta};
use mcp_fleet_model::server_json::{self, IMPORTED_FROM_KEY, Imported, MapOptions};
use mcp_fleet_model::{Entry, Registration, Tag, Version};
use serde::Serialize;
use serde_json::Value;

use super::client::{RegistryArg, registry_url};
use crate::output::{Grid, OutputArg};

/// Options of `import`.
#[derive(Debug, Args)]
pub(crate) struct ImportArgs {
    /// The registry written to.
    #[command(flatten)]
    registry: RegistryArg,
    /// Base URL of the registry read from, one serving the official MCP Registry's v0.1 API
    /// (`GET /v0.1/servers`), e.g. https://registry.modelcontextprotocol.io.
    #[arg(long, value_name = "URL", value_parser = registry_url)]
    from: String,
    /// Only servers whose name contains TEXT (the API's `search`).
    #[arg(long, value_name = "TEXT")]
    search: Option<String>,
    /// Tags given to every imported entry (comma-separated).
    #[arg(long, value_delimiter = ',')]
    tags: Vec<String>,
    /// Report what an import would do, and write nothing.
    #[arg(long)]
    dry_run: bool,
    #[command(flatten)]
    output: OutputArg,
}

/// What happened (or, with `--dry-run`, would happen) to one record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
enum Action {
    Created,
    Updated,
    Unchanged,
    Skipped,
}

impl std::fmt::Display for Action {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Created => "created",
            Self::Updated => "updated",
            Self::Unchanged => "unchanged",
            Self::Skipped => "skipped",
        })
    }
}

/// One record of the source (or one instance of it) and what became of it.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
struct Line {
    /// The record's server.json `name`.
    name: String,
    version: String,
    action: Action,
    /// The entry it maps to.
    #[serde(skip_serializing_if = "Option::is_none")]
    id: Option<String>,
    /// The entry's URL.
    #[serde(skip_serializing_if = "Option::is_none")]
    url: Option<String>,
    /// Why it was skipped.
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<String>,
    /// The body to send, for created and updated records.
    #[serde(skip)]
    body: Option<Value>,
}

/// The whole report (`--output json|yaml`).
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct Report {
    from: String,
    registry: String,
    dry_run: bool,
    created: usize,
    updated: usize,
    unchanged: usize,
    skipped: usize,
    servers: Vec<Line>,
}

/// A record of the listing: its server.json as sent, its `_meta` as far as it reads.
struct Record {
    server: Value,
    name: String,
    version: String,
    meta: ResponseMeta,
}

impl Record {
    fn read(item: &Value) -> Record {
        let server = item.get("server").cloned().unwrap_or(Value::Null);
        let text = |key: &str| {
            server
                .get(key)
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned()
        };
        // A `_meta` that does not read is no reason to skip the record: it is only needed to
        // tell the latest version, which the versions themselves tell too.
        let meta = item
            .get("_meta")
            .and_then(|m| serde_json::from_value(m.clone()).ok())
            .unwrap_or_default();
        Record {
            name: text("name"),
            version: text("version"),
            meta,
            server,
        }
    }

    fn deleted(&self) -> bool {
        self.meta
            .official
            .as_ref()
            .is_some_and(|o| o.status == OfficialStatus::Deleted)
    }

    fn latest(&self) -> Option<bool> {
        self.meta.official.as_ref().map(|o| o.is_latest)
    }

    /// Whether an mcp-fleet registry listed it, naming the entries behind it: then each
    /// version is its own instances, all imported.
    fn names_fleet_instances(&self) -> bool {
        self.meta
            .health
            .as_ref()
            .is_some_and(|h| !h.instances.is_empty())
    }
}

/// For each server name, the version imported: the one the source marks `isLatest`, else the
/// highest semantic version.
fn latest_versions(records: &[Record]) -> HashMap<&str, &str> {
    let mut best: HashMap<&str, &Record> = HashMap::new();
    let semver = |r: &Record| r.version.parse::<Version>().ok();
    for r in records.iter().filter(|r| !r.deleted()) {
        let better = match best.get(r.name.as_str()) {
            None => true,
            Some(b) => match (b.latest(), r.latest()) {
                (Some(true), _) => false,
                (_, Some(true)) => true,
                _ => semver(r) > semver(b),
            },
        };
        if better {
            best.insert(&r.name, r);
        }
    }
    best.into_iter()
        .map(|(name, r)| (name, r.version.as_str()))
        .collect()
}

/// The registration an entry holds, as it would be sent again: compared with the one an
/// import would send.
fn stored_registration(entry: &Entry) -> Option<Registration> {
    let body = serde_json::to_value(entry).ok()?;
    let mut reg = Registration::from_json(&body, None).ok()?;
    reg.updated_by = None;
    Some(reg)
}

/// `import --from URL`: reads every record, maps each, compares with what is stored, writes
/// the differences (unless `--dry-run`) and prints the report.
pub(crate) async fn run(args: ImportArgs) -> anyhow::Result<()> {
    let tags = args
        .tags
        .iter()
        .map(|t| {
            t.parse::<Tag>()
                .map_err(|e| anyhow::anyhow!("--tags: {t:?} {e}"))
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let source = RegistryClient::new(&args.from)?;
    let from = source.base_url().to_owned();
    let query = V01Query {
        search: args.search.clone(),
        version: None,
        limit: Some(100),
    };
    // As text: a 401 of the source is not this registry refusing the token (exit code 3).
    let items = source
        .v01_servers_all(&query)
        .await
        .map_err(|e| anyhow::anyhow!("cannot list the servers of {from}: {e}"))?;
    let target = args.registry.client()?;
    let stored: HashMap<String, Entry> = target
        .list_all(&ListOptions {
            status: Some("any".into()),
            limit: Some(1000),
            ..ListOptions::default()
        })
        .await?
        .into_iter()
        .map(|e| (e.id.to_string(), e))
        .collect();

    let records: Vec<Record> = items.iter().map(Record::read).collect();
    let latest = latest_versions(&records);
    let options = MapOptions {
        tags,
        imported_from: Some(from.clone()),
        ..MapOptions::default()
    };
    let mut taken: HashMap<String, String> = HashMap::new();
    let mut lines = Vec::with_capacity(records.len());
    for record in &records {
        lines.extend(plan(record, &latest, &options, &stored, &mut taken));
    }

    if !args.dry_run {
        for line in &lines {
            if let Some(body) = &line.body {
                target.register(body).await.with_context(|| {
                    format!(
                        "importing {} {} as {}",
                        line.name,
                        line.version,
                        line.id.as_deref().unwrap_or("?")
                    )
                })?;
            }
        }
    }
    let count = |a: Action| lines.iter().filter(|l| l.action == a).count();
    let report = Report {
        from,
        registry: target.base_url().to_owned(),
        dry_run: args.dry_run,
        created: count(Action::Created),
        updated: count(Action::Updated),
        unchanged: count(Action::Unchanged),
        skipped: count(Action::Skipped),
        servers: lines,
    };
    if args.output.print_data(&report)? {
        return Ok(());
    }
    print_report(&report);
    Ok(())
}

/// What to do with `record`: a line per entry it makes, or one saying why it makes none.
fn plan(
    record: &Record,
    latest: &HashMap<&str, &str>,
    options: &MapOptions,
    stored: &HashMap<String, Entry>,
    taken: &mut HashMap<String, String>,
) -> Vec<Line> {
    let line = Line {
        name: record.name.clone(),
        version: record.version.clone(),
        action: Action::Skipped,
        id: None,
        url: None,
        reason: None,
        body: None,
    };
    let skip = |mut line: Line, reason: String| {
        line.reason = Some(reason);
        line
    };
    if record.deleted() {
        return vec![skip(line, "deleted at the source".into())];
    }
    if !record.names_fleet_instances()
        && let Some(newest) = latest.get(record.name.as_str())
        && *newest != record.version
    {
        return vec![skip(line, format!("not the latest version ({newest} is)"))];
    }
    server_json::registrations(&record.server, record.meta.health.as_ref(), options)
        .into_iter()
        .map(|made| match made {
            Ok(imported) => compare(line.clone(), imported, options, stored, taken),
            Err(e) => skip(line.clone(), e.to_string()),
        })
        .collect()
}

/// Whether `imported` creates, updates or leaves alone what `stored` holds under its id.
fn compare(
    mut line: Line,
    Imported { body, registration }: Imported,
    options: &MapOptions,
    stored: &HashMap<String, Entry>,
    taken: &mut HashMap<String, String>,
) -> Line {
    let id = registration.id.to_string();
    line.id = Some(id.clone());
    line.url = Some(registration.url.to_string());
    let label = format!("{} {}", line.name, line.version);
    if let Some(other) = taken.insert(id.clone(), label) {
        line.reason = Some(format!("id {id} is already that of {other}"));
        return line;
    }
    line.action = match stored.get(&id) {
        None => Action::Created,
        Some(entry) => {
            let ours = entry
                .metadata
                .get(IMPORTED_FROM_KEY)
                .and_then(Value::as_str)
                == options.imported_from.as_deref();
            if !ours {
                line.reason = Some(format!(
                    "id {id} is taken by an entry not imported from {}",
                    options.imported_from.as_deref().unwrap_or("there")
                ));
                return line;
            }
            if stored_registration(entry).as_ref() == Some(&registration) {
                Action::Unchanged
            } else {
                Action::Updated
            }
        }
    };
    if line.action != Action::Unchanged {
        line.body = Some(body);
    }
    line
}

fn print_report(report: &Report) {
    if report.servers.is_empty() {
        println!("no servers listed at {}", report.from);
    } else {
        let mut t = Grid::new(&["ACTION", "SERVER", "VERSION", "ID", "URL OR ERROR"]);
        t.gives_way(&["SERVER", "ID"]);
        for l in &report.servers {
            t.add_row(vec![
                l.action.to_string(),
                l.name.clone(),
                l.version.clone(),
                l.id.clone().unwrap_or_default(),
                l.reason
                    .clone()
                    .or_else(|| l.url.clone())
                    .unwrap_or_default(),
            ]);
        }
        println!("{t}");
    }
    let names: HashSet<&str> = report.servers.iter().map(|l| l.name.as_str()).collect();
    println!(
        "{}{} created, {} updated, {} unchanged, {} skipped ({} records of {} servers from {})",
        if report.dry_run {
            "dry run, nothing written: "
        } else {
            ""
        },
        report.created,
        report.updated,
        report.unchanged,
        report.skipped,
        report.servers.len(),
        names.len(),
        report.from,
    );
}
