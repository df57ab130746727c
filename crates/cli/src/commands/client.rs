//! `register`, `ls`, `get`, `rm`, `status`: the registry's API from a terminal.
//!
//! Over 500 lines: one short function per client command, with the tables they print.

use std::path::PathBuf;

use anyhow::{Context, bail};
use chrono::Utc;
use clap::{Args, ValueEnum};
use mcp_fleet_discovery::{ListOptions, RegisterOutcome, RegistryClient};
use mcp_fleet_model::server_json::{self, MapOptions, Unimportable};
use mcp_fleet_model::{Entry, Timestamp};
use serde_json::{Map, Value, json};

use crate::output::{Format, Grid, OutputArg, print_as};

/// Where the registry is; shared by every client subcommand.
#[derive(Debug, Args)]
pub(crate) struct RegistryArg {
    /// Base URL of the registry.
    #[arg(
        long,
        env = "MCP_FLEET_REGISTRY",
        default_value = "http://127.0.0.1:4000",
        value_parser = registry_url
    )]
    registry: String,
    /// Bearer token for registries that authenticate writes (`mcpf_…` from
    /// `mcp-fleet token create`, or an OIDC JWT). Prefer the environment variable.
    #[arg(long, env = "MCP_FLEET_TOKEN", hide_env_values = true)]
    token: Option<String>,
}

/// A registry URL as given, with `http://` put in front of one without a scheme
/// (`localhost:4000`, which would otherwise parse as the scheme `localhost`).
pub(crate) fn registry_url(given: &str) -> Result<String, std::convert::Infallible> {
    Ok(if given.contains("://") {
        given.to_owned()
    } else {
        format!("http://{given}")
    })
}

impl RegistryArg {
    /// The registry's base URL.
    pub(crate) fn url(&self) -> &str {
        &self.registry
    }

    /// The bearer token given, if any.
    pub(crate) fn token(&self) -> Option<&str> {
        self.token.as_deref()
    }

    /// A client of the registry named.
    pub(crate) fn client(&self) -> anyhow::Result<RegistryClient> {
        let client = RegistryClient::new(&self.registry)?;
        Ok(match &self.token {
            Some(token) => client.with_token(token.clone()),
            None => client,
        })
    }
}

/// Options of `register`.
#[derive(Debug, Args)]
pub(crate) struct RegisterArgs {
    #[command(flatten)]
    registry: RegistryArg,
    /// A JSON file with the registration (`-` reads standard input); flags override its fields.
    #[arg(long, short)]
    file: Option<PathBuf>,
    /// A server.json file (the official MCP Registry's format; `-` reads standard input): its
    /// one streamable-http remote gives the url (give --url when it has several), its version
    /// the version, its name the id. Flags override what it gives.
    #[arg(long, value_name = "FILE", conflicts_with = "file")]
    server_json: Option<PathBuf>,
    /// Server id (a slug).
    #[arg(long)]
    id: Option<String>,
    /// Human-readable name.
    #[arg(long)]
    name: Option<String>,
    /// What the server does.
    #[arg(long)]
    description: Option<String>,
    /// Base URL; MCP is served at `<url>/mcp`.
    #[arg(long)]
    url: Option<String>,
    /// Semantic version, e.g. 1.2.3.
    #[arg(long = "server-version", value_name = "VERSION")]
    version: Option<String>,
    /// Comma-separated capability tags.
    #[arg(long, value_delimiter = ',')]
    tags: Option<Vec<String>>,
    /// The service this server is an instance of (default: its id).
    #[arg(long)]
    service: Option<String>,
    /// Health-check URL (GET; used by --health-check http, and by auto when given).
    #[arg(long)]
    health_url: Option<String>,
    /// How the registry checks the server.
    #[arg(long, value_enum, value_name = "MODE")]
    health_check: Option<HealthCheckArg>,
    /// The server must heartbeat (`mcp-fleet heartbeat ID`) at least this often, 5–86400.
    #[arg(long, value_name = "SECONDS")]
    ttl_seconds: Option<u32>,
    /// Metadata, KEY=VALUE (repeatable; the value is JSON when it parses as JSON, else a string).
    #[arg(long, value_name = "KEY=VALUE", value_parser = metadata_pair)]
    metadata: Vec<(String, Value)>,
    /// Authentication clients need.
    #[arg(long, value_enum, value_name = "TYPE")]
    auth_type: Option<AuthTypeArg>,
    /// OAuth 2.0 token endpoint (with --auth-type oauth2, which it implies).
    #[arg(long, alias = "token-endpoint", value_name = "URL")]
    auth_token_endpoint: Option<String>,
}

