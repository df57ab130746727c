//! The accept loop of the registry and the gateway: their own rather than `axum::serve`, which
//! cannot set hyper's header limits (and rebuilds a router's state for every connection).

use std::fmt::Display;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hyper::server::conn::http1;
use hyper_util::rt::TokioTimer;
use hyper_util::server::graceful::{GracefulConnection, GracefulShutdown};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

/// An HTTP/1 connection builder that waits at most `header_read_timeout` for a request head
/// and accepts heads of at most `max_header_bytes`.
pub fn http1_builder(header_read_timeout: Duration, max_header_bytes: usize) -> http1::Builder {
    let mut http = http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(header_read_timeout)
        .max_header_size(max_header_bytes);
    http
}

/// At most `max` connections at once; a connection over it gets `answer` (if the socket takes
/// it at once) and is closed.
#[derive(Debug, Clone, Copy)]
pub struct ConnectionLimit {
    /// Most connections served at once.
    pub max: usize,
    /// The raw bytes written to a connection over the limit (a whole HTTP response).
    pub answer: &'static [u8],
}

/// Accepts connections on `listener` until `shutdown`, then waits for the connections in
/// flight to finish (each told to end gracefully) and returns.
///
/// Every accepted socket gets `TCP_NODELAY`, is counted against `limit`, and is handed with
/// its peer address to `connection`, which makes the hyper connection that serves it. `name`
/// starts the log lines ("" or, say, "gateway: ").
pub async fn accept_loop<C, F>(
    listener: TcpListener,
    limit: Option<ConnectionLimit>,
    name: &'static str,
    shutdown: &CancellationToken,
    mut connection: F,
) where
    F: FnMut(TcpStream, SocketAddr) -> C,
    C: GracefulConnection + Send + 'static,
    C::Error: Display + Send,
{
    let slots = limit.map(|limit| Arc::new(Semaphore::new(limit.max.min(Semaphore::MAX_PERMITS))));
    let graceful = GracefulShutdown::new();
    loop {
        let (stream, peer) = tokio::select! {
            () = shutdown.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) if is_connection_error(&e) => continue,
                Err(e) => {
                    // Out of file descriptors, most likely: give in-flight requests time to
                    // finish and free some (as `axum::serve` does).
                    tracing::error!(error = %e, "{name}accept failed");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    continue;
                }
            },
        };
        let slot = match (&slots, limit) {
            (Some(slots), Some(limit)) => match Arc::clone(slots).try_acquire_owned() {
                Ok(slot) => Some(slot),
                Err(_) => {
                    // At the cap: say so if the socket takes it at once, and close.
                    let _ = stream.try_write(limit.answer);
                    continue;
                }
            },
            _ => None,
        };
        // Answers go out as they are written: with Nagle's algorithm, a client that keeps its
        // connection open would wait for a delayed ACK (~40 ms) on every answer.
        let _ = stream.set_nodelay(true);
        let conn = graceful.watch(connection(stream, peer));
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(error = %e, "{name}connection ended with an error");
            }
            drop(slot);
        });
    }
    drop(listener);
    graceful.shutdown().await;
}

/// Errors of one connection, after which accepting the next one is right.
fn is_connection_error(e: &std::io::Error) -> bool {
    use std::io::ErrorKind;
    matches!(
        e.kind(),
        ErrorKind::ConnectionRefused | ErrorKind::ConnectionAborted | ErrorKind::ConnectionReset
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    const FULL: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\ncontent-length: 0\r\n\r\n";

    /// Writes one request on `stream` and reads until the answer's (empty or short) body ends.
    async fn ask(stream: &mut TcpStream) -> String {
        stream
            .write_all(b"GET / HTTP/1.1\r\nhost: test\r\n\r\n")
            .await
            .expect("write");
        let mut answer = Vec::new();
        let mut buf = [0u8; 1024];
        while !answer.ends_with(b"ok") {
            let n = stream.read(&mut buf).await.expect("read");
            assert!(n > 0, "closed after {:?}", String::from_utf8_lossy(&answer));
            answer.extend_from_slice(&buf[..n]);
        }
        String::from_utf8(answer).expect("UTF-8")
    }

    #[tokio::test]
    async fn connections_over_the_limit_get_the_answer_and_shutdown_waits_for_the_rest() {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let shutdown = CancellationToken::new();
        let http = http1_builder(Duration::from_secs(5), 16 * 1024);
        let limit = ConnectionLimit {
            max: 1,
            answer: FULL,
        };
        let stop = shutdown.clone();
        let server = tokio::spawn(async move {
            accept_loop(listener, Some(limit), "test: ", &stop, |stream, _| {
                assert!(stream.nodelay().expect("nodelay"), "TCP_NODELAY not set");
                let svc = hyper::service::service_fn(|_req| async {
                    Ok::<_, std::convert::Infallible>(hyper::Response::new("ok".to_owned()))
                });
                http.serve_connection(hyper_util::rt::TokioIo::new(stream), svc)
            })
            .await;
        });

        let mut first = TcpStream::connect(addr).await.expect("connect");
        assert!(ask(&mut first).await.starts_with("HTTP/1.1 200"));
        // The first connection is kept open: the second is over the limit.
        let mut second = TcpStream::connect(addr).await.expect("connect");
        let mut refused = Vec::new();
        second.read_to_end(&mut refused).await.expect("read");
        assert_eq!(refused, FULL);
        // The first one still works, and a slot frees once it closes.
        assert!(ask(&mut first).await.starts_with("HTTP/1.1 200"));
        drop(first);
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            let mut third = TcpStream::connect(addr).await.expect("connect");
            third
                .write_all(b"GET / HTTP/1.1\r\nhost: test\r\n\r\n")
                .await
                .expect("write");
            let mut head = [0u8; 12];
            let n = third.read(&mut head).await.expect("read");
            if head[..n].starts_with(b"HTTP/1.1 200") {
                break;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "the slot never freed"
            );
            tokio::task::yield_now().await;
        }

        // Shutdown ends the loop; an idle kept-alive connection does not hold it.
        let mut idle = TcpStream::connect(addr).await.expect("connect");
        shutdown.cancel();
        tokio::time::timeout(Duration::from_secs(10), server)
            .await
            .expect("the loop ends")
            .expect("no panic");
        let mut rest = Vec::new();
        let _ = idle.read_to_end(&mut rest).await;
    }
}
