//! Who is calling, and whether they may: bearer tokens issued by the registry (`mcpf_…`) or
//! OIDC/workload-identity JWTs, mapped to scopes and id patterns (namespace ownership).
//!
//! Write handlers take a [`Writer`]: extracting it authenticates the request (a `401` when
//! writes need credentials and none or bad ones came); [`Writer::allow`] then checks the scope
//! and that every id the write touches is owned (a `403` otherwise). Reads are checked by
//! [`guard_reads`] when `--auth-reads` is on.

pub mod oidc;
pub(crate) mod token_cache;
pub mod tokens;

use std::sync::Arc;

use axum::extract::{FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{Extensions, HeaderMap, Method, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use chrono::Utc;
use mcp_fleet_model::{IdPattern, Scope, ServerId, TokenRecord};

use crate::AppState;
use crate::error::ApiError;

pub use oidc::{OidcConfig, OidcPolicy, OidcRule};

/// When writes (and, with `reads`, reads) need credentials.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AuthMode {
    /// Tokens once any token exists in the database (or OIDC when configured); open before.
    #[default]
    Auto,
    /// Open: anyone who reaches the registry may write. Only for trusted networks.
    None,
    /// Registry tokens required.
    Token,
    /// OIDC JWTs (registry tokens are accepted too, e.g. for CI).
    Oidc,
}

/// Authentication settings of the API.
#[derive(Debug, Clone, Default)]
pub struct AuthConfig {
    /// When writes need credentials.
    pub mode: AuthMode,
    /// Reads need `servers:read` too (except `/`, `/healthz`, `/readyz`, `/metrics`,
    /// `/openapi.json` unless `ops` is set).
    pub reads: bool,
    /// `/healthz`, `/readyz` and `/metrics` need a valid credential (any scope) too.
    pub ops: bool,
    /// OIDC issuer, audience and claim policy.
    pub oidc: Option<OidcConfig>,
}

/// An authenticated caller.
#[derive(Debug, Clone, PartialEq)]
pub struct Principal {
    /// A token id (`tok_…`) or `oidc:<claim value>`: what `updatedBy` records.
    pub id: String,
    /// What it may do.
    pub scopes: Vec<Scope>,
    /// Which ids and services it may write.
    pub ids: Vec<IdPattern>,
}

impl Principal {
    fn has(&self, scope: Scope) -> bool {
        self.scopes.contains(&Scope::Admin) || self.scopes.contains(&scope)
    }

    fn owns(&self, id: &str) -> bool {
        self.scopes.contains(&Scope::Admin) || self.ids.iter().any(|p| p.matches(id))
    }

    /// Its id patterns, for messages.
    fn owned(&self) -> String {
        let owned: Vec<&str> = self.ids.iter().map(IdPattern::as_str).collect();
        owned.join(", ")
    }
}

/// What the rate limiter found when it verified the request's registry token, so that the
/// handler does not look it up again.
#[derive(Clone)]
pub(crate) struct Checked(pub(crate) Result<TokenRecord, tokens::Refused>);

/// What a request presented.
enum Presented {
    Nothing,
    Valid(Principal),
    Refused(String),
}

/// The bearer token of `headers`: `None` without an `Authorization` header, `Err` when it is
/// not `Bearer <token>`.
pub(crate) fn bearer(headers: &HeaderMap) -> Option<Result<&str, ()>> {
    let value = headers.get(header::AUTHORIZATION)?;
    let Ok(value) = value.to_str() else {
        return Some(Err(()));
    };
    match value.split_once(' ') {
        Some((scheme, token))
            if scheme.eq_ignore_ascii_case("bearer") && !token.trim().is_empty() =>
        {
            Some(Ok(token.trim()))
        }
        _ => Some(Err(())),
    }
}

impl AppState {
    /// Whether anyone may write now (no credentials needed): for the start-up warning.
    pub async fn writes_are_open(&self) -> Result<bool, ApiError> {
        Ok(!self.writes_need_auth().await?)
    }

    /// Whether writes need credentials now.
    async fn writes_need_auth(&self) -> Result<bool, ApiError> {
        let auth = &self.config().auth;
        Ok(match auth.mode {
            AuthMode::None => false,
            AuthMode::Token | AuthMode::Oidc => true,
            AuthMode::Auto => auth.oidc.is_some() || self.tokens_exist().await?,
        })
    }

    /// Verifies a registry token: refused at once when it was refused lately, else looked up.
    pub(crate) async fn verify_token(
        &self,
        token: &str,
    ) -> Result<Result<TokenRecord, tokens::Refused>, mcp_fleet_store::StoreError> {
        if tokens::split(token).is_none() {
            return Ok(Err(tokens::Refused::Malformed));
        }
        if let Some(refused) = self.token_cache().refused(token) {
            return Ok(Err(refused));
        }
        self.metrics().token_lookups.inc();
        let found = tokens::verify(self.store(), token, Utc::now()).await?;
        self.token_cache().remember(token, &found);
        Ok(found)
    }

    async fn presented(
        &self,
        headers: &HeaderMap,
        extensions: &Extensions,
    ) -> Result<Presented, ApiError> {
        let token = match bearer(headers) {
            None => return Ok(Presented::Nothing),
            Some(Err(())) => {
                return Ok(Presented::Refused(
                    "the Authorization header must be `Bearer <token>`".into(),
                ));
            }
            Some(Ok(token)) => token,
        };
        if token.starts_with(tokens::TOKEN_PREFIX) {
            let found = match extensions.get::<Checked>() {
                Some(Checked(found)) => found.clone(),
                None => self.verify_token(token).await?,
            };
            return Ok(match found {
                Ok(record) => Presented::Valid(Principal {
                    id: record.id,
                    scopes: record.scopes,
                    ids: record.ids,
                }),
                Err(refused) => Presented::Refused(refused.reason()),
            });
        }
        match self.oidc() {
            Some(oidc) => Ok(match oidc.verify(token).await {
                Ok(principal) => Presented::Valid(principal),
                Err(reason) => Presented::Refused(reason),
            }),
            None => Ok(Presented::Refused(
                "the bearer token is not an mcp-fleet token (mcpf_…) and no OIDC issuer is \
                 configured"
                    .into(),
            )),
        }
    }

    /// Authenticates a request that needs credentials when `needed`.
    async fn authenticate(
        &self,
        headers: &HeaderMap,
        extensions: &Extensions,
        needed: bool,
        method: &Method,
        path: &str,
    ) -> Result<Option<Principal>, ApiError> {
        match self.presented(headers, extensions).await? {
            Presented::Valid(p) => Ok(Some(p)),
            Presented::Nothing if needed => {
                tracing::warn!(%method, %path, "refused: no credentials");
                Err(ApiError::Unauthorized {
                    detail: "this registry needs a bearer token for this request: send \
                             `Authorization: Bearer <token>` (see `mcp-fleet token create`)"
                        .into(),
                    presented: false,
                })
            }
            Presented::Refused(reason) if needed => {
                // The reason never contains the token.
                tracing::warn!(%method, %path, %reason, "refused: bad credentials");
                Err(ApiError::Unauthorized {
                    detail: reason,
                    presented: true,
                })
            }
            Presented::Nothing | Presented::Refused(_) => Ok(None),
        }
    }
}

/// The caller of a write: authenticated when the registry needs it.
#[derive(Debug)]
pub struct Writer {
    principal: Option<Principal>,
    enforced: bool,
}

impl Writer {
    /// Checks that the caller may use `scope` on every one of `ids`; returns who they are
    /// (for `updatedBy`), `None` when writes are open and no credential came.
    pub fn allow(&self, scope: Scope, ids: &[&str]) -> Result<Option<String>, ApiError> {
        let Some(p) = &self.principal else {
            return Ok(None);
        };
        if !self.enforced {
            return Ok(Some(p.id.clone()));
        }
        if !p.has(scope) {
            tracing::warn!(principal = %p.id, %scope, "refused: missing scope");
            return Err(ApiError::Forbidden(format!(
                "{} lacks the {scope} scope this request needs",
                p.id
            )));
        }
        for id in ids {
            if !p.owns(id) {
                tracing::warn!(principal = %p.id, %id, "refused: id not owned");
                return Err(ApiError::Forbidden(format!(
                    "{} may not write {id:?}: it owns only ids matching {}",
                    p.id,
                    p.owned()
                )));
            }
        }
        Ok(Some(p.id.clone()))
    }

    /// [`Self::allow`] for a write to the stored entry `id` (delete, heartbeat, check): the
    /// caller must own its id and, when it exists, the service it is an instance of, as to
    /// register it. A concurrent replace could change the service between this read and the
    /// write, but only by a writer owning the id too.
    pub(crate) async fn allow_entry(
        &self,
        state: &AppState,
        scope: Scope,
        id: &ServerId,
    ) -> Result<Option<String>, ApiError> {
        let by = self.allow(scope, &[id.as_str()])?;
        if let Some(p) = self.principal.as_ref().filter(|_| self.enforced)
            && !p.scopes.contains(&Scope::Admin)
            && let Some(entry) = state.store().get(id).await?
            && !p.owns(entry.service.as_str())
        {
            let service = &entry.service;
            tracing::warn!(principal = %p.id, %id, %service, "refused: service not owned");
            return Err(ApiError::Forbidden(format!(
                "{} may not write {id:?}: it is an instance of service {service:?}, and {} owns \
                 only ids matching {}",
                p.id,
                p.id,
                p.owned()
            )));
        }
        Ok(by)
    }
}

impl FromRequestParts<AppState> for Writer {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let enforced = state.writes_need_auth().await?;
        let principal = state
            .authenticate(
                &parts.headers,
                &parts.extensions,
                enforced,
                &parts.method,
                parts.uri.path(),
            )
            .await?;
        Ok(Self {
            principal,
            enforced,
        })
    }
}

