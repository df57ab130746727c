//! Credentials for servers whose registry entry asks for them (`auth.type` `bearer` or
//! `oauth2`), the OAuth 2.0 client-credentials grant with a token cache, and the HTTP client
//! that puts the token on every MCP request and refreshes it once on a `401`.

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use mcp_fleet_model::{AuthType, Entry};
use reqwest::header::{ACCEPT, CONTENT_TYPE, HeaderName, HeaderValue};
use rmcp::model::ClientJsonRpcMessage;
use rmcp::transport::common::client_side_sse::BoxedSseResponse;
use rmcp::transport::streamable_http_client::{
    StreamableHttpClient, StreamableHttpError, StreamableHttpPostResponse,
    StreamableHttpResponseLimits,
};
use serde::Deserialize;

use crate::call_http::CallHttp;
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

/// An access token and when to stop using it.
struct CachedToken {
    token: String,
    /// Shortly before the token expires; `None` when the endpoint gave no lifetime (then the
    /// token is used until a server refuses it).
    refresh_at: Option<Instant>,
}

/// The client-credentials grant against one token endpoint, for one client.
pub(crate) struct OAuth2Client {
    http: reqwest::Client,
    endpoint: String,
    credentials: ClientCredentials,
    /// Held across the token request, so concurrent connections wait for one fetch.
    cached: tokio::sync::Mutex<Option<CachedToken>>,
}

#[derive(Deserialize)]
struct TokenResponse {
    access_token: String,
    #[serde(default)]
    token_type: Option<String>,
    #[serde(default)]
    expires_in: Option<u64>,
}

#[derive(Deserialize)]
struct TokenErrorResponse {
    #[serde(default)]
    error: Option<String>,
    #[serde(default)]
    error_description: Option<String>,
}

/// `grant_type=client_credentials[&scope=…]`, form-encoded.
fn token_request_body(scope: Option<&str>) -> String {
    let mut form = form_urlencoded::Serializer::new(String::new());
    form.append_pair("grant_type", "client_credentials");
    if let Some(scope) = scope {
        form.append_pair("scope", scope);
    }
    form.finish()
}

/// How long before expiry a token is replaced: a tenth of its lifetime, at most a minute.
fn refresh_margin(lifetime: Duration) -> Duration {
    (lifetime / 10).min(Duration::from_secs(60))
}

impl OAuth2Client {
    /// The cached token unless it is about to expire or is `rejected`; else a new one.
    async fn token(&self, rejected: Option<&str>) -> Result<String, AuthError> {
        let mut cached = self.cached.lock().await;
        if let Some(c) = cached.as_ref() {
            let fresh = c.refresh_at.is_none_or(|at| Instant::now() < at);
            if fresh && Some(c.token.as_str()) != rejected {
                return Ok(c.token.clone());
            }
        }
        let token = self.fetch().await?;
        let value = token.token.clone();
        *cached = Some(token);
        Ok(value)
    }

    async fn fetch(&self) -> Result<CachedToken, AuthError> {
        // RFC 6749 §2.3.1: the id and secret are form-encoded before going into Basic auth.
        let encode = |s: &str| form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
        let request = self
            .http
            .post(&self.endpoint)
            .basic_auth(
                encode(&self.credentials.client_id),
                Some(encode(&self.credentials.client_secret)),
            )
            .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
            .header(ACCEPT, "application/json")
            .timeout(TOKEN_TIMEOUT)
            .body(token_request_body(self.credentials.scope.as_deref()));
        let started = Instant::now();
        let unreachable = |e: reqwest::Error| AuthError::TokenEndpointUnreachable {
            endpoint: self.endpoint.clone(),
            reason: crate::error::describe(&e),
        };
        let response = request.send().await.map_err(unreachable)?;
        let status = response.status();
        let body = response.bytes().await.map_err(unreachable)?;
        let bad = |reason: String| AuthError::BadTokenResponse {
            endpoint: self.endpoint.clone(),
            reason,
        };
        if !status.is_success() {
            if status.is_client_error() {
                let parsed: Option<TokenErrorResponse> = serde_json::from_slice(&body).ok();
                let (error, description) = parsed
                    .map(|p| (p.error, p.error_description))
                    .unwrap_or_default();
                return Err(AuthError::TokenRefused {
                    endpoint: self.endpoint.clone(),
                    client_id: self.credentials.client_id.clone(),
                    status: status.as_u16(),
                    error,
                    description,
                });
            }
            return Err(bad(format!("HTTP {status}")));
        }
        let token: TokenResponse = serde_json::from_slice(&body)
            .map_err(|e| bad(format!("not an OAuth 2.0 token response ({e})")))?;
        if let Some(kind) = &token.token_type
            && !kind.eq_ignore_ascii_case("bearer")
        {
            return Err(bad(format!("token_type {kind:?}, expected \"Bearer\"")));
        }
        if token.access_token.is_empty() {
            return Err(bad("empty access_token".into()));
        }
        let refresh_at = token.expires_in.map(|secs| {
            let lifetime = Duration::from_secs(secs);
            started + lifetime.saturating_sub(refresh_margin(lifetime))
        });
        tracing::debug!(endpoint = %self.endpoint, expires_in = ?token.expires_in, "OAuth 2.0 token obtained");
        Ok(CachedToken {
            token: token.access_token,
            refresh_at,
        })
    }
}

