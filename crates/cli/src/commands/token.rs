//! `token create|ls|revoke`: API tokens, managed in the registry's database directly (as the
//! operator who runs it), so the first token needs no token.

use std::time::Duration;

use anyhow::bail;
use chrono::Utc;
use clap::{Args, Subcommand};
use mcp_fleet_model::{TokenRecord, parse_id_patterns, parse_scopes};
use serde_json::json;

use super::DatabaseArg;
use crate::output::{Grid, OutputArg};

/// `token …`.
#[derive(Debug, Subcommand)]
pub(crate) enum TokenCommand {
    /// Make a token and print it (once: only its hash is stored).
    Create(CreateArgs),
    /// List tokens (never their secrets).
    Ls(LsArgs),
    /// Revoke a token: it stops working at once.
    Revoke(RevokeArgs),
}

/// Options of `token create`.
#[derive(Debug, Args)]
pub(crate) struct CreateArgs {
    #[command(flatten)]
    database: DatabaseArg,
    /// Comma-separated: servers:read, servers:write, routing:write, admin.
    #[arg(long)]
    scopes: String,
    /// Comma-separated id patterns the token may write (`payments-*`; `*` for every id).
    #[arg(long)]
    ids: String,
    /// Lifetime (`90d`, `12h`); never expires when not given.
    #[arg(long, value_parser = humantime::parse_duration)]
    expires: Option<Duration>,
    /// Who or what the token is for.
    #[arg(long, default_value = "")]
    description: String,
    /// Create the `sqlite://` database file when it is not there (to issue the first token
    /// before `serve` first starts); without it a missing file is an error.
    #[arg(long)]
    create_database: bool,
}

/// Options of `token ls`.
#[derive(Debug, Args)]
pub(crate) struct LsArgs {
    #[command(flatten)]
    database: DatabaseArg,
    #[command(flatten)]
    output: OutputArg,
}

/// Options of `token revoke`.
#[derive(Debug, Args)]
pub(crate) struct RevokeArgs {
    #[command(flatten)]
    database: DatabaseArg,
    /// The token's id (`tok_…`).
    id: String,
}

fn state(t: &TokenRecord) -> &'static str {
    let now = Utc::now();
    if t.revoked_at.is_some() {
        "revoked"
    } else if t.is_active(now) {
        "active"
    } else {
        "expired"
    }
}

pub(crate) async fn run(command: TokenCommand) -> anyhow::Result<()> {
    match command {
        TokenCommand::Create(args) => {
            let scopes =
                parse_scopes(&args.scopes).map_err(|e| anyhow::anyhow!("--scopes: {e}"))?;
            let ids = parse_id_patterns(&args.ids).map_err(|e| anyhow::anyhow!("--ids: {e}"))?;
            let now = Utc::now();
            let expires_at = match args.expires {
                None => None,
                Some(d) => Some(
                    now + chrono::Duration::from_std(d)
                        .map_err(|_| anyhow::anyhow!("--expires is too far away"))?,
                ),
            };
            let store = if args.create_database {
                args.database.store_creating().await?
            } else {
                args.database.store().await?
            };
            let (token, record) = mcp_fleet_registry::auth::tokens::issue(
                scopes,
                ids,
                args.description,
                expires_at,
                now,
            )?;
            store.create_token(&record).await?;
            println!("{token}");
            let scopes: Vec<&str> = record.scopes.iter().map(|s| s.as_str()).collect();
            let ids: Vec<&str> = record.ids.iter().map(|p| p.as_str()).collect();
            eprintln!(
                "created {} (scopes {}; ids {}{}); it is shown only now: store it as a secret",
                record.id,
                scopes.join(","),
                ids.join(","),
                record
                    .expires_at
                    .map(|t| format!("; expires {}", mcp_fleet_model::format_timestamp(&t)))
                    .unwrap_or_default()
            );
        }
        TokenCommand::Ls(args) => {
            let tokens = args.database.store().await?.tokens().await?;
            let list: Vec<_> = tokens
                .iter()
                .map(|t| {
                    json!({
                        "id": t.id,
                        "scopes": t.scopes.iter().map(|s| s.as_str()).collect::<Vec<_>>(),
                        "ids": t.ids.iter().map(|p| p.as_str()).collect::<Vec<_>>(),
                        "description": t.description,
                        "createdAt": mcp_fleet_model::format_timestamp(&t.created_at),
                        "expiresAt": t.expires_at.as_ref().map(mcp_fleet_model::format_timestamp),
                        "revokedAt": t.revoked_at.as_ref().map(mcp_fleet_model::format_timestamp),
                        "state": state(t),
                    })
                })
                .collect();
            if args.output.print_data(&list)? {
                return Ok(());
            }
            if tokens.is_empty() {
                println!("no tokens (writes are open unless `serve --auth token`)");
                return Ok(());
            }
            let mut table = Grid::new(&["ID", "STATE", "SCOPES", "IDS", "EXPIRES", "DESCRIPTION"]);
            table.gives_way(&["DESCRIPTION"]);
            for t in &tokens {
                let scopes: Vec<&str> = t.scopes.iter().map(|s| s.as_str()).collect();
                let ids: Vec<&str> = t.ids.iter().map(|p| p.as_str()).collect();
                table.add_row(vec![
                    t.id.clone(),
                    state(t).to_owned(),
                    scopes.join(","),
                    ids.join(","),
                    t.expires_at
                        .as_ref()
                        .map_or_else(|| "never".to_owned(), mcp_fleet_model::format_timestamp),
                    t.description.clone(),
                ]);
            }
            println!("{table}");
        }
        TokenCommand::Revoke(args) => {
            let store = args.database.store().await?;
            if store.revoke_token(&args.id, Utc::now()).await? {
                eprintln!("revoked {}", args.id);
            } else if store.token(&args.id).await?.is_some() {
                eprintln!("{} was already revoked", args.id);
            } else {
                bail!("no token {:?} (see `mcp-fleet token ls`)", args.id);
            }
        }
    }
    Ok(())
}
