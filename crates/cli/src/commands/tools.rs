//! `tools` and `call`: the fleet's MCP tools, discovered through the registry by the discovery
//! library, from a terminal (`tools --search` and `tools accept`, which connect to no server,
//! are in `catalog.rs`).

use std::io::IsTerminal;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use mcp_fleet_discovery::{
    CallToolResult, ConnectReport, DiscoveredTool, Discovery, DiscoveryBuilder, RegistryClient,
};

use crate::commands::credentials::CredentialArgs;
use crate::commands::health::PolicyArgs;
use crate::output::{Grid, OutputArg};
use serde_json::{Value, json};

/// Where the fleet is and how to reach its servers; shared by `tools` and `call`.
#[derive(Debug, Args)]
pub(crate) struct FleetArgs {
    /// Base URL of the registry.
    #[arg(
        long,
        env = "MCP_FLEET_REGISTRY",
        default_value = "http://127.0.0.1:4000",
        value_parser = super::client::registry_url
    )]
    pub(crate) registry: String,
    /// Only servers having any of these tags (comma-separated).
    #[arg(long, value_delimiter = ',')]
    pub(crate) tags: Vec<String>,
    /// Time allowed to connect to each server and list its tools.
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    connect_timeout: Duration,
    /// Credentials for servers whose entry asks for them.
    #[command(flatten)]
    credentials: CredentialArgs,
    /// Added to the registry's own address policy, which is read first.
    #[command(flatten)]
    policy: PolicyArgs,
}

impl FleetArgs {
    /// The builder, with the registry's address policy (and these flags') read from it.
    async fn builder(&self) -> anyhow::Result<DiscoveryBuilder> {
        // Before any request: a bad credentials file or option is said at once.
        let credentials = self.credentials.credentials()?;
        let policy = RegistryClient::new(&self.registry)?
            .effective_address_policy(&self.policy.policy())
            .await
            .context("cannot read the registry's address policy")?;
        tracing::debug!(%policy, "address policy");
        Ok(Discovery::builder(&self.registry)
            .address_policy(policy)
            .tags(self.tags.clone())
            .client_info("mcp-fleet", env!("CARGO_PKG_VERSION"))
            .connect_timeout(self.connect_timeout)
            .upstream_credentials(credentials))
    }

    /// Connects to the fleet, with a spinner on an interactive terminal; failures to connect
    /// are printed as warnings.
    async fn connect(
        &self,
        builder: DiscoveryBuilder,
    ) -> anyhow::Result<(Discovery, ConnectReport)> {
        let fleet = builder.build()?;
        let spinner = std::io::stderr().is_terminal().then(|| {
            let spinner = ProgressBar::new_spinner();
            if let Ok(style) = ProgressStyle::with_template("{spinner} {msg}") {
                spinner.set_style(style);
            }
            spinner.set_message(format!("discovering MCP servers via {}", self.registry));
            spinner.enable_steady_tick(Duration::from_millis(100));
            spinner
        });
        let report = fleet.connect().await;
        if let Some(spinner) = spinner {
            spinner.finish_and_clear();
        }
        let report = report.context("cannot discover the fleet")?;
        for (server, error) in &report.failed {
            eprintln!("warning: skipping server {server}: {error}");
        }
        Ok((fleet, report))
    }
}

/// Options of `tools`.
#[derive(Debug, Args)]
pub(crate) struct ToolsArgs {
    /// `tools accept`; without one, `tools` lists (or with `--search` searches) the tools.
    #[command(subcommand)]
    command: Option<ToolsCommand>,
    #[command(flatten)]
    fleet: FleetArgs,
    #[command(flatten)]
    search: super::catalog::SearchArgs,
    /// `json` and `yaml` print the catalog and the connection failures (with `--search`, the
    /// registry's answer).
    #[command(flatten)]
    output: OutputArg,
}

/// Subcommands of `tools`.
#[derive(Debug, clap::Subcommand)]
pub(crate) enum ToolsCommand {
    /// Trust a tool's current definition (after a `tool-changed` event), so that gateways run
    /// with --pin-tool-hashes offer it again (POST /services/{service}/tools/accept).
    Accept(super::catalog::AcceptArgs),
}

/// Options of `call`.
#[derive(Debug, Args)]
pub(crate) struct CallArgs {
    #[command(flatten)]
    fleet: FleetArgs,
    /// The tool: its name as `tools` lists it (`<service>__<tool>`, as the gateway names it),
    /// or its bare name when one service offers it; the service's instances take turns.
    /// `<serverId>__<tool>` calls one instance.
    name: String,
    /// The arguments, as a JSON object.
    #[arg(long, default_value = "{}")]
    args: String,
    /// Time allowed for the call.
    #[arg(long, default_value = "60s", value_parser = humantime::parse_duration)]
    timeout: Duration,
    /// `table` (the default) prints the result's text; `json` and `yaml` the whole
    /// `CallToolResult`.
    #[command(flatten)]
    output: OutputArg,
}