/// The MCP transport's HTTP client: reqwest, plus the connection's token on every request
/// (one retry with a fresh token after a `401`), plus a limit on how long a response's head may
/// take so that no background request of the transport hangs forever.
#[derive(Clone)]
pub(crate) struct AuthedClient {
    pub(crate) http: reqwest::Client,
    pub(crate) tokens: Option<Arc<TokenSource>>,
    pub(crate) head_timeout: Duration,
    /// The session id the server gave (on its answer to `initialize`), for direct calls.
    pub(crate) session_id: Arc<OnceLock<Arc<str>>>,
    /// Kept connections for the POSTs to an `http://` server (see `kept_post`).
    kept: Option<CallHttp>,
}

fn is_unauthorized(error: &HttpError) -> bool {
    match error {
        StreamableHttpError::AuthRequired(_) => true,
        StreamableHttpError::UnexpectedServerResponse(text) => {
            crate::rmcp_errors::auth_status_in_text(text) == Some(401)
        }
        StreamableHttpError::Client(e) => e.status().is_some_and(|s| s.as_u16() == 401),
        _ => false,
    }
}

impl AuthedClient {
    /// A client for one session.
    pub(crate) fn new(
        http: reqwest::Client,
        tokens: Option<Arc<TokenSource>>,
        head_timeout: Duration,
    ) -> Self {
        Self {
            http,
            tokens,
            head_timeout,
            session_id: Arc::default(),
            kept: None,
        }
    }

    /// Posts to `http://` servers over `calls`' kept connections, where this platform keeps
    /// them (see `call_http`).
    pub(crate) fn with_kept_connections(mut self, calls: &CallHttp) -> Self {
        if crate::call_http::KEEPS_CONNECTIONS {
            self.kept = Some(calls.clone());
        }
        self
    }

    /// Posts `message` with the current token (after a `401`, once more with a fresh one).
    async fn post_with_token(
        &self,
        uri: Arc<str>,
        message: ClientJsonRpcMessage,
        session_id: Option<Arc<str>>,
        custom_headers: HashMap<HeaderName, HeaderValue>,
        limits: StreamableHttpResponseLimits,
    ) -> Result<StreamableHttpPostResponse, HttpError> {
        let kept = self
            .kept
            .as_ref()
            .filter(|_| uri.starts_with("http://"))
            .and_then(|calls| Some((calls, uri.parse::<hyper::Uri>().ok()?)));
        if let Some((calls, parsed)) = kept {
            let session_id = session_id.as_deref();
            return self
                .with_token(|token| {
                    crate::kept_post::post(
                        calls,
                        &parsed,
                        &message,
                        session_id,
                        token,
                        &custom_headers,
                        limits,
                    )
                })
                .await;
        }
        if self.tokens.is_none() {
            // Nothing to retry with: no copies of the message.
            return self
                .bounded(self.http.post_message_with_response_limits(
                    uri,
                    message,
                    session_id,
                    None,
                    custom_headers,
                    limits,
                ))
                .await;
        }
        self.with_token(|token| {
            self.http.post_message_with_response_limits(
                uri.clone(),
                message.clone(),
                session_id.clone(),
                token,
                custom_headers.clone(),
                limits,
            )
        })
        .await
    }

    async fn bounded<T>(
        &self,
        call: impl Future<Output = Result<T, HttpError>>,
    ) -> Result<T, HttpError> {
        match tokio::time::timeout(self.head_timeout, call).await {
            Ok(result) => result,
            Err(_) => Err(StreamableHttpError::Io(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                format!("no answer within {:?}", self.head_timeout),
            ))),
        }
    }

    /// Runs `call` with the current token; after a 401, once more with a fresh one.
    async fn with_token<T, F, Fut>(&self, call: F) -> Result<T, HttpError>
    where
        F: Fn(Option<String>) -> Fut,
        Fut: Future<Output = Result<T, HttpError>>,
    {
        let Some(tokens) = &self.tokens else {
            return self.bounded(call(None)).await;
        };
        let token = tokens.token(None).await.map_err(auth_io_error)?;
        match self.bounded(call(Some(token.clone()))).await {
            Err(e) if is_unauthorized(&e) => {
                let fresh = tokens.token(Some(&token)).await.map_err(auth_io_error)?;
                if fresh == token {
                    return Err(e);
                }
                tracing::debug!("retrying with a fresh token after HTTP 401");
                self.bounded(call(Some(fresh))).await
            }
            other => other,
        }
    }
}