/// `--health-check` values.
#[derive(Debug, Clone, Copy, ValueEnum)]
enum HealthCheckArg {
    Auto,
    Http,
    Mcp,
    Ttl,
    None,
}

/// `--auth-type` values.
#[derive(Debug, Clone, Copy, ValueEnum)]
enum AuthTypeArg {
    None,
    Bearer,
    Oauth2,
}

/// `KEY=VALUE` of `--metadata`.
fn metadata_pair(text: &str) -> Result<(String, Value), String> {
    let (key, value) = text
        .split_once('=')
        .ok_or_else(|| format!("{text:?} is not KEY=VALUE"))?;
    if key.is_empty() {
        return Err(format!("{text:?}: the key is empty"));
    }
    let value = serde_json::from_str(value).unwrap_or_else(|_| Value::from(value));
    Ok((key.to_owned(), value))
}

/// Options of `heartbeat`.
#[derive(Debug, Args)]
pub(crate) struct HeartbeatArgs {
    #[command(flatten)]
    registry: RegistryArg,
    /// Server id.
    id: String,
}

/// Options of `check`.
#[derive(Debug, Args)]
pub(crate) struct CheckArgs {
    #[command(flatten)]
    registry: RegistryArg,
    /// Server id.
    id: String,
    #[command(flatten)]
    output: OutputArg,
}

/// Options of `ls`.
#[derive(Debug, Args)]
pub(crate) struct LsArgs {
    #[command(flatten)]
    registry: RegistryArg,
    /// Only servers having any of these tags (comma-separated).
    #[arg(long, value_delimiter = ',')]
    tags: Vec<String>,
    /// healthy, degraded, down, unknown or any.
    #[arg(long, default_value = "any")]
    status: String,
    #[command(flatten)]
    output: OutputArg,
}

/// Options of `get`.
#[derive(Debug, Args)]
pub(crate) struct GetArgs {
    #[command(flatten)]
    registry: RegistryArg,
    /// Server id.
    id: String,
    /// `json` when not given; `table` shows the fields as rows.
    #[command(flatten)]
    output: OutputArg,
}

/// Options of `rm`.
#[derive(Debug, Args)]
pub(crate) struct RmArgs {
    #[command(flatten)]
    registry: RegistryArg,
    /// Server id.
    id: String,
}

/// Options of `status`.
#[derive(Debug, Args)]
pub(crate) struct StatusArgs {
    #[command(flatten)]
    registry: RegistryArg,
    /// `json` and `yaml` print the whole /status document.
    #[command(flatten)]
    output: OutputArg,
}

pub(crate) fn read_file(path: &PathBuf) -> anyhow::Result<Map<String, Value>> {
    let stdin = path.as_os_str() == "-";
    let text = if stdin {
        std::io::read_to_string(std::io::stdin()).context("cannot read standard input")?
    } else {
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?
    };
    let source = if stdin {
        "standard input (--file -)".to_owned()
    } else {
        path.display().to_string()
    };
    match serde_json::from_str(&text).with_context(|| format!("{source} is not JSON"))? {
        Value::Object(m) => Ok(m),
        _ => bail!("{source} must hold a JSON object"),
    }
}

