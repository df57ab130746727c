//! The HTTP client tool calls to `http://` servers go through: connections kept open between
//! calls, without the 40 ms stall that keeping them open usually costs here.
//!
//! An rmcp server answers a POST with an event stream written in several pieces (a priming
//! event, the answer, the end of the body). Most servers leave Nagle's algorithm on (axum's
//! default), so every piece after the first waits until the client acknowledges the one before;
//! on a reused connection Linux delays that acknowledgement by 40 ms (on a new one it does
//! not), which is why the library's other requests open a connection each. This client asks
//! for every acknowledgement to go out at once (`TCP_QUICKACK`, re-armed after each read, since
//! the kernel clears it), so a reused connection answers as fast as a new one without the cost
//! of setting one up per call. Elsewhere than Linux the option does not exist, and connections
//! are not kept (the stall would be there).
//!
//! `https://` servers keep going through the library's reqwest client.

use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use hyper::Uri;
use hyper_util::client::legacy::connect::{Connected, Connection};
use hyper_util::rt::{TokioExecutor, TokioIo};
use mcp_fleet_model::AddressPolicy;
use reqwest::header::{HeaderName, HeaderValue};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

use crate::guard;

/// The request body type of [`CallHttp`].
pub(crate) type Body = http_body_util::Full<bytes::Bytes>;

/// A pooled HTTP/1.1 client for `http://` MCP endpoints.
pub(crate) type CallHttp = hyper_util::client::legacy::Client<QuickAckConnector, Body>;

/// How long an idle connection is kept.
const IDLE: Duration = Duration::from_secs(60);

/// Longest the rest of an answered stream is read to keep its connection.
const DRAIN_LIMIT: Duration = Duration::from_secs(5);

/// Reads the rest of an answered stream (its end follows the answer at once), so that the
/// connection goes back to the pool: here when it has already arrived, else in the background
/// (for at most [`DRAIN_LIMIT`]). Outside a Tokio runtime the stream is dropped, and its
/// connection closed.
pub(crate) fn finish(mut body: hyper::body::Incoming) {
    use futures::FutureExt;
    use http_body_util::BodyExt;
    loop {
        match body.frame().now_or_never() {
            Some(Some(Ok(_))) => {}
            Some(None | Some(Err(_))) => return,
            None => break,
        }
    }
    let Ok(runtime) = tokio::runtime::Handle::try_current() else {
        return;
    };
    runtime.spawn(async move {
        let drain = async { while let Some(Ok(_)) = body.frame().await {} };
        let _ = tokio::time::timeout(DRAIN_LIMIT, drain).await;
    });
}

/// A JSON-RPC POST of `body` to an MCP endpoint: JSON or an event stream accepted, the
/// session's id and its other headers (`mcp-protocol-version`), and the bearer `token`.
pub(crate) fn post_request(
    uri: &Uri,
    body: bytes::Bytes,
    session_id: Option<&str>,
    headers: &HashMap<HeaderName, HeaderValue>,
    token: Option<&str>,
) -> Result<hyper::Request<Body>, hyper::http::Error> {
    let mut request = hyper::Request::post(uri.clone())
        .header(hyper::header::CONTENT_TYPE, "application/json")
        .header(hyper::header::ACCEPT, "application/json, text/event-stream");
    for (name, value) in headers {
        request = request.header(name.as_str(), value.as_bytes());
    }
    if let Some(id) = session_id {
        request = request.header(rmcp::transport::common::http_header::HEADER_SESSION_ID, id);
    }
    if let Some(token) = token {
        request = request.header(hyper::header::AUTHORIZATION, format!("Bearer {token}"));
    }
    request.body(Body::new(body))
}

/// Whether this platform can keep call connections open without stalling.
pub(crate) const KEEPS_CONNECTIONS: bool = cfg!(target_os = "linux");

