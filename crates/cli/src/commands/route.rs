//! `route set|get|rm|rollback` and `export istio`: a service's routing policy from a terminal.

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use mcp_fleet_discovery::ClientError;
use mcp_fleet_model::{Routing, Version, format_timestamp};
use serde_json::{Map, Value, json};

use super::client::RegistryArg;
use crate::output::OutputArg;

/// Options of `route`.
#[derive(Debug, Args)]
pub(crate) struct RouteArgs {
    #[command(subcommand)]
    command: RouteCommand,
}

#[derive(Debug, Subcommand)]
enum RouteCommand {
    /// Set (or replace) a service's policy: `route set catalog 2.0.0=90 2.1.0=10`.
    Set(SetArgs),
    /// Show a service's policy and its last rollback.
    Get(GetArgs),
    /// Delete a service's policy.
    Rm(ServiceArgs),
    /// Roll a version back by hand: its weight goes to the heaviest other version.
    Rollback(RollbackArgs),
}

/// Options of `route set`. Any of the rollback flags turns automatic rollback on; the others
/// then take their defaults.
#[derive(Debug, Args)]
struct SetArgs {
    #[command(flatten)]
    registry: RegistryArg,
    /// The service (the `service` of its entries).
    service: String,
    /// Percent of traffic per version, adding up to 100: `2.0.0=90 2.1.0=10`.
    #[arg(required = true, value_name = "VERSION=WEIGHT")]
    weights: Vec<String>,
    /// Roll a version back when its error rate exceeds the others' by more than this, in (0, 1]
    /// [default with any rollback flag: 0.05].
    #[arg(long)]
    max_error_rate_delta: Option<f64>,
    /// How far back error rates are measured, 1s to 1h (`60s`, `5m`) [default with any
    /// rollback flag: 60s].
    #[arg(long)]
    window: Option<String>,
    /// Fewest calls within the window before judging [default with any rollback flag: 50].
    #[arg(long)]
    min_requests: Option<u32>,
    /// Send traffic to versions whose tools break the stable version's contract (see `diff`)
    /// all the same, for this reason; the registry records it with who set the policy and
    /// refuses such a policy without it.
    #[arg(long, value_name = "REASON")]
    allow_breaking: Option<String>,
    /// `json` and `yaml` print the policy document set.
    #[command(flatten)]
    output: OutputArg,
}

/// Options of `route get`.
#[derive(Debug, Args)]
struct GetArgs {
    #[command(flatten)]
    registry: RegistryArg,
    /// The service.
    service: String,
    /// `json` and `yaml` print the policy document.
    #[command(flatten)]
    output: OutputArg,
}

/// A service, and where the registry is.
#[derive(Debug, Args)]
struct ServiceArgs {
    #[command(flatten)]
    registry: RegistryArg,
    /// The service.
    service: String,
}

/// Options of `route rollback`.
#[derive(Debug, Args)]
struct RollbackArgs {
    #[command(flatten)]
    registry: RegistryArg,
    /// The service.
    service: String,
    /// The version to roll back.
    version: String,
    /// Why, recorded with the rollback.
    #[arg(long, default_value = "rolled back by hand")]
    reason: String,
    /// Roll back even when the versions left with traffic were rolled back themselves or have
    /// no instance up (the registry refuses that otherwise).
    #[arg(long)]
    force: bool,
    /// `json` and `yaml` print the policy document after the rollback.
    #[command(flatten)]
    output: OutputArg,
}

/// Options of `export`.
#[derive(Debug, Args)]
pub(crate) struct ExportArgs {
    #[command(subcommand)]
    format: ExportFormat,
}

#[derive(Debug, Subcommand)]
enum ExportFormat {
    /// A service's policy as an Istio VirtualService and DestinationRule (YAML).
    Istio(ServiceArgs),
}

/// Reads `VERSION=WEIGHT` arguments into the `weights` object of a policy.
fn parse_weights(args: &[String]) -> anyhow::Result<Map<String, Value>> {
    let mut weights = Map::new();
    for arg in args {
        let Some((version, weight)) = arg.split_once('=') else {
            bail!("{arg:?} is not VERSION=WEIGHT (for example 2.0.0=90)");
        };
        let version: Version = version
            .parse()
            .map_err(|e| anyhow::anyhow!("{arg:?}: the version {e}"))?;
        let weight: u8 = weight
            .parse()
            .ok()
            .filter(|w| *w <= 100)
            .with_context(|| format!("{arg:?}: the weight must be an integer from 0 to 100"))?;
        if weights
            .insert(version.to_string(), Value::from(weight))
            .is_some()
        {
            bail!("{arg:?}: version {version} is given twice");
        }
    }
    Ok(weights)
}

/// The `PUT /services/{service}/routing` body of `route set`.
fn policy_body(args: &SetArgs) -> anyhow::Result<Value> {
    let mut body = json!({ "weights": parse_weights(&args.weights)? });
    if args.max_error_rate_delta.is_some() || args.window.is_some() || args.min_requests.is_some() {
        body["rollback"] = json!({
            "maxErrorRateDelta": args.max_error_rate_delta.unwrap_or(0.05),
            "window": args.window.clone().unwrap_or_else(|| "60s".into()),
            "minRequests": args.min_requests.unwrap_or(50),
        });
    }
    if let Some(reason) = &args.allow_breaking {
        body["allowBreaking"] = json!({ "reason": reason });
    }
    Ok(body)
}