/// The registration body from `--file` and the flags (flags win).
fn registration_body(args: &RegisterArgs) -> anyhow::Result<Value> {
    let mut body = match (&args.file, &args.server_json) {
        (Some(path), _) => read_file(path)?,
        (None, Some(path)) => server_json_body(path, args)?,
        (None, None) => Map::new(),
    };
    let mut set = |key: &str, value: Option<Value>| {
        if let Some(v) = value {
            body.insert(key.to_owned(), v);
        }
    };
    set("id", args.id.clone().map(Value::from));
    set("name", args.name.clone().map(Value::from));
    set("description", args.description.clone().map(Value::from));
    set("url", args.url.clone().map(Value::from));
    set("version", args.version.clone().map(Value::from));
    set("tags", args.tags.clone().map(Value::from));
    set("service", args.service.clone().map(Value::from));
    set("healthUrl", args.health_url.clone().map(Value::from));
    set(
        "healthCheck",
        args.health_check.map(|m| {
            let mode = m.to_possible_value().map(|v| v.get_name().to_owned());
            json!({ "mode": mode })
        }),
    );
    set("ttlSeconds", args.ttl_seconds.map(Value::from));
    if !args.metadata.is_empty() {
        let mut metadata = match body.get("metadata") {
            Some(Value::Object(m)) => m.clone(),
            _ => Map::new(),
        };
        metadata.extend(args.metadata.iter().cloned());
        body.insert("metadata".to_owned(), Value::Object(metadata));
    }
    if args.auth_type.is_some() || args.auth_token_endpoint.is_some() {
        let kind = args
            .auth_type
            .and_then(|t| t.to_possible_value())
            .map_or_else(|| "oauth2".to_owned(), |v| v.get_name().to_owned());
        let mut auth = json!({ "type": kind });
        if let Some(t) = &args.auth_token_endpoint {
            auth["tokenEndpoint"] = Value::from(t.clone());
        }
        body.insert("auth".to_owned(), auth);
    }
    if body.is_empty() {
        bail!(
            "nothing to register: give --file FILE, --server-json FILE, or --id, --name, --url \
             and --server-version"
        );
    }
    Ok(Value::Object(body))
}

/// The registration a server.json file makes (`--server-json`), before the flags override it.
fn server_json_body(path: &PathBuf, args: &RegisterArgs) -> anyhow::Result<Map<String, Value>> {
    let mut server = read_file(path)?;
    if let Some(version) = &args.version {
        server.insert("version".to_owned(), Value::from(version.clone()));
    }
    let options = MapOptions {
        url: args.url.clone(),
        ..MapOptions::default()
    };
    let source = if path.as_os_str() == "-" {
        "standard input (--server-json -)".to_owned()
    } else {
        path.display().to_string()
    };
    match server_json::registration(&Value::Object(server), &options) {
        Ok(imported) => match imported.body {
            Value::Object(body) => Ok(body),
            _ => bail!("{source}: not a registration"),
        },
        Err(e @ Unimportable::SeveralRemotes(_)) => {
            bail!("{source}: {e}: choose one with --url URL (the remote's URL without its /mcp)")
        }
        Err(
            e @ (Unimportable::OnlyPackages(_)
            | Unimportable::NoStreamableRemote(_)
            | Unimportable::Nothing),
        ) => bail!(
            "{source}: {e}: mcp-fleet registers servers reached over streamable HTTP; give \
             --url URL if this one is served so"
        ),
        Err(e) => bail!("{source}: {e}"),
    }
}

/// `heartbeat ID`: renews a TTL entry.
pub(crate) async fn heartbeat(args: HeartbeatArgs) -> anyhow::Result<()> {
    if !args.registry.client()?.heartbeat(&args.id).await? {
        bail!("no server with id {:?}", args.id);
    }
    println!("heartbeat recorded for {}", args.id);
    Ok(())
}

