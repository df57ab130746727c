//! `tools --search` and `tools accept`: the registry's tool catalog from a terminal, without
//! connecting to any MCP server.

use anyhow::Context;
use clap::Args;
use mcp_fleet_discovery::{RegistryClient, ToolSearch};

use crate::commands::client::RegistryArg;
use crate::commands::tools::{FleetArgs, one_line};
use crate::output::{Grid, OutputArg};

/// The search options of `tools`.
#[derive(Debug, Args)]
pub(crate) struct SearchArgs {
    /// Search the registry's catalog for these words (`GET /tools`), connecting to no server:
    /// names, titles and descriptions, most relevant first. `""` lists every tool.
    #[arg(long, value_name = "TEXT")]
    search: Option<String>,
    /// With --search: only tools of this service.
    #[arg(long, requires = "search")]
    service: Option<String>,
    /// With --search: only servers with this status (healthy, degraded, down, unknown; default
    /// any).
    #[arg(long, requires = "search")]
    status: Option<String>,
    /// With --search: at most this many tools (1 to 100; default 20).
    #[arg(long, requires = "search", value_parser = clap::value_parser!(u32).range(1..=100))]
    limit: Option<u32>,
}

impl SearchArgs {
    /// Whether `--search` was given.
    pub(crate) fn asked(&self) -> bool {
        self.search.is_some()
    }
}

/// Options of `tools accept`.
#[derive(Debug, Args)]
pub(crate) struct AcceptArgs {
    /// The registry (its token needs `routing:write` on the service).
    #[command(flatten)]
    registry: RegistryArg,
    /// The service whose tool changed.
    service: String,
    /// The tool, by its name on the server (not the gateway's `<service>__<tool>`).
    tool: String,
    /// Why it is trusted, for the registry's log.
    #[arg(long)]
    reason: Option<String>,
    /// `json` and `yaml` print the pins set.
    #[command(flatten)]
    output: OutputArg,
}

/// `tools --search TEXT`: a table of the registry's hits (or its answer as JSON or YAML).
pub(crate) async fn search(
    fleet: &FleetArgs,
    args: &SearchArgs,
    output: &OutputArg,
) -> anyhow::Result<()> {
    let client = RegistryClient::new(&fleet.registry)?;
    let query = ToolSearch {
        q: args.search.clone(),
        tags: fleet.tags.clone(),
        service: args.service.clone(),
        status: args.status.clone(),
        limit: args.limit,
        cursor: None,
    };
    let page = client
        .search_tools(&query)
        .await
        .context("cannot search the registry's tool catalog")?;
    // The registry's own answer: `nextCursor` only when more remain.
    let mut answer = serde_json::json!({ "tools": page.tools });
    if let Some(cursor) = &page.next_cursor {
        answer["nextCursor"] = cursor.clone().into();
    }
    if output.print_data(&answer)? {
        return Ok(());
    }
    if page.tools.is_empty() {
        match args.search.as_deref().map(str::trim) {
            Some(q) if !q.is_empty() => println!("no tools match {q:?}"),
            _ => println!("no tools in the registry's catalog"),
        }
        return Ok(());
    }
    let mut table = Grid::new(&[
        "TOOL",
        "SERVER",
        "SERVICE",
        "VERSION",
        "STATUS",
        "SCORE",
        "DESCRIPTION",
    ]);
    table.gives_way(&["DESCRIPTION"]);
    for hit in &page.tools {
        let description = hit.description.as_deref().unwrap_or_default();
        table.add_row(vec![
            hit.name.clone(),
            hit.server_id.to_string(),
            hit.service.to_string(),
            hit.version.clone(),
            hit.status.to_string(),
            format!("{:.2}", hit.score),
            one_line(description, usize::MAX),
        ]);
    }
    println!("{table}");
    if page.next_cursor.is_some() {
        eprintln!("more tools match; raise --limit (at most 100) or narrow the search");
    }
    Ok(())
}

/// `tools accept SERVICE TOOL`: trusts the tool's current definition at every version listing
/// it.
pub(crate) async fn accept(args: AcceptArgs) -> anyhow::Result<()> {
    let client = args.registry.client()?;
    let pins = client
        .accept_tool(&args.service, &args.tool, args.reason.as_deref())
        .await
        .with_context(|| format!("cannot accept tool {} of {}", args.tool, args.service))?;
    let accepted: Vec<_> = pins.pins.iter().filter(|p| p.tool == args.tool).collect();
    if args.output.print_data(&serde_json::json!({
        "service": pins.service,
        "pins": accepted,
    }))? {
        return Ok(());
    }
    for pin in accepted {
        println!(
            "accepted {} of {} {}: hash {}",
            pin.tool,
            pins.service,
            pin.version,
            pin.hash.get(..12).unwrap_or(&pin.hash)
        );
    }
    Ok(())
}