/// A refusal for breaking the stable version's contract, with what to do about it; any other
/// error as it is.
fn refusal(e: ClientError, service: &str) -> anyhow::Error {
    let hint = match &e {
        ClientError::Problem {
            status: 409,
            breaking,
            ..
        } => breaking.first().map(|b| {
            format!(
                "hint: `mcp-fleet diff {service} {} {}` shows every change",
                b.stable, b.version
            )
        }),
        _ => None,
    };
    match hint {
        Some(hint) => anyhow::anyhow!("{e}\n{hint}"),
        None => e.into(),
    }
}

fn weights_text(weights: &std::collections::BTreeMap<Version, u8>) -> String {
    let parts: Vec<String> = weights.iter().map(|(v, w)| format!("{v}={w}")).collect();
    parts.join(" ")
}

/// The readable summary `route get` prints.
fn summary(doc: &Routing) -> String {
    let by = doc
        .updated_by
        .as_deref()
        .map(|b| format!(" by {b}"))
        .unwrap_or_default();
    let mut out = format!(
        "service {} (updated {}{by})\n",
        doc.service,
        format_timestamp(&doc.updated_at)
    );
    for (version, weight) in &doc.weights {
        out.push_str(&format!("  {version:<16} {weight:>3}%\n"));
    }
    match &doc.rollback {
        Some(rule) => out.push_str(&format!("automatic rollback: {rule}\n")),
        None => out.push_str("automatic rollback: off\n"),
    }
    if let Some(contract) = &doc.contract {
        out.push_str(&format!("contract: stable version {}", contract.stable));
        if !contract.unknown.is_empty() {
            let unknown: Vec<String> = contract.unknown.iter().map(Version::to_string).collect();
            out.push_str(&format!(
                "; not compared (no listed catalog): {}",
                unknown.join(", ")
            ));
        }
        out.push('\n');
        for version in doc.breaking_canaries() {
            let allowed = doc.breaking_allowed.iter().find(|a| &a.version == version);
            let why = allowed
                .map(|a| {
                    let by =
                        a.by.as_deref()
                            .map(|b| format!(" by {b}"))
                            .unwrap_or_default();
                    format!(" (allowed{by}: {})", a.reason)
                })
                .unwrap_or_default();
            out.push_str(&format!(
                "  BREAKING: {version} breaks the contract of {}{why}\n",
                contract.stable
            ));
        }
    }
    if let Some(r) = &doc.rolled_back {
        out.push_str(&format!(
            "rolled back {} at {}: {} (weights before: {})\n",
            r.version,
            format_timestamp(&r.at),
            r.reason,
            weights_text(&r.previous_weights)
        ));
    }
    out
}

/// Runs a `route` subcommand.
pub(crate) async fn route(args: RouteArgs) -> anyhow::Result<()> {
    match args.command {
        RouteCommand::Set(args) => {
            let body = policy_body(&args)?;
            let doc = args
                .registry
                .client()?
                .put_routing(&args.service, &body)
                .await
                .map_err(|e| refusal(e, &args.service))?;
            if !args.output.print_data(&doc)? {
                println!("routing {}: {}", doc.service, weights_text(&doc.weights));
                for version in doc.breaking_canaries() {
                    eprintln!(
                        "warning: {version} breaks the contract of the stable version {}; \
                         allowed and recorded",
                        doc.contract
                            .as_ref()
                            .map(|c| c.stable.to_string())
                            .unwrap_or_default()
                    );
                }
            }
        }
        RouteCommand::Get(args) => {
            let Some(doc) = args.registry.client()?.routing(&args.service).await? else {
                bail!("service {:?} has no routing policy", args.service);
            };
            if !args.output.print_data(&doc)? {
                print!("{}", summary(&doc));
            }
        }
        RouteCommand::Rm(args) => {
            if !args
                .registry
                .client()?
                .delete_routing(&args.service)
                .await?
            {
                bail!("service {:?} has no routing policy", args.service);
            }
            println!("deleted the routing policy of {}", args.service);
        }
        RouteCommand::Rollback(args) => {
            let version: Version = args
                .version
                .parse()
                .map_err(|e| anyhow::anyhow!("{:?}: the version {e}", args.version))?;
            let doc = args
                .registry
                .client()?
                .rollback_with(&args.service, &version, &args.reason, args.force)
                .await?;
            if !args.output.print_data(&doc)? {
                println!("routing {}: {}", doc.service, weights_text(&doc.weights));
            }
        }
    }
    Ok(())
}

/// Runs an `export` subcommand.
pub(crate) async fn export(args: ExportArgs) -> anyhow::Result<()> {
    match args.format {
        ExportFormat::Istio(args) => {
            print!("{}", args.registry.client()?.istio(&args.service).await?);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One row per argument list: the error's start, or `None` when it parses.
    #[test]
    fn weight_arguments() {
        let rows: [(&[&str], Option<&str>); 6] = [
            (&["2.0.0=90", "2.1.0=10"], None),
            (&["2.0.0"], Some("\"2.0.0\" is not VERSION=WEIGHT")),
            (&["latest=100"], Some("\"latest=100\": the version must be")),
            (
                &["2.0.0=ninety"],
                Some("\"2.0.0=ninety\": the weight must be"),
            ),
            (&["2.0.0=101"], Some("\"2.0.0=101\": the weight must be")),
            (
                &["2.0.0=50", "2.0.0=50"],
                Some("\"2.0.0=50\": version 2.0.0 is given twice"),
            ),
        ];
        for (args, want) in rows {
            let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
            let got = parse_weights(&args).err().map(|e| format!("{e:#}"));
            match (got, want) {
                (None, None) => {}
                (Some(got), Some(want)) => assert!(got.starts_with(want), "{args:?}: {got}"),
                (got, want) => panic!("{args:?}: got {got:?}, want {want:?}"),
            }
        }
    }
}