/// Carries our [`AuthError`] through the transport, which only knows its own error type.
fn auth_io_error(e: AuthError) -> HttpError {
    StreamableHttpError::Io(std::io::Error::new(std::io::ErrorKind::PermissionDenied, e))
}

impl StreamableHttpClient for AuthedClient {
    type Error = reqwest::Error;

    async fn post_message(
        &self,
        uri: Arc<str>,
        message: ClientJsonRpcMessage,
        session_id: Option<Arc<str>>,
        auth_header: Option<String>,
        custom_headers: HashMap<HeaderName, HeaderValue>,
    ) -> Result<StreamableHttpPostResponse, HttpError> {
        self.post_message_with_response_limits(
            uri,
            message,
            session_id,
            auth_header,
            custom_headers,
            StreamableHttpResponseLimits::default(),
        )
        .await
    }

    async fn post_message_with_max_sse_event_size(
        &self,
        uri: Arc<str>,
        message: ClientJsonRpcMessage,
        session_id: Option<Arc<str>>,
        auth_header: Option<String>,
        custom_headers: HashMap<HeaderName, HeaderValue>,
        max_sse_event_size: usize,
    ) -> Result<StreamableHttpPostResponse, HttpError> {
        let mut limits = StreamableHttpResponseLimits::default();
        limits.max_sse_event_size = max_sse_event_size;
        self.post_message_with_response_limits(
            uri,
            message,
            session_id,
            auth_header,
            custom_headers,
            limits,
        )
        .await
    }

    async fn post_message_with_response_limits(
        &self,
        uri: Arc<str>,
        message: ClientJsonRpcMessage,
        session_id: Option<Arc<str>>,
        _auth_header: Option<String>,
        custom_headers: HashMap<HeaderName, HeaderValue>,
        limits: StreamableHttpResponseLimits,
    ) -> Result<StreamableHttpPostResponse, HttpError> {
        let posted = self
            .post_with_token(uri, message, session_id, custom_headers, limits)
            .await;
        if let Ok(
            StreamableHttpPostResponse::Json(_, Some(id))
            | StreamableHttpPostResponse::Sse(_, Some(id)),
        ) = &posted
            && self.session_id.get().is_none()
        {
            let _ = self.session_id.set(Arc::from(id.as_str()));
        }
        posted
    }

    async fn delete_session(
        &self,
        uri: Arc<str>,
        session_id: Arc<str>,
        _auth_header: Option<String>,
        custom_headers: HashMap<HeaderName, HeaderValue>,
    ) -> Result<(), HttpError> {
        self.with_token(|token| {
            self.http.delete_session(
                uri.clone(),
                session_id.clone(),
                token,
                custom_headers.clone(),
            )
        })
        .await
    }

    async fn get_stream(
        &self,
        uri: Arc<str>,
        session_id: Option<Arc<str>>,
        last_event_id: Option<String>,
        auth_header: Option<String>,
        custom_headers: HashMap<HeaderName, HeaderValue>,
    ) -> Result<BoxedSseResponse, HttpError> {
        self.get_stream_with_max_sse_event_size(
            uri,
            session_id,
            last_event_id,
            auth_header,
            custom_headers,
            StreamableHttpResponseLimits::default().max_sse_event_size,
        )
        .await
    }

    async fn get_stream_with_max_sse_event_size(
        &self,
        uri: Arc<str>,
        session_id: Option<Arc<str>>,
        last_event_id: Option<String>,
        _auth_header: Option<String>,
        custom_headers: HashMap<HeaderName, HeaderValue>,
        max_sse_event_size: usize,
    ) -> Result<BoxedSseResponse, HttpError> {
        self.with_token(|token| {
            self.http.get_stream_with_max_sse_event_size(
                uri.clone(),
                session_id.clone(),
                last_event_id.clone(),
                token,
                custom_headers.clone(),
                max_sse_event_size,
            )
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refresh_margin_is_a_tenth_up_to_a_minute() {
        let cases = [(3600, 60), (300, 30), (10, 1), (0, 0)];
        for (lifetime, want) in cases {
            assert_eq!(
                refresh_margin(Duration::from_secs(lifetime)),
                Duration::from_secs(want),
                "{lifetime}"
            );
        }
    }

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
