//! Sessions kept in their ids ([`session_id`](crate::session_id)) rather than in one process, so
//! any replica sharing the key answers any session: rmcp's session manager is given the sealed
//! id to use for a new session, and its session store "loads" a session by opening its id, so
//! rmcp replays the session's `initialize` on a replica that has not seen it. In front of rmcp,
//! [`admit`] refuses ids this gateway cannot have issued (malformed, altered, foreign, expired
//! or closed) with a `404` and a JSON-RPC body saying which, and mints each `initialize`'s id.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{Method, StatusCode};
use axum::middleware::Next;
use axum::response::Response;
use futures::Stream;
use rmcp::model::{ClientJsonRpcMessage, InitializeRequestParams, ProtocolVersion};
use rmcp::transport::streamable_http_server::session::EventStore;
use rmcp::transport::streamable_http_server::session::{
    RestoreOutcome, ServerSseMessage, SessionId, SessionManager, SessionState, SessionStore,
    SessionStoreError,
};
use serde::Deserialize;
use serde_json::Value;

use crate::fast_call::{Live, PROTOCOL_VERSION_HEADER, PROTOCOL_VERSION_META, SESSION_HEADER};
use crate::front::rpc_error;
use crate::gateway::Inner;
use crate::session_id::{Claims, Refused, Sealer};

tokio::task_local! {
    /// The id [`admit`] minted for the `initialize` request being handled.
    static MINTED: SessionId;
}

/// JSON-RPC error code of an unknown session, as the MCP SDKs answer it.
const SESSION_NOT_FOUND: i32 = -32001;
/// Closed sessions remembered at most (each until its id expires).
const MAX_CLOSED: usize = 100_000;

/// rmcp's session manager `M`, creating each session under the id [`admit`] minted for it.
pub(crate) struct IdSessions<M> {
    inner: M,
}

impl<M> IdSessions<M> {
    pub(crate) fn new(inner: M) -> Self {
        Self { inner }
    }
}

impl<M: SessionManager> SessionManager for IdSessions<M> {
    type Error = M::Error;
    type Transport = M::Transport;

    async fn create_session(&self) -> Result<(SessionId, Self::Transport), Self::Error> {
        if let Ok(id) = MINTED.try_with(Clone::clone)
            && let RestoreOutcome::Restored(transport) =
                self.inner.restore_session(id.clone()).await?
        {
            return Ok((id, transport));
        }
        // Not minted (an `initialize` admit could not read): rmcp refuses it anyway.
        self.inner.create_session().await
    }

    async fn initialize_session(
        &self,
        id: &SessionId,
        message: ClientJsonRpcMessage,
    ) -> Result<rmcp::model::ServerJsonRpcMessage, Self::Error> {
        self.inner.initialize_session(id, message).await
    }

    async fn has_session(&self, id: &SessionId) -> Result<bool, Self::Error> {
        self.inner.has_session(id).await
    }

    async fn close_session(&self, id: &SessionId) -> Result<(), Self::Error> {
        self.inner.close_session(id).await
    }

    async fn create_stream(
        &self,
        id: &SessionId,
        message: ClientJsonRpcMessage,
    ) -> Result<impl Stream<Item = ServerSseMessage> + Send + Sync + 'static, Self::Error> {
        self.inner.create_stream(id, message).await
    }

    async fn accept_message(
        &self,
        id: &SessionId,
        message: ClientJsonRpcMessage,
    ) -> Result<(), Self::Error> {
        self.inner.accept_message(id, message).await
    }

    async fn create_standalone_stream(
        &self,
        id: &SessionId,
    ) -> Result<impl Stream<Item = ServerSseMessage> + Send + Sync + 'static, Self::Error> {
        self.inner.create_standalone_stream(id).await
    }

    async fn resume(
        &self,
        id: &SessionId,
        last_event_id: String,
    ) -> Result<impl Stream<Item = ServerSseMessage> + Send + Sync + 'static, Self::Error> {
        self.inner.resume(id, last_event_id).await
    }

    async fn restore_session(
        &self,
        id: SessionId,
    ) -> Result<RestoreOutcome<Self::Transport>, Self::Error> {
        self.inner.restore_session(id).await
    }

    fn event_store(&self) -> Option<Arc<dyn EventStore>> {
        self.inner.event_store()
    }
}

/// The sealer of this gateway's ids and the ids closed here (`DELETE`), which stay refused on
/// this replica until they expire.
pub(crate) struct SessionIds {
    pub(crate) sealer: Sealer,
    closed: Mutex<HashMap<Arc<str>, u64>>,
}

impl SessionIds {
    pub(crate) fn new(sealer: Sealer) -> Self {
        Self {
            sealer,
            closed: Mutex::new(HashMap::new()),
        }
    }

    /// The claims of `id` if it is a live session of this gateway.
    pub(crate) fn open(&self, id: &str) -> Result<Claims, Refused> {
        let claims = self.sealer.open(id)?;
        if self
            .closed
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .contains_key(id)
        {
            return Err(Refused::Closed);
        }
        Ok(claims)
    }

    fn close(&self, id: &str) {
        let Ok(claims) = self.sealer.open(id) else {
            return;
        };
        let expiry = self.sealer.expiry(claims.issued);
        let now = crate::session_id::now_secs();
        let mut closed = self.closed.lock().unwrap_or_else(|e| e.into_inner());
        if closed.len() >= MAX_CLOSED {
            closed.retain(|_, expires| *expires > now);
        }
        if closed.len() >= MAX_CLOSED {
            // Still full of live closed sessions: forget one rather than grow.
            if let Some(any) = closed.keys().next().cloned() {
                closed.remove(&any);
            }
        }
        closed.insert(Arc::from(id), expiry);
    }
}