/// The tools under their service's names (as the gateway and `call` name them), each with the
/// instances offering it, by name.
fn by_service(tools: &[DiscoveredTool]) -> Vec<(&str, Vec<&DiscoveredTool>)> {
    let mut grouped: std::collections::BTreeMap<&str, Vec<&DiscoveredTool>> =
        std::collections::BTreeMap::new();
    for tool in tools {
        grouped.entry(&tool.service_name).or_default().push(tool);
    }
    grouped.into_iter().collect()
}

/// The first line of `text`, at most `max` characters.
pub(crate) fn one_line(text: &str, max: usize) -> String {
    let line = text.lines().next().unwrap_or_default().trim();
    if line.chars().count() <= max {
        return line.to_owned();
    }
    let mut cut: String = line.chars().take(max.saturating_sub(1)).collect();
    cut.push('…');
    cut
}

pub(crate) async fn tools(args: ToolsArgs) -> anyhow::Result<()> {
    match args.command {
        Some(ToolsCommand::Accept(accept)) => return super::catalog::accept(accept).await,
        None if args.search.asked() => {
            return super::catalog::search(&args.fleet, &args.search, &args.output).await;
        }
        None => {}
    }
    let builder = args.fleet.builder().await?;
    let (fleet, report) = args.fleet.connect(builder).await?;
    let tools = fleet.tools();
    fleet.shutdown().await;
    let offered = by_service(&tools);
    let failed: Vec<Value> = report
        .failed
        .iter()
        .map(|(server, e)| json!({"server": server, "error": e.to_string()}))
        .collect();
    let listed: Vec<Value> = offered
        .iter()
        .map(|(name, instances)| {
            let servers: Vec<Value> = instances
                .iter()
                .map(|t| json!({"id": t.server_id, "version": t.server_version, "available": t.available}))
                .collect();
            json!({"name": name, "service": instances[0].service, "servers": servers,
                   "tool": instances[0].tool})
        })
        .collect();
    if args
        .output
        .print_data(&json!({"tools": listed, "failed": failed}))?
    {
        return Ok(());
    }
    if tools.is_empty() {
        println!("no tools found");
        return Ok(());
    }
    let mut table = Grid::new(&["NAME", "SERVER", "DESCRIPTION"]);
    table.gives_way(&["DESCRIPTION"]);
    for (name, instances) in &offered {
        let description = instances[0].tool.description.as_deref().unwrap_or_default();
        let servers: Vec<String> = instances
            .iter()
            .map(|t| format!("{} {}", t.server_id, t.server_version))
            .collect();
        table.add_row(vec![
            (*name).to_owned(),
            servers.join(", "),
            one_line(description, 80),
        ]);
    }
    println!("{table}");
    Ok(())
}

pub(crate) async fn call(args: CallArgs) -> anyhow::Result<()> {
    let arguments: Value = serde_json::from_str(&args.args)
        .with_context(|| format!("--args is not JSON: {}", args.args))?;
    if !arguments.is_object() {
        bail!("--args must be a JSON object, like '{{\"query\": \"laptop\"}}'");
    }
    let builder = args.fleet.builder().await?.call_timeout(args.timeout);
    let (fleet, _) = args.fleet.connect(builder).await?;
    let result = fleet.call_tool(&args.name, arguments).await;
    fleet.shutdown().await;
    let result = result?;
    if !args.output.print_data(&result)? {
        print_result(&result)?;
    }
    if result.is_error == Some(true) {
        bail!("tool {} reported an error", args.name);
    }
    Ok(())
}

/// The text blocks of `result`, else its structured content, else the whole result as JSON.
fn print_result(result: &CallToolResult) -> anyhow::Result<()> {
    let texts: Vec<&str> = result
        .content
        .iter()
        .filter_map(|block| block.as_text().map(|t| t.text.as_str()))
        .collect();
    if !texts.is_empty() {
        for text in texts {
            println!("{text}");
        }
    } else if let Some(structured) = &result.structured_content {
        println!("{}", serde_json::to_string_pretty(structured)?);
    } else {
        println!("{}", serde_json::to_string_pretty(result)?);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn descriptions_are_one_short_line() {
        assert_eq!(one_line("first\nsecond", 80), "first");
        assert_eq!(one_line("abcdef", 4), "abc…");
        assert_eq!(one_line("", 4), "");
    }
}
