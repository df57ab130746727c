//! Credentials for servers whose registry entry asks for them (`auth.type` `bearer` or
//! `oauth2`), the OAuth 2.0 client-credentials grant with a token cache, and the HTTP client
//! that puts the token on every MCP request and refreshes it once on a `401`.

mod client;
mod oauth2;

pub(crate) use client::AuthedClient;
pub(crate) use oauth2::OAuth2Client;

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use mcp_fleet_model::{AuthType, Entry};
use rmcp::transport::streamable_http_client::StreamableHttpError;

use crate::credentials::UpstreamCredentials;

/// What the reqwest-backed transport fails with.
type HttpError = StreamableHttpError<reqwest::Error>;

/// Longest a token endpoint may take to answer.
const TOKEN_TIMEOUT: Duration = Duration::from_secs(10);

/// A host callback that returns the bearer token for a server id (or `None` when it has none).
pub type BearerTokenFn = Arc<dyn Fn(&str) -> Option<String> + Send + Sync>;

/// An OAuth 2.0 client registration, for the client-credentials grant.
#[derive(Clone, PartialEq, Eq)]
pub struct ClientCredentials {
    /// The client id.
    pub client_id: String,
    /// The client secret (never printed).
    pub client_secret: String,
    /// The `scope` to request, if any.
    pub scope: Option<String>,
}

impl ClientCredentials {
    /// Credentials without a scope.
    pub fn new(client_id: impl Into<String>, client_secret: impl Into<String>) -> Self {
        Self {
            client_id: client_id.into(),
            client_secret: client_secret.into(),
            scope: None,
        }
    }

    /// Requests `scope` with every token.
    pub fn with_scope(mut self, scope: impl Into<String>) -> Self {
        self.scope = Some(scope.into());
        self
    }
}

impl fmt::Debug for ClientCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientCredentials")
            .field("client_id", &self.client_id)
            .field("client_secret", &"<redacted>")
            .field("scope", &self.scope)
            .finish()
    }
}

/// Why credentials could not be had, or were refused by a token endpoint.
#[derive(Debug, Clone, thiserror::Error)]
pub enum AuthError {
    /// The entry says `bearer` and no token is configured for its server id or service.
    #[error(
        "its registry entry says auth.type \"bearer\" and no token is configured for {}; give \
         one with --upstream-token {service}=TOKEN, MCP_FLEET_UPSTREAM_TOKENS or \
         --credentials-file (in Rust: DiscoveryBuilder::upstream_credentials)",
        for_whom(server, service)
    )]
    MissingToken {
        /// The server id.
        server: String,
        /// Its service.
        service: String,
    },
    /// The entry says `oauth2` and no client credentials are configured for its server id or
    /// service, and there is no default client.
    #[error(
        "its registry entry says auth.type \"oauth2\" and no client credentials are configured \
         for {}; give them with --upstream-oauth2 {service}=CLIENT_ID:CLIENT_SECRET, \
         MCP_FLEET_UPSTREAM_OAUTH2 or --credentials-file (in Rust: \
         DiscoveryBuilder::upstream_credentials)",
        for_whom(server, service)
    )]
    MissingClientCredentials {
        /// The server id.
        server: String,
        /// Its service.
        service: String,
    },
    /// The entry says `oauth2` without a token endpoint.
    #[error("its registry entry says auth.type \"oauth2\" but has no tokenEndpoint")]
    NoTokenEndpoint,
    /// The address policy refuses the token endpoint's address.
    #[error("refused: token endpoint {endpoint}: {reason} (address policy)")]
    TokenEndpointRefused {
        /// The token endpoint.
        endpoint: String,
        /// Which address and range.
        reason: String,
    },
    /// The token endpoint refused the client credentials.
    #[error(
        "token endpoint {endpoint} refused client id {client_id:?} (HTTP {status}{}); check the \
         client id and secret configured for this server",
        oauth_error(.error, .description)
    )]
    TokenRefused {
        /// The token endpoint.
        endpoint: String,
        /// The client id used.
        client_id: String,
        /// HTTP status of the answer.
        status: u16,
        /// The OAuth `error` code, e.g. `invalid_client`.
        error: Option<String>,
        /// The OAuth `error_description`.
        description: Option<String>,
    },
    /// The token endpoint could not be reached.
    #[error("cannot reach token endpoint {endpoint}: {reason}")]
    TokenEndpointUnreachable {
        /// The token endpoint.
        endpoint: String,
        /// The innermost cause.
        reason: String,
    },
    /// The token endpoint answered something that is not a token.
    #[error("token endpoint {endpoint} answered unexpectedly: {reason}")]
    BadTokenResponse {
        /// The token endpoint.
        endpoint: String,
        /// What was wrong.
        reason: String,
    },
}