/// rmcp's session store: a session's state is in its id.
pub(crate) struct IdStore(pub(crate) Arc<Inner>);

#[async_trait::async_trait]
impl SessionStore for IdStore {
    async fn load(&self, session_id: &str) -> Result<Option<SessionState>, SessionStoreError> {
        Ok(self
            .0
            .session_ids
            .open(session_id)
            .ok()
            .map(|claims| SessionState::new(claims.initialize_params())))
    }

    async fn store(
        &self,
        _session_id: &str,
        _state: &SessionState,
    ) -> Result<(), SessionStoreError> {
        Ok(())
    }

    async fn delete(&self, session_id: &str) -> Result<(), SessionStoreError> {
        self.0.session_ids.close(session_id);
        Ok(())
    }
}

/// An `initialize` request, as far as minting its session id needs.
#[derive(Deserialize)]
struct Initialize {
    method: String,
    params: InitializeRequestParams,
}

/// The middleware in front of rmcp (and of the fast path): see the module doc.
pub(crate) async fn admit(
    State(inner): State<Arc<Inner>>,
    mut request: Request,
    next: Next,
) -> Response {
    let Some(id) = request.headers().get(SESSION_HEADER) else {
        if request.method() != Method::POST {
            return next.run(request).await;
        }
        return mint(&inner, request, next).await;
    };
    let Ok(id) = id.to_str() else {
        return refusal(&Refused::Malformed);
    };
    if let Some(sticky) = inner.sessions.get(id) {
        // The fast path needs not look it up again.
        request.extensions_mut().insert(Live(sticky));
        return next.run(request).await;
    }
    let id: Arc<str> = Arc::from(id);
    let (request, stateless) = is_stateless(request).await;
    if stateless {
        // 2026-07-28 and later have no sessions: the header is ignored.
        return next.run(request).await;
    }
    match inner.session_ids.open(&id) {
        Ok(_) => next.run(request).await,
        Err(refused) => refusal(&refused),
    }
}

/// Runs an `initialize` request with its session id minted (see [`IdSessions`]).
async fn mint(inner: &Inner, request: Request, next: Next) -> Response {
    let (parts, body) = request.into_parts();
    // `front` has read the body already, within its limits.
    let Ok(bytes) = axum::body::to_bytes(body, usize::MAX).await else {
        return next.run(Request::from_parts(parts, Body::empty())).await;
    };
    let initialize = memchr_initialize(&bytes)
        .then(|| serde_json::from_slice::<Initialize>(&bytes).ok())
        .flatten()
        .filter(|i| i.method == "initialize");
    let request = Request::from_parts(parts, Body::from(bytes));
    let Some(initialize) = initialize else {
        return next.run(request).await;
    };
    let seed = fastrand::u64(..);
    let claims = Claims::new(&initialize.params, seed, inner.pins_for_new_session(seed));
    let id: SessionId = Arc::from(inner.session_ids.sealer.seal(&claims));
    MINTED.scope(id, next.run(request)).await
}

/// Whether `body` may be an `initialize` request at all (most are not: skip parsing them).
fn memchr_initialize(body: &[u8]) -> bool {
    const NEEDLE: &[u8] = b"\"initialize\"";
    body.windows(NEEDLE.len()).any(|w| w == NEEDLE)
}

/// Whether rmcp serves `request` without a session: its `MCP-Protocol-Version` header or its
/// body's `_meta` names a revision without `initialize` (2026-07-28 and later).
async fn is_stateless(request: Request) -> (Request, bool) {
    let header = request
        .headers()
        .get(PROTOCOL_VERSION_HEADER)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    if request.method() != Method::POST {
        let stateless = header.as_deref().is_some_and(sessionless);
        return (request, stateless);
    }
    let (parts, body) = request.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, usize::MAX).await else {
        return (Request::from_parts(parts, Body::empty()), false);
    };
    let from_body = serde_json::from_slice::<Value>(&bytes).ok().and_then(|m| {
        m.get("params")?
            .get("_meta")?
            .get(PROTOCOL_VERSION_META)?
            .as_str()
            .map(str::to_owned)
    });
    let stateless = from_body.or(header).as_deref().is_some_and(sessionless);
    (Request::from_parts(parts, Body::from(bytes)), stateless)
}

/// Whether protocol version `version` has no sessions.
fn sessionless(version: &str) -> bool {
    ProtocolVersion::KNOWN_VERSIONS
        .iter()
        .any(|v| v.as_str() == version && !v.has_initialize())
}

/// The answer to a refused session id: `404`, as the MCP transport answers a session that is
/// gone, malformed ids included, since that is the answer clients recover from by initializing
/// a new session (the message says which it was).
fn refusal(refused: &Refused) -> Response {
    rpc_error(
        StatusCode::NOT_FOUND,
        Value::Null,
        SESSION_NOT_FOUND,
        refused.to_string(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_2026_and_later_are_sessionless() {
        assert!(sessionless("2026-07-28"));
        for v in ["2025-11-25", "2025-06-18", "2025-03-26", "1999-01-01", ""] {
            assert!(!sessionless(v), "{v}");
        }
    }

    #[test]
    fn initialize_requests_are_spotted_before_parsing() {
        assert!(memchr_initialize(
            br#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{}}"#
        ));
        assert!(!memchr_initialize(
            br#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#
        ));
    }
}
