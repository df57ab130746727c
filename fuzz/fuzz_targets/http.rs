//! Fuzzes the registry's request parsing through its router (no socket): the first byte picks
//! `GET /servers?<rest>` (the list query parser), `POST /servers` or `PUT /servers/<id>` with
//! the rest as body, or `GET /servers/<rest>` (a path id); no input may get a 5xx.
#![no_main]

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use axum::body::Body;
use axum::http::Request;
use libfuzzer_sys::fuzz_target;
use mcp_fleet_registry::{AppState, Config};
use tower::ServiceExt;

struct Fixture {
    runtime: tokio::runtime::Runtime,
    router: axum::Router,
    _dir: tempfile::TempDir,
}

fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        let dir = tempfile::tempdir().expect("temp dir");
        let url = format!("sqlite://{}", dir.path().join("fuzz.db").display());
        let store = runtime
            .block_on(mcp_fleet_store::connect(&url))
            .expect("open store");
        let state = AppState::new(Arc::clone(&store), Config::default());
        Fixture {
            runtime,
            router: mcp_fleet_registry::router(state),
            _dir: dir,
        }
    })
}

/// Percent-encodes the bytes a request target may not hold as they are.
fn target_safe(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len());
    for &b in bytes {
        if b.is_ascii_graphic()
            && !matches!(
                b,
                b'#' | b'%' | b'"' | b'<' | b'>' | b'\\' | b'^' | b'`' | b'{' | b'|' | b'}'
            )
        {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let request = match mode % 4 {
        0 => Request::get(format!("/servers?{}", target_safe(rest))).body(Body::empty()),
        1 => Request::post("/servers")
            .header("content-type", "application/json")
            .body(Body::from(rest.to_vec())),
        2 => Request::put("/servers/fuzz")
            .header("content-type", "application/json")
            .body(Body::from(rest.to_vec())),
        _ => Request::get(format!("/servers/{}", target_safe(rest))).body(Body::empty()),
    };
    let Ok(request) = request else {
        return;
    };
    let f = fixture();
    // A valid `wait=` blocks until the registry changes; the parse is what is fuzzed.
    let answer = f.runtime.block_on(async {
        tokio::time::timeout(
            Duration::from_millis(200),
            f.router.clone().oneshot(request),
        )
        .await
    });
    if let Ok(Ok(res)) = answer {
        assert!(
            !res.status().is_server_error(),
            "{} for mode {mode}: {:?}",
            res.status(),
            String::from_utf8_lossy(rest)
        );
    }
});