/// `server id "a" or service "b"`, or `server "a"` when they are the same.
fn for_whom(server: &str, service: &str) -> String {
    if server == service {
        format!("server {server:?}")
    } else {
        format!("server id {server:?} or service {service:?}")
    }
}

fn oauth_error(error: &Option<String>, description: &Option<String>) -> String {
    match (error, description) {
        (Some(e), Some(d)) => format!(", {e}: {d}"),
        (Some(e), None) => format!(", {e}"),
        (None, Some(d)) => format!(", {d}"),
        (None, None) => String::new(),
    }
}

/// The credentials the host configured.
#[derive(Clone, Default)]
pub(crate) struct Credentials {
    pub(crate) upstream: UpstreamCredentials,
    pub(crate) bearer_fn: Option<BearerTokenFn>,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("upstream", &self.upstream)
            .field("bearer_fn", &self.bearer_fn.is_some())
            .finish()
    }
}

/// Where a connection's token comes from.
pub(crate) enum TokenSource {
    /// A fixed bearer token.
    Static(String),
    /// The host's callback, asked again after a rejection.
    Callback {
        server: String,
        service: String,
        get: BearerTokenFn,
        current: Mutex<Option<String>>,
    },
    /// OAuth 2.0 client credentials (shared by every server using the same client).
    OAuth2(Arc<OAuth2Client>),
}

impl TokenSource {
    /// A token; `rejected` is one the server just refused, to be replaced if possible.
    pub(crate) async fn token(&self, rejected: Option<&str>) -> Result<String, AuthError> {
        match self {
            Self::Static(token) => Ok(token.clone()),
            Self::Callback {
                server,
                service,
                get,
                current,
            } => callback_token(server, service, get, current, rejected),
            Self::OAuth2(client) => client.token(rejected).await,
        }
    }
}

/// The callback's last token, or a new one when there is none or it was `rejected`.
fn callback_token(
    server: &str,
    service: &str,
    get: &BearerTokenFn,
    current: &Mutex<Option<String>>,
    rejected: Option<&str>,
) -> Result<String, AuthError> {
    let mut current = current.lock().unwrap_or_else(|e| e.into_inner());
    match current.as_deref() {
        Some(token) if Some(token) != rejected => Ok(token.to_owned()),
        _ => {
            let token = get(server).ok_or_else(|| AuthError::MissingToken {
                server: server.to_owned(),
                service: service.to_owned(),
            })?;
            *current = Some(token.clone());
            Ok(token)
        }
    }
}

/// Token endpoint, client id and scope: what one OAuth 2.0 client (and its token) is for.
type OAuth2Key = (String, String, Option<String>);

/// Token sources for every server, with OAuth 2.0 clients (and their cached tokens) shared
/// between servers that use the same token endpoint and client.
pub(crate) struct Tokens {
    credentials: Credentials,
    http: reqwest::Client,
    policy: Arc<mcp_fleet_model::AddressPolicy>,
    oauth2: Mutex<HashMap<OAuth2Key, Arc<OAuth2Client>>>,
}

impl Tokens {
    pub(crate) fn new(
        credentials: Credentials,
        http: reqwest::Client,
        policy: Arc<mcp_fleet_model::AddressPolicy>,
    ) -> Self {
        Self {
            credentials,
            http,
            policy,
            oauth2: Mutex::new(HashMap::new()),
        }
    }

