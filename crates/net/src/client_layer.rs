//! A layer over rmcp's MCP client transport (its `StreamableHttpClient` over reqwest): what the
//! discovery library's authed client and the registry's deadline-bound probe client write are
//! the three requests of the transport, each with all its limits ([`ClientLayer`]);
//! [`Layered`] makes that an rmcp client, whose older methods (without the limits, or with only
//! the event size) all end there.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;

use reqwest::header::{HeaderName, HeaderValue};
use rmcp::model::ClientJsonRpcMessage;
use rmcp::transport::common::client_side_sse::BoxedSseResponse;
use rmcp::transport::streamable_http_client::{
    StreamableHttpClient, StreamableHttpError, StreamableHttpPostResponse,
    StreamableHttpResponseLimits,
};

/// What the reqwest-backed transport fails with.
pub type HttpError = StreamableHttpError<reqwest::Error>;

/// A JSON-RPC message to POST, its answer read within `limits`.
#[derive(Clone)]
pub struct Post {
    /// The MCP endpoint.
    pub uri: Arc<str>,
    /// The message.
    pub message: ClientJsonRpcMessage,
    /// The session, once the server gave one.
    pub session_id: Option<Arc<str>>,
    /// The bearer token to send.
    pub auth_header: Option<String>,
    /// Other headers (`mcp-protocol-version`).
    pub custom_headers: HashMap<HeaderName, HeaderValue>,
    /// How much of the answer is read.
    pub limits: StreamableHttpResponseLimits,
}

impl Post {
    /// `message` to `uri` in the session, with rmcp's default limits and no token.
    pub fn new(
        uri: Arc<str>,
        message: ClientJsonRpcMessage,
        session_id: Option<Arc<str>>,
        custom_headers: HashMap<HeaderName, HeaderValue>,
    ) -> Self {
        Self {
            uri,
            message,
            session_id,
            auth_header: None,
            custom_headers,
            limits: StreamableHttpResponseLimits::default(),
        }
    }

    /// Sends it with rmcp's reqwest client.
    pub fn send(
        self,
        http: &reqwest::Client,
    ) -> impl Future<Output = Result<StreamableHttpPostResponse, HttpError>> + Send + '_ {
        http.post_message_with_response_limits(
            self.uri,
            self.message,
            self.session_id,
            self.auth_header,
            self.custom_headers,
            self.limits,
        )
    }
}

/// The end of a session (`DELETE`).
#[derive(Clone)]
pub struct Delete {
    /// The MCP endpoint.
    pub uri: Arc<str>,
    /// The session.
    pub session_id: Arc<str>,
    /// The bearer token to send.
    pub auth_header: Option<String>,
    /// Other headers (`mcp-protocol-version`).
    pub custom_headers: HashMap<HeaderName, HeaderValue>,
}

impl Delete {
    /// Sends it with rmcp's reqwest client.
    pub fn send(
        self,
        http: &reqwest::Client,
    ) -> impl Future<Output = Result<(), HttpError>> + Send + '_ {
        http.delete_session(
            self.uri,
            self.session_id,
            self.auth_header,
            self.custom_headers,
        )
    }
}

/// The opening of a session's event stream (`GET`), no event over `max_sse_event_size` bytes.
#[derive(Clone)]
pub struct Get {
    /// The MCP endpoint.
    pub uri: Arc<str>,
    /// The session, once the server gave one.
    pub session_id: Option<Arc<str>>,
    /// Where a resumed stream starts.
    pub last_event_id: Option<String>,
    /// The bearer token to send.
    pub auth_header: Option<String>,
    /// Other headers (`mcp-protocol-version`).
    pub custom_headers: HashMap<HeaderName, HeaderValue>,
    /// The largest event read.
    pub max_sse_event_size: usize,
}