/// Paths that stay open with `--auth-reads` (the operational ones unless `--auth-ops`).
fn open_read(path: &str, ops: bool) -> bool {
    match path {
        "/" | "/openapi.json" => true,
        "/healthz" | "/readyz" | "/metrics" => !ops,
        _ => false,
    }
}

/// With `--auth-reads`, reads need a credential with `servers:read`; with `--auth-ops`,
/// `/healthz`, `/readyz` and `/metrics` need any valid credential.
pub(crate) async fn guard_reads(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    let auth = &state.config().auth;
    let read = matches!(*request.method(), Method::GET | Method::HEAD);
    let path = request.uri().path().to_owned();
    let ops_path = matches!(path.as_str(), "/healthz" | "/readyz" | "/metrics");
    let needed = read && ((auth.reads && !open_read(&path, auth.ops)) || (auth.ops && ops_path));
    if !needed {
        return next.run(request).await;
    }
    let principal = match state
        .authenticate(
            request.headers(),
            request.extensions(),
            true,
            request.method(),
            &path,
        )
        .await
    {
        Ok(p) => p,
        Err(e) => return e.into_response(),
    };
    if let Some(p) = &principal
        && !ops_path
        && !p.has(Scope::ServersRead)
    {
        return ApiError::Forbidden(format!("{} lacks the servers:read scope", p.id))
            .into_response();
    }
    next.run(request).await
}

/// The OIDC verifier built from [`AuthConfig::oidc`], shared by every request.
pub(crate) type SharedOidc = Arc<oidc::Verifier>;
