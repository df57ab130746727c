//! Flags of `serve` (and `demo`) for authentication and abuse limits.

use std::path::PathBuf;

use anyhow::{Context, bail};
use clap::{Args, ValueEnum};
use mcp_fleet_registry::auth::{AuthConfig, AuthMode, OidcConfig, OidcPolicy};
use mcp_fleet_registry::limits::LimitsConfig;

/// `--auth`.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub(crate) enum AuthArg {
    /// Tokens once any exists in the database (OIDC when an issuer is set); open until then.
    Auto,
    /// Open writes: only on a trusted network.
    None,
    /// Registry tokens (`mcp-fleet token create`).
    Token,
    /// OIDC JWTs (registry tokens too).
    Oidc,
}

/// Authentication and abuse-limit options.
#[derive(Debug, Args)]
pub(crate) struct SecurityArgs {
    /// Who may write: `auto` (tokens once one exists), `none`, `token` or `oidc`.
    #[arg(long, env = "MCP_FLEET_AUTH", value_enum, default_value = "auto")]
    auth: AuthArg,
    /// Reads need a credential with `servers:read` too.
    #[arg(long, env = "MCP_FLEET_AUTH_READS")]
    auth_reads: bool,
    /// `/healthz`, `/readyz` and `/metrics` need a valid credential too.
    #[arg(long, env = "MCP_FLEET_AUTH_OPS")]
    auth_ops: bool,
    /// OIDC issuer URL (the `iss` of accepted JWTs).
    #[arg(long, env = "MCP_FLEET_OIDC_ISSUER", requires_all = ["oidc_audience", "oidc_policy"])]
    oidc_issuer: Option<String>,
    /// The `aud` accepted JWTs must carry.
    #[arg(long, env = "MCP_FLEET_OIDC_AUDIENCE")]
    oidc_audience: Option<String>,
    /// The issuer's JWKS URL (default: from its `/.well-known/openid-configuration`).
    #[arg(long, env = "MCP_FLEET_OIDC_JWKS_URL")]
    oidc_jwks_url: Option<String>,
    /// JSON file mapping a claim to scopes and id patterns:
    /// `{"claim":"sub","rules":[{"match":"system:serviceaccount:payments:*","scopes":["servers:write"],"ids":["payments-*"]}]}`.
    #[arg(long, env = "MCP_FLEET_OIDC_POLICY")]
    oidc_policy: Option<PathBuf>,
    /// Writes per second per client (token, else address); 0 = no limit.
    #[arg(long, env = "MCP_FLEET_WRITE_RATE_LIMIT", default_value_t = 100)]
    write_rate_limit: u32,
    /// Writes a client may burst before the rate applies.
    #[arg(long, env = "MCP_FLEET_WRITE_BURST", default_value_t = 1000)]
    write_burst: u32,
    /// Listings, `/status` and `/events` per second per client; 0 = no limit.
    #[arg(long, env = "MCP_FLEET_READ_RATE_LIMIT", default_value_t = 1000)]
    read_rate_limit: u32,
    /// Reads a client may burst before the rate applies.
    #[arg(long, env = "MCP_FLEET_READ_BURST", default_value_t = 2000)]
    read_burst: u32,
    /// Most entries the registry holds (new registrations past it get `507`).
    #[arg(long, env = "MCP_FLEET_MAX_ENTRIES")]
    max_entries: Option<u64>,
    /// Most entries one token or OIDC identity may have registered.
    #[arg(long, env = "MCP_FLEET_MAX_ENTRIES_PER_TOKEN")]
    max_entries_per_token: Option<u64>,
    /// A load balancer or proxy (CIDR or address; repeatable) whose Forwarded /
    /// X-Forwarded-For headers name the client rate limits count; ignored from anyone else.
    #[arg(long = "trusted-proxy", env = "MCP_FLEET_TRUSTED_PROXY", value_delimiter = ',', value_parser = mcp_fleet_registry::parse_cidr)]
    trusted_proxy: Vec<ipnet::IpNet>,
}

impl SecurityArgs {
    /// The registry's auth settings.
    pub(crate) fn auth(&self) -> anyhow::Result<AuthConfig> {
        let oidc = match &self.oidc_issuer {
            None => None,
            Some(issuer) => {
                let (Some(audience), Some(policy)) = (&self.oidc_audience, &self.oidc_policy)
                else {
                    bail!("--oidc-issuer needs --oidc-audience and --oidc-policy");
                };
                let text = std::fs::read_to_string(policy)
                    .with_context(|| format!("cannot read {}", policy.display()))?;
                let policy = OidcPolicy::from_json(&text)
                    .map_err(|e| anyhow::anyhow!("{}: {e}", policy.display()))?;
                Some(OidcConfig {
                    issuer: issuer.clone(),
                    audience: audience.clone(),
                    jwks_url: self.oidc_jwks_url.clone(),
                    policy,
                })
            }
        };
        let mode = match self.auth {
            AuthArg::Auto => AuthMode::Auto,
            AuthArg::None => AuthMode::None,
            AuthArg::Token => AuthMode::Token,
            AuthArg::Oidc => AuthMode::Oidc,
        };
        if mode == AuthMode::Oidc && oidc.is_none() {
            bail!("--auth oidc needs --oidc-issuer, --oidc-audience and --oidc-policy");
        }
        Ok(AuthConfig {
            mode,
            reads: self.auth_reads,
            ops: self.auth_ops,
            oidc,
        })
    }

    /// The registry's abuse limits.
    pub(crate) fn limits(&self) -> LimitsConfig {
        LimitsConfig {
            write_rate: self.write_rate_limit,
            write_burst: self.write_burst,
            read_rate: self.read_rate_limit,
            read_burst: self.read_burst,
            max_entries: self.max_entries,
            max_entries_per_principal: self.max_entries_per_token,
            trusted_proxies: self.trusted_proxy.clone(),
        }
    }
}