impl Get {
    /// Sends it with rmcp's reqwest client.
    pub fn send(
        self,
        http: &reqwest::Client,
    ) -> impl Future<Output = Result<BoxedSseResponse, HttpError>> + Send + '_ {
        http.get_stream_with_max_sse_event_size(
            self.uri,
            self.session_id,
            self.last_event_id,
            self.auth_header,
            self.custom_headers,
            self.max_sse_event_size,
        )
    }
}

/// The three requests of rmcp's Streamable HTTP client transport, as a layer over reqwest's
/// client sends them.
pub trait ClientLayer: Clone + Send + Sync + 'static {
    /// POSTs a message.
    fn post(
        &self,
        request: Post,
    ) -> impl Future<Output = Result<StreamableHttpPostResponse, HttpError>> + Send + '_;

    /// Ends the session.
    fn delete(&self, request: Delete) -> impl Future<Output = Result<(), HttpError>> + Send + '_;

    /// Opens the session's event stream.
    fn get_stream(
        &self,
        request: Get,
    ) -> impl Future<Output = Result<BoxedSseResponse, HttpError>> + Send + '_;
}

/// A [`ClientLayer`] as rmcp's client transport takes it.
#[derive(Clone)]
pub struct Layered<L>(pub L);

impl<L: ClientLayer> StreamableHttpClient for Layered<L> {
    type Error = reqwest::Error;

    async fn post_message(
        &self,
        uri: Arc<str>,
        message: ClientJsonRpcMessage,
        session_id: Option<Arc<str>>,
        auth_header: Option<String>,
        custom_headers: HashMap<HeaderName, HeaderValue>,
    ) -> Result<StreamableHttpPostResponse, HttpError> {
        let post = Post {
            auth_header,
            ..Post::new(uri, message, session_id, custom_headers)
        };
        self.0.post(post).await
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
        let mut post = Post {
            auth_header,
            ..Post::new(uri, message, session_id, custom_headers)
        };
        post.limits.max_sse_event_size = max_sse_event_size;
        self.0.post(post).await
    }

    async fn post_message_with_response_limits(
        &self,
        uri: Arc<str>,
        message: ClientJsonRpcMessage,
        session_id: Option<Arc<str>>,
        auth_header: Option<String>,
        custom_headers: HashMap<HeaderName, HeaderValue>,
        limits: StreamableHttpResponseLimits,
    ) -> Result<StreamableHttpPostResponse, HttpError> {
        let post = Post {
            auth_header,
            limits,
            ..Post::new(uri, message, session_id, custom_headers)
        };
        self.0.post(post).await
    }

    async fn delete_session(
        &self,
        uri: Arc<str>,
        session_id: Arc<str>,
        auth_header: Option<String>,
        custom_headers: HashMap<HeaderName, HeaderValue>,
    ) -> Result<(), HttpError> {
        let delete = Delete {
            uri,
            session_id,
            auth_header,
            custom_headers,
        };
        self.0.delete(delete).await
    }

    async fn get_stream(
        &self,
        uri: Arc<str>,
        session_id: Option<Arc<str>>,
        last_event_id: Option<String>,
        auth_header: Option<String>,
        custom_headers: HashMap<HeaderName, HeaderValue>,
    ) -> Result<BoxedSseResponse, HttpError> {
        let max_sse_event_size = StreamableHttpResponseLimits::default().max_sse_event_size;
        self.get_stream_with_max_sse_event_size(
            uri,
            session_id,
            last_event_id,
            auth_header,
            custom_headers,
            max_sse_event_size,
        )
        .await
    }

    async fn get_stream_with_max_sse_event_size(
        &self,
        uri: Arc<str>,
        session_id: Option<Arc<str>>,
        last_event_id: Option<String>,
        auth_header: Option<String>,
        custom_headers: HashMap<HeaderName, HeaderValue>,
        max_sse_event_size: usize,
    ) -> Result<BoxedSseResponse, HttpError> {
        let get = Get {
            uri,
            session_id,
            last_event_id,
            auth_header,
            custom_headers,
            max_sse_event_size,
        };
        self.0.get_stream(get).await
    }
}
