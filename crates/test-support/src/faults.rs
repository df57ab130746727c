//! Servers for the cases a test controls: a healthy `/health`, a refused port and black holes
//! that accept connections and never answer.

use std::sync::{Arc, Mutex};
use std::time::Instant;

use serde_json::json;
use tokio_util::sync::CancellationToken;

/// A plain HTTP server on 127.0.0.1:0 answering `200 {"status":"ok"}` on `/health`, until
/// `shutdown`; returns its base URL.
pub async fn live_server(shutdown: CancellationToken) -> String {
    let app = axum::Router::new().route(
        "/health",
        axum::routing::get(|| async { axum::Json(json!({"status": "ok"})) }),
    );
    crate::serve(app, shutdown).await
}

/// The base URL of a loopback port nothing listens on (bound, then released): connections to
/// it are refused.
pub fn refused_url() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    format!("http://{}", listener.local_addr().expect("addr"))
}

/// A black hole on 127.0.0.1:0: accepts connections and holds them without ever answering,
/// until `shutdown`; returns its base URL.
pub async fn black_hole(shutdown: CancellationToken) -> String {
    timed_black_hole(shutdown).await.0
}

/// [`black_hole`], also noting when it accepted each connection.
pub async fn timed_black_hole(shutdown: CancellationToken) -> (String, Arc<Mutex<Vec<Instant>>>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    let accepted = Arc::new(Mutex::new(Vec::new()));
    let times = accepted.clone();
    tokio::spawn(async move {
        let mut held = Vec::new();
        loop {
            tokio::select! {
                () = shutdown.cancelled() => break,
                accepted = listener.accept() => match accepted {
                    Ok((socket, _)) => {
                        times.lock().unwrap_or_else(|e| e.into_inner()).push(Instant::now());
                        held.push(socket);
                    }
                    Err(_) => break,
                },
            }
        }
    });
    (url, accepted)
}
