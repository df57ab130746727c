//! `token create|ls|revoke` on the database of a running `serve`, and client commands with
//! `--token`: the first token closes writes, scopes and ids hold, revocation takes effect.

use crate::common::{run, serve};

fn entry_file(dir: &tempfile::TempDir, id: &str) -> String {
    let file = dir.path().join(format!("{id}.json"));
    let entry = serde_json::json!({
        "id": id, "name": id, "url": "http://127.0.0.1:9", "version": "1.0.0",
    });
    std::fs::write(&file, entry.to_string()).expect("write");
    file.to_str().expect("utf-8 path").to_owned()
}

#[tokio::test]
async fn tokens_from_the_command_line() {
    let db = mcp_fleet_test_support::sqlite();
    let server = serve(&db.url).await;
    let reg = server.url.as_str();
    let dir = tempfile::tempdir().expect("tempdir");

    // Open before the first token.
    let (ok, _, err) = run(&[
        "register",
        "--registry",
        reg,
        "--file",
        &entry_file(&dir, "early"),
    ])
    .await;
    assert!(ok, "{err}");

    let (ok, out, err) = run(&[
        "token",
        "create",
        "--database-url",
        &db.url,
        "--scopes",
        "servers:write",
        "--ids",
        "payments-*",
        "--expires",
        "90d",
        "--description",
        "payments CI",
    ])
    .await;
    assert!(ok, "{err}");
    let token = out.trim().to_owned();
    assert!(token.starts_with("mcpf_tok_"), "{out}");
    assert!(
        err.contains("shown only now") && err.contains("payments-*"),
        "{err}"
    );

    // Writes now need it.
    let payments = entry_file(&dir, "payments-api");
    let (ok, _, err) = run(&["register", "--registry", reg, "--file", &payments]).await;
    assert!(!ok);
    assert!(err.contains("401") && err.contains("bearer token"), "{err}");
    let (ok, _, err) = run(&[
        "register",
        "--registry",
        reg,
        "--token",
        &token,
        "--file",
        &payments,
    ])
    .await;
    assert!(ok, "{err}");
    let (ok, _, err) = run(&[
        "register",
        "--registry",
        reg,
        "--token",
        &token,
        "--file",
        &entry_file(&dir, "catalog"),
    ])
    .await;
    assert!(!ok);
    assert!(err.contains("403") && err.contains("payments-*"), "{err}");

    // Listed, without its secret.
    let (ok, out, err) = run(&["token", "ls", "--database-url", &db.url, "--json"]).await;
    assert!(ok, "{err}");
    let list: serde_json::Value = serde_json::from_str(&out).expect("JSON");
    let id = list[0]["id"].as_str().expect("id").to_owned();
    assert_eq!(list[0]["state"], "active");
    assert_eq!(list[0]["ids"], serde_json::json!(["payments-*"]));
    let secret = token.split_once('.').expect("dot").1;
    assert!(!out.contains(secret));
    let (ok, table, _) = run(&["token", "ls", "--database-url", &db.url]).await;
    assert!(
        ok && table.contains(&id) && table.contains("payments CI"),
        "{table}"
    );

    // Revoked: refused at once.
    let (ok, _, err) = run(&["token", "revoke", "--database-url", &db.url, &id]).await;
    assert!(ok, "{err}");
    let (ok, _, err) = run(&["rm", "--registry", reg, "--token", &token, "payments-api"]).await;
    assert!(!ok);
    assert!(err.contains("revoked"), "{err}");
    let (ok, _, err) = run(&["token", "revoke", "--database-url", &db.url, "tok_nope"]).await;
    assert!(!ok);
    assert!(err.contains("no token \"tok_nope\""), "{err}");

    // Bad flags are one clear line.
    let (ok, _, err) = run(&[
        "token",
        "create",
        "--database-url",
        &db.url,
        "--scopes",
        "servers:delete",
        "--ids",
        "*",
    ])
    .await;
    assert!(!ok);
    assert!(
        err.contains("--scopes: unknown scope \"servers:delete\""),
        "{err}"
    );
    server.terminate().await;
}

/// `token ls` (and every command that opens the database itself) in a directory without the
/// registry's database refuses, naming the path it looked at, and creates nothing; `token create
/// --create-database` makes it (to issue the first token before `serve` first starts).
#[tokio::test]
async fn a_missing_sqlite_file_is_refused_not_created() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("registry.db");
    let url = format!("sqlite://{}", file.display());
    for args in [
        vec!["token", "ls", "--database-url", &url],
        vec!["token", "revoke", "--database-url", &url, "tok_nope"],
        vec![
            "token",
            "create",
            "--database-url",
            &url,
            "--scopes",
            "admin",
            "--ids",
            "*",
        ],
        vec!["health-worker", "--database-url", &url],
    ] {
        let (ok, _, err) = run(&args).await;
        assert!(!ok, "{args:?} succeeded");
        assert!(
            err.contains(&format!("no database at {}", file.display())),
            "{args:?}: {err}"
        );
        assert!(!file.exists(), "{args:?} created {}", file.display());
    }

    let (ok, out, err) = run(&[
        "token",
        "create",
        "--database-url",
        &url,
        "--scopes",
        "admin",
        "--ids",
        "*",
        "--create-database",
    ])
    .await;
    assert!(ok, "{err}");
    assert!(out.trim().starts_with("mcpf_tok_"), "{out}");
    assert!(file.exists());
    let (ok, out, err) = run(&["token", "ls", "--database-url", &url, "--json"]).await;
    assert!(ok, "{err}");
    assert!(out.contains("\"admin\""), "{out}");
}
