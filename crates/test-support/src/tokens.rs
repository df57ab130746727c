//! A minimal OAuth 2.0 token endpoint (client-credentials grant, HTTP Basic client auth) whose
//! tokens a test's MCP server accepts, and which tests can revoke; and a layer that makes any
//! router (a sample server's) require one of the accepted bearer tokens.

use std::collections::HashSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde_json::json;
use tokio_util::sync::CancellationToken;

/// The bearer tokens a server accepts now, shared with whoever issues or revokes them.
pub type Accepted = Arc<RwLock<HashSet<String>>>;

/// The tokens in `tokens`, for a server to accept.
pub fn accepting(tokens: &[&str]) -> Accepted {
    Arc::new(RwLock::new(
        tokens.iter().map(|t| (*t).to_owned()).collect(),
    ))
}

/// Whether `headers` carry `Authorization: Bearer <one of accepted>`.
pub fn bearer_accepted(headers: &HeaderMap, accepted: &Accepted) -> bool {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .is_some_and(|token| accepted.read().expect("accepted lock").contains(token))
}

/// `app`, answering `401` to every request without an accepted bearer token.
pub fn require_bearer(app: Router, accepted: Accepted) -> Router {
    app.layer(axum::middleware::from_fn(
        move |req: Request, next: Next| {
            let accepted = accepted.clone();
            async move {
                if bearer_accepted(req.headers(), &accepted) {
                    next.run(req).await
                } else {
                    (
                        StatusCode::UNAUTHORIZED,
                        [(header::WWW_AUTHENTICATE, "Bearer")],
                    )
                        .into_response()
                }
            }
        },
    ))
}

struct Issuer {
    client_id: String,
    client_secret: String,
    expires_in: u64,
    issued: AtomicUsize,
    accepted: Accepted,
}

/// A running token endpoint; stops when dropped.
pub struct TokenEndpoint {
    /// `http://127.0.0.1:PORT/token`.
    pub url: String,
    issuer: Arc<Issuer>,
    stop: CancellationToken,
}

impl Drop for TokenEndpoint {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

impl TokenEndpoint {
    /// Issues tokens valid for `expires_in` seconds to `client_id`/`client_secret`.
    pub async fn start(client_id: &str, client_secret: &str, expires_in: u64) -> Self {
        let issuer = Arc::new(Issuer {
            client_id: client_id.to_owned(),
            client_secret: client_secret.to_owned(),
            expires_in,
            issued: AtomicUsize::new(0),
            accepted: Arc::new(RwLock::new(HashSet::new())),
        });
        let app = Router::new()
            .route("/token", post(issue))
            .with_state(issuer.clone());
        let stop = CancellationToken::new();
        let url = format!("{}/token", crate::serve(app, stop.clone()).await);
        Self { url, issuer, stop }
    }

    /// The tokens currently valid, for a server to accept.
    pub fn accepted(&self) -> Accepted {
        self.issuer.accepted.clone()
    }

    /// How many tokens have been issued.
    pub fn issued(&self) -> usize {
        self.issuer.issued.load(Ordering::SeqCst)
    }

    /// Invalidates every token issued so far.
    pub fn revoke_all(&self) {
        self.issuer.accepted.write().expect("accepted lock").clear();
    }
}

fn basic_credentials(headers: &HeaderMap) -> Option<(String, String)> {
    use base64::Engine as _;
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let encoded = value.strip_prefix("Basic ")?;
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded)
        .ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (id, secret) = text.split_once(':')?;
    let decode = |s: &str| {
        form_urlencoded::parse(format!("x={s}").as_bytes())
            .next()
            .map(|(_, v)| v.into_owned())
    };
    Some((decode(id)?, decode(secret)?))
}

async fn issue(State(issuer): State<Arc<Issuer>>, headers: HeaderMap, body: String) -> Response {
    let grant_ok = form_urlencoded::parse(body.as_bytes())
        .any(|(k, v)| k == "grant_type" && v == "client_credentials");
    if !grant_ok {
        return (
            StatusCode::BAD_REQUEST,
            axum::Json(json!({"error": "unsupported_grant_type"})),
        )
            .into_response();
    }
    match basic_credentials(&headers) {
        Some((id, secret)) if id == issuer.client_id && secret == issuer.client_secret => {
            let n = issuer.issued.fetch_add(1, Ordering::SeqCst);
            let token = format!("token-{n}");
            issuer
                .accepted
                .write()
                .expect("accepted lock")
                .insert(token.clone());
            axum::Json(json!({
                "access_token": token,
                "token_type": "Bearer",
                "expires_in": issuer.expires_in,
            }))
            .into_response()
        }
        _ => (
            StatusCode::UNAUTHORIZED,
            [(header::WWW_AUTHENTICATE, "Basic realm=\"token\"")],
            axum::Json(json!({
                "error": "invalid_client",
                "error_description": "client authentication failed",
            })),
        )
            .into_response(),
    }
}
