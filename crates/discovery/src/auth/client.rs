//! [`AuthedClient`]: the MCP transport's HTTP client, with the connection's token on every
//! request and one retry with a fresh token after a `401`.

use std::future::Future;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use mcp_fleet_net::client_layer::{ClientLayer, Delete, Get, Post};
use rmcp::model::{ClientJsonRpcMessage, ClientRequest};
use rmcp::transport::common::client_side_sse::BoxedSseResponse;
use rmcp::transport::streamable_http_client::{StreamableHttpError, StreamableHttpPostResponse};

use super::*;
use crate::call_http::CallHttp;

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
    pub(super) kept: Option<CallHttp>,
}

pub(super) fn is_unauthorized(error: &HttpError) -> bool {
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

    /// Posts with the current token (after a `401`, once more with a fresh one).
    async fn post_with_token(
        &self,
        request: Post,
    ) -> Result<StreamableHttpPostResponse, HttpError> {
        // A `subscriptions/listen` answer streams for as long as the subscription lasts and ends
        // when the client hangs up: not for a kept connection, which reads a dropped stream on.
        let streams_on = matches!(
            &request.message,
            ClientJsonRpcMessage::Request(message)
                if matches!(message.request, ClientRequest::SubscriptionsListenRequest(_))
        );
        let kept = self
            .kept
            .as_ref()
            .filter(|_| !streams_on && request.uri.starts_with("http://"))
            .and_then(|calls| Some((calls, request.uri.parse::<hyper::Uri>().ok()?)));
        if let Some((calls, parsed)) = kept {
            let session_id = request.session_id.as_deref();
            return self
                .with_token(|token| {
                    crate::kept_post::post(
                        calls,
                        &parsed,
                        &request.message,
                        session_id,
                        token,
                        &request.custom_headers,
                        request.limits,
                    )
                })
                .await;
        }
        if self.tokens.is_none() {
            // Nothing to retry with: no copies of the message.
            let request = Post {
                auth_header: None,
                ..request
            };
            return self.bounded(request.send(&self.http)).await;
        }
        self.with_token(|token| {
            let request = Post {
                auth_header: token,
                ..request.clone()
            };
            request.send(&self.http)
        })
        .await
    }

    pub(super) async fn bounded<T>(
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
    pub(super) async fn with_token<T, F, Fut>(&self, call: F) -> Result<T, HttpError>
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
pub(super) fn auth_io_error(e: AuthError) -> HttpError {
    StreamableHttpError::Io(std::io::Error::new(std::io::ErrorKind::PermissionDenied, e))
}

impl ClientLayer for AuthedClient {
    async fn post(&self, request: Post) -> Result<StreamableHttpPostResponse, HttpError> {
        let posted = self.post_with_token(request).await;
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

    async fn delete(&self, request: Delete) -> Result<(), HttpError> {
        self.with_token(|token| {
            let request = Delete {
                auth_header: token,
                ..request.clone()
            };
            request.send(&self.http)
        })
        .await
    }

    async fn get_stream(&self, request: Get) -> Result<BoxedSseResponse, HttpError> {
        self.with_token(|token| {
            let request = Get {
                auth_header: token,
                ..request.clone()
            };
            request.send(&self.http)
        })
        .await
    }
}