    /// The token source for `entry`, `None` for `auth.type` `none`.
    pub(crate) fn source_for(&self, entry: &Entry) -> Result<Option<TokenSource>, AuthError> {
        let id = entry.id.as_str();
        let service = entry.service.as_str();
        match entry.auth.kind {
            AuthType::None => Ok(None),
            AuthType::Bearer => {
                if let Some(token) = self.credentials.upstream.bearer_for(id, service) {
                    return Ok(Some(TokenSource::Static(token.to_owned())));
                }
                match &self.credentials.bearer_fn {
                    Some(get) => Ok(Some(TokenSource::Callback {
                        server: id.to_owned(),
                        service: service.to_owned(),
                        get: get.clone(),
                        current: Mutex::new(None),
                    })),
                    None => Err(AuthError::MissingToken {
                        server: id.to_owned(),
                        service: service.to_owned(),
                    }),
                }
            }
            AuthType::Oauth2 => {
                let creds = self
                    .credentials
                    .upstream
                    .oauth2_for(id, service)
                    .ok_or_else(|| AuthError::MissingClientCredentials {
                        server: id.to_owned(),
                        service: service.to_owned(),
                    })?;
                let endpoint_url = entry
                    .auth
                    .token_endpoint
                    .as_ref()
                    .ok_or(AuthError::NoTokenEndpoint)?;
                let endpoint = endpoint_url.as_str().to_owned();
                // Names are checked as they resolve; literal addresses here.
                if let Err(refused) = self.policy.check_url(endpoint_url.url()) {
                    return Err(AuthError::TokenEndpointRefused {
                        endpoint,
                        reason: refused.to_string(),
                    });
                }
                let key = (
                    endpoint.clone(),
                    creds.client_id.clone(),
                    creds.scope.clone(),
                );
                let mut clients = self.oauth2.lock().unwrap_or_else(|e| e.into_inner());
                let client = clients
                    .entry(key)
                    .or_insert_with(|| {
                        Arc::new(OAuth2Client {
                            http: self.http.clone(),
                            endpoint,
                            credentials: creds.clone(),
                            cached: tokio::sync::Mutex::new(None),
                        })
                    })
                    // A secret changed in the builder never reaches an existing client, as
                    // the builder is consumed; comparing keeps this honest anyway.
                    .clone();
                Ok(Some(TokenSource::OAuth2(client)))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_not_printed() {
        let creds = ClientCredentials::new("agent", "hunter2").with_scope("tools");
        let text = format!("{creds:?}");
        assert!(!text.contains("hunter2"), "{text}");
        assert!(text.contains("agent"), "{text}");
    }

    #[test]
    fn refusals_name_the_client_and_what_to_check() {
        let e = AuthError::TokenRefused {
            endpoint: "http://127.0.0.1:1/token".into(),
            client_id: "agent".into(),
            status: 401,
            error: Some("invalid_client".into()),
            description: None,
        };
        assert_eq!(
            e.to_string(),
            "token endpoint http://127.0.0.1:1/token refused client id \"agent\" (HTTP 401, \
             invalid_client); check the client id and secret configured for this server"
        );
    }

    #[tokio::test]
    async fn a_callback_is_asked_again_after_a_rejection() {
        let calls = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counter = calls.clone();
        let source = TokenSource::Callback {
            server: "alpha".into(),
            service: "alpha".into(),
            get: Arc::new(move |_| {
                let n = counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                Some(format!("token-{n}"))
            }),
            current: Mutex::new(None),
        };
        assert_eq!(source.token(None).await.expect("token"), "token-0");
        assert_eq!(source.token(None).await.expect("cached"), "token-0");
        assert_eq!(
            source.token(Some("token-0")).await.expect("fresh"),
            "token-1"
        );
        assert_eq!(source.token(Some("old")).await.expect("current"), "token-1");
    }
}
