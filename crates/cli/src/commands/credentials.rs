//! Credentials for upstream MCP servers (`--upstream-token`, `--upstream-oauth2`,
//! `--credentials-file`, `--oauth2-client-id`/`--oauth2-client-secret`), shared by `gateway`,
//! `tools` and `call`.

use std::fmt;
use std::path::PathBuf;

use anyhow::Context;
use clap::Args;
use mcp_fleet_discovery::{
    ClientCredentials, CredentialKey, OAuth2Option, TokenOption, UpstreamCredentials,
};

/// Credentials for upstream servers whose registry entry asks for them. A server id's beats
/// its service's; options (and their environment variables) beat the file.
#[derive(Args)]
pub(crate) struct CredentialArgs {
    /// Bearer token for upstreams whose entry says `bearer`, by server id or service
    /// (repeatable; the variable takes a comma-separated list).
    #[arg(
        long = "upstream-token",
        alias = "bearer-token",
        value_name = "SERVER_OR_SERVICE=TOKEN",
        env = "MCP_FLEET_UPSTREAM_TOKENS",
        value_delimiter = ',',
        hide_env_values = true
    )]
    upstream_tokens: Vec<String>,
    /// OAuth 2.0 client for upstreams whose entry says `oauth2`, by server id or service
    /// (repeatable; the variable takes a comma-separated list). Tokens come from the entry's
    /// tokenEndpoint.
    #[arg(
        long = "upstream-oauth2",
        value_name = "SERVER_OR_SERVICE=CLIENT_ID:CLIENT_SECRET",
        env = "MCP_FLEET_UPSTREAM_OAUTH2",
        value_delimiter = ',',
        hide_env_values = true
    )]
    upstream_oauth2: Vec<String>,
    /// TOML (or, named *.json, JSON) file of tokens and OAuth 2.0 clients under
    /// [servers.ID] and [services.NAME]; a secret may be { env = "VAR" }.
    #[arg(long, env = "MCP_FLEET_CREDENTIALS_FILE", value_name = "FILE")]
    credentials_file: Option<PathBuf>,
    /// OAuth 2.0 client id for every `oauth2` upstream without a client of its own.
    #[arg(
        long,
        env = "MCP_FLEET_OAUTH2_CLIENT_ID",
        requires = "oauth2_client_secret"
    )]
    oauth2_client_id: Option<String>,
    /// Its secret (prefer the environment variable or the file to the option).
    #[arg(long, env = "MCP_FLEET_OAUTH2_CLIENT_SECRET", hide_env_values = true)]
    oauth2_client_secret: Option<String>,
}

impl fmt::Debug for CredentialArgs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CredentialArgs")
            .field("upstream_tokens", &self.upstream_tokens.len())
            .field("upstream_oauth2", &self.upstream_oauth2.len())
            .field("credentials_file", &self.credentials_file)
            .field("oauth2_client_id", &self.oauth2_client_id)
            .finish_non_exhaustive()
    }
}

impl CredentialArgs {
    /// The file's credentials, then the options' over them. Errors never repeat a value given,
    /// which may hold a secret.
    pub(crate) fn credentials(&self) -> anyhow::Result<UpstreamCredentials> {
        let mut credentials = match &self.credentials_file {
            Some(path) => UpstreamCredentials::from_file(path)?,
            None => UpstreamCredentials::new(),
        };
        let mut options = UpstreamCredentials::new();
        for value in &self.upstream_tokens {
            let option: TokenOption = value
                .parse()
                .context("--upstream-token (or MCP_FLEET_UPSTREAM_TOKENS)")?;
            options.bearer(CredentialKey::ServerOrService(option.key), option.token);
        }
        for value in &self.upstream_oauth2 {
            let option: OAuth2Option = value
                .parse()
                .context("--upstream-oauth2 (or MCP_FLEET_UPSTREAM_OAUTH2)")?;
            options.oauth2(CredentialKey::ServerOrService(option.key), option.client);
        }
        if let (Some(id), Some(secret)) = (&self.oauth2_client_id, &self.oauth2_client_secret) {
            options.default_oauth2(ClientCredentials::new(id, secret));
        }
        credentials.merge(options);
        Ok(credentials)
    }
}