/// The client; `connect_timeout` bounds each new connection, which goes only to addresses
/// `policy` allows.
pub(crate) fn client(connect_timeout: Duration, policy: Arc<AddressPolicy>) -> CallHttp {
    let idle = if KEEPS_CONNECTIONS { 64 } else { 0 };
    hyper_util::client::legacy::Client::builder(TokioExecutor::new())
        .pool_idle_timeout(IDLE)
        .pool_max_idle_per_host(idle)
        .build(QuickAckConnector {
            connect_timeout,
            policy,
        })
}

/// Opens TCP connections with `TCP_NODELAY`, whose reads re-arm `TCP_QUICKACK`, to the addresses
/// of the host that the address policy allows (literal IPs included).
#[derive(Clone, Debug)]
pub(crate) struct QuickAckConnector {
    connect_timeout: Duration,
    policy: Arc<AddressPolicy>,
}

impl tower::Service<Uri> for QuickAckConnector {
    type Response = TokioIo<QuickAckStream>;
    type Error = io::Error;
    type Future = Pin<Box<dyn Future<Output = io::Result<Self::Response>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        let limit = self.connect_timeout;
        let policy = self.policy.clone();
        Box::pin(async move {
            let host = uri
                .host()
                .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "no host in URL"))?
                .to_owned();
            let port = uri.port_u16().unwrap_or(80);
            let connect = async {
                let addrs = guard::resolve(&policy, &host, port)
                    .await
                    .map_err(io::Error::other)?;
                TcpStream::connect(addrs.as_slice()).await
            };
            let stream = tokio::time::timeout(limit, connect).await.map_err(|_| {
                io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!("no connection within {limit:?}"),
                )
            })??;
            stream.set_nodelay(true)?;
            Ok(TokioIo::new(QuickAckStream { inner: stream }))
        })
    }
}

/// A TCP stream that acknowledges what it receives at once.
#[derive(Debug)]
pub(crate) struct QuickAckStream {
    inner: TcpStream,
}

impl QuickAckStream {
    fn quick_ack(&self) {
        #[cfg(target_os = "linux")]
        {
            // Best effort: without it, the worst is the stall this module avoids.
            let _ = rustix::net::sockopt::set_tcp_quickack(&self.inner, true);
        }
    }
}

impl Connection for QuickAckStream {
    fn connected(&self) -> Connected {
        Connected::new()
    }
}

impl AsyncRead for QuickAckStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let polled = Pin::new(&mut this.inner).poll_read(cx, buf);
        if matches!(polled, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            this.quick_ack();
        }
        polled
    }
}

impl AsyncWrite for QuickAckStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

#[cfg(test)]
mod tests {
    use mcp_fleet_model::{PolicyMode, parse_cidr};
    use mcp_fleet_test_support::Trap;

    use super::*;

    /// The connector checks what it connects to, names and literal addresses alike: nothing in
    /// front of it has to have checked the URL.
    #[tokio::test]
    async fn the_connector_never_connects_to_a_denied_address() {
        let mut trap = Trap::start().await;
        let net = |s| parse_cidr(s).expect("test CIDR");
        let policy = AddressPolicy::new(
            PolicyMode::Default,
            vec![net("127.0.0.1/32"), net("::1/128")],
            Vec::new(),
        );
        let http = client(Duration::from_secs(5), Arc::new(policy));
        let port = trap.addr.port();
        for host in [
            "localhost",
            "127.0.0.1",
            "[::ffff:127.0.0.1]",
            "[::127.0.0.1]",
        ] {
            let uri: Uri = format!("http://{host}:{port}/mcp").parse().expect("URI");
            let request = hyper::Request::get(uri)
                .body(Body::default())
                .expect("request");
            // The trap never answers: a request it accepted would wait out the deadline.
            let error = tokio::time::timeout(Duration::from_secs(5), http.request(request))
                .await
                .expect("refused at once, not sent to the trap")
                .expect_err(host);
            let refused = guard::refused_by_policy(&error);
            assert!(refused.is_some(), "{host}: {error:?}");
        }
        trap.assert_untouched("the call connector").await;
    }
}