/// `check ID`: probes an entry now and shows the outcome.
pub(crate) async fn check(args: CheckArgs) -> anyhow::Result<()> {
    let outcome = args.registry.client()?.check_now(&args.id).await?;
    if args.output.print_data(&outcome)? {
        return Ok(());
    }
    let text = |key: &str| match &outcome[key] {
        Value::Null => "—".to_owned(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    // null: the server did not answer; 0: it answered within the millisecond.
    let latency = match outcome["latencyMs"].as_u64() {
        Some(0) => "<1 ms".to_owned(),
        Some(ms) => format!("{ms} ms"),
        None => "—".to_owned(),
    };
    let mut table = table(&["ID", "OUTCOME", "STATUS", "LATENCY", "ERROR"]);
    table.add_row(vec![
        text("id"),
        text("outcome"),
        text("status"),
        latency,
        text("error"),
    ]);
    println!("{table}");
    Ok(())
}

pub(crate) async fn register(args: RegisterArgs) -> anyhow::Result<()> {
    let body = registration_body(&args)?;
    let id = body["id"].as_str().unwrap_or("?").to_owned();
    match args.registry.client()?.register(&body).await? {
        RegisterOutcome::Created => println!("registered {id}"),
        RegisterOutcome::Replaced => println!("re-registered {id} (replaced the existing entry)"),
    }
    Ok(())
}

/// "12s ago", "3m ago", "2h ago", "5d ago".
fn ago(t: Option<Timestamp>) -> String {
    let Some(t) = t else {
        return "never".into();
    };
    let secs = (Utc::now() - t).num_seconds().max(0);
    match secs {
        0..60 => format!("{secs}s ago"),
        60..3600 => format!("{}m ago", secs / 60),
        3600..86400 => format!("{}h ago", secs / 3600),
        _ => format!("{}d ago", secs / 86400),
    }
}

fn table(header: &[&str]) -> Grid {
    Grid::new(header)
}

fn entries_table(entries: &[Entry]) -> Grid {
    let mut t = table(&[
        "ID",
        "NAME",
        "VERSION",
        "STATUS",
        "TAGS",
        "URL",
        "LAST SEEN",
    ]);
    t.gives_way(&["NAME", "TAGS"]);
    for e in entries {
        let tags: Vec<&str> = e.tags.iter().map(|t| t.as_str()).collect();
        t.add_row(vec![
            e.id.to_string(),
            e.name.clone(),
            e.version.to_string(),
            e.status.to_string(),
            tags.join(","),
            e.url.to_string(),
            ago(e.last_seen),
        ]);
    }
    t
}

pub(crate) async fn ls(args: LsArgs) -> anyhow::Result<()> {
    let options = ListOptions {
        tags: args.tags.clone(),
        status: Some(args.status.clone()),
        limit: Some(1000),
        cursor: None,
    };
    let mut entries = args.registry.client()?.list_all(&options).await?;
    // The registry orders ids as text (bulk-1, bulk-10, bulk-100, bulk-2); people read numbers.
    entries.sort_by(|a, b| natural_cmp(a.id.as_str(), b.id.as_str()));
    if args.output.print_data(&json!({ "servers": entries }))? {
        return Ok(());
    }
    if entries.is_empty() {
        println!("no servers match");
    } else {
        println!("{}", entries_table(&entries));
    }
    Ok(())
}

/// Orders text with its runs of digits compared as numbers: `bulk-2` before `bulk-10`.
fn natural_cmp(a: &str, b: &str) -> std::cmp::Ordering {
    fn chunks(s: &str) -> impl Iterator<Item = (bool, &str)> {
        let mut rest = s;
        std::iter::from_fn(move || {
            let first = rest.chars().next()?;
            let digits = first.is_ascii_digit();
            let end = rest
                .find(|c: char| c.is_ascii_digit() != digits)
                .unwrap_or(rest.len());
            let (chunk, tail) = rest.split_at(end);
            rest = tail;
            Some((digits, chunk))
        })
    }
    let (mut x, mut y) = (chunks(a), chunks(b));
    loop {
        let order = match (x.next(), y.next()) {
            (None, None) => return a.cmp(b),
            (None, Some(_)) => return std::cmp::Ordering::Less,
            (Some(_), None) => return std::cmp::Ordering::Greater,
            (Some((true, m)), Some((true, n))) => {
                let (m, n) = (m.trim_start_matches('0'), n.trim_start_matches('0'));
                m.len().cmp(&n.len()).then_with(|| m.cmp(n))
            }
            (Some((_, m)), Some((_, n))) => m.cmp(n),
        };
        if order.is_ne() {
            return order;
        }
    }
}

pub(crate) async fn get(args: GetArgs) -> anyhow::Result<()> {
    match args.registry.client()?.get(&args.id).await? {
        Some(entry) => print_entry(&entry, args.output.format_or(Format::Json)),
        None => bail!("no server with id {:?}", args.id),
    }
}

/// `get`'s entry as JSON or YAML, or as a table of its fields (nested ones as JSON).
fn print_entry(entry: &Entry, format: Format) -> anyhow::Result<()> {
    if print_as(format, entry)? {
        return Ok(());
    }
    let mut t = table(&["FIELD", "VALUE"]);
    if let Value::Object(fields) = serde_json::to_value(entry)? {
        for (field, value) in fields {
            let text = match value {
                Value::Null => "—".to_owned(),
                Value::String(s) => s,
                other => other.to_string(),
            };
            t.add_row(vec![field, text]);
        }
    }
    println!("{t}");
    Ok(())
}

pub(crate) async fn rm(args: RmArgs) -> anyhow::Result<()> {
    if args.registry.client()?.delete(&args.id).await? {
        println!("deleted {}", args.id);
        Ok(())
    } else {
        bail!("no server with id {:?}", args.id)
    }
}

/// Prints the fleet summary and the servers that are not healthy. Returns the exit code:
/// 0 operational, 1 degraded.
pub(crate) async fn status(args: StatusArgs) -> anyhow::Result<u8> {
    let doc = args.registry.client()?.status().await?;
    let code = u8::from(doc.status != "operational");
    if args.output.print_data(&doc)? {
        return Ok(code);
    }
    let s = &doc.summary;
    println!(
        "fleet {}: {} servers, {} healthy, {} degraded, {} down, {} unknown",
        doc.status, s.total, s.healthy, s.degraded, s.down, s.unknown
    );
    let unwell: Vec<_> = doc
        .servers
        .iter()
        .filter(|srv| srv.status != mcp_fleet_model::HealthStatus::Healthy)
        .collect();
    if !unwell.is_empty() {
        let mut t = table(&["ID", "NAME", "STATUS", "SINCE", "LAST SEEN", "LAST ERROR"]);
        t.gives_way(&["NAME"]);
        for srv in unwell {
            let status = if srv.check == mcp_fleet_model::HealthCheckMode::None {
                format!("{} (not checked)", srv.status)
            } else {
                srv.status.to_string()
            };
            t.add_row(vec![
                srv.id.clone(),
                srv.name.clone(),
                status,
                ago(srv.since),
                ago(srv.last_seen),
                srv.last_error.clone().unwrap_or_default(),
            ]);
        }
        println!("{t}");
    }
    for c in &doc.breaking_canaries {
        let by = c
            .allowed_by
            .as_deref()
            .map(|b| format!(" by {b}"))
            .unwrap_or_default();
        let why = c
            .reason
            .as_deref()
            .map(|r| format!(" (allowed{by}: {r})"))
            .unwrap_or_default();
        println!(
            "BREAKING canary: {} {} ({}%) breaks the contract of {}{why}",
            c.service, c.version, c.weight, c.stable
        );
    }
    Ok(code)
}

#[cfg(test)]
mod tests {
    use super::{metadata_pair, natural_cmp, registry_url};

    /// `--metadata`: the value is JSON when it parses as JSON, else the text as a string.
    #[test]
    fn metadata_pairs() {
        use serde_json::json;
        let rows = [
            ("team=search", Ok(("team", json!("search")))),
            ("replicas=3", Ok(("replicas", json!(3)))),
            ("on=true", Ok(("on", json!(true)))),
            ("eq=a=b", Ok(("eq", json!("a=b")))),
            ("empty=", Ok(("empty", json!("")))),
            ("team", Err("\"team\" is not KEY=VALUE")),
            ("=x", Err("\"=x\": the key is empty")),
        ];
        for (arg, want) in rows {
            let want = want.map(|(k, v)| (k.to_owned(), v)).map_err(str::to_owned);
            assert_eq!(metadata_pair(arg), want, "{arg}");
        }
    }

    #[test]
    fn ids_sort_with_their_numbers_as_numbers() {
        let mut ids = vec![
            "bulk-100", "bulk-10", "bulk-2", "bulk-1", "alpha", "bulk-02", "b",
        ];
        ids.sort_by(|a, b| natural_cmp(a, b));
        assert_eq!(
            ids,
            [
                "alpha", "b", "bulk-1", "bulk-02", "bulk-2", "bulk-10", "bulk-100"
            ]
        );
    }

    #[test]
    fn a_registry_without_a_scheme_is_http() {
        assert_eq!(
            registry_url("localhost:4000").unwrap(),
            "http://localhost:4000"
        );
        assert_eq!(
            registry_url("https://r.example").unwrap(),
            "https://r.example"
        );
    }
}
