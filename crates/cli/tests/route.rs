//! `route set|get|rollback|rm` and `export istio` against a real registry process.

use crate::common::{run, serve};

#[tokio::test]
async fn route_commands_round_trip() {
    let db = mcp_fleet_test_support::sqlite();
    let server = serve(&db.url).await;
    let reg = server.url.as_str();
    // Unchecked (healthCheck none): the rollbacks below turn on versions rolled back, not on
    // the health worker finding 127.0.0.1:9 down.
    for (id, version) in [("catalog-a", "2.0.0"), ("catalog-b", "2.1.0")] {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("entry.json");
        let entry = serde_json::json!({
            "id": id, "service": "catalog", "name": "Catalog",
            "url": "http://127.0.0.1:9", "version": version, "healthCheck": {"mode": "none"},
        });
        std::fs::write(&file, entry.to_string()).expect("write");
        let file = file.to_str().expect("utf-8 path");
        let (ok, _, err) = run(&["register", "--registry", reg, "--file", file]).await;
        assert!(ok, "{err}");
    }

    let (ok, _, err) = run(&["route", "get", "--registry", reg, "catalog"]).await;
    assert!(!ok);
    assert!(
        err.contains("service \"catalog\" has no routing policy"),
        "{err}"
    );

    let (ok, out, err) = run(&[
        "route",
        "set",
        "--registry",
        reg,
        "catalog",
        "2.0.0=90",
        "2.1.0=10",
        "--window",
        "5m",
    ])
    .await;
    assert!(ok, "{err}");
    assert_eq!(out.trim(), "routing catalog: 2.0.0=90 2.1.0=10");

    let (ok, out, err) = run(&["route", "get", "--registry", reg, "catalog", "--json"]).await;
    assert!(ok, "{err}");
    let doc: serde_json::Value = serde_json::from_str(&out).expect("route get --json is JSON");
    assert_eq!(
        doc["weights"],
        serde_json::json!({"2.0.0": 90, "2.1.0": 10})
    );
    // Flags not given take their defaults once any rollback flag is.
    assert_eq!(
        doc["rollback"],
        serde_json::json!({"maxErrorRateDelta": 0.05, "window": "300s", "minRequests": 50})
    );

    let (ok, out, err) = run(&[
        "route",
        "rollback",
        "--registry",
        reg,
        "catalog",
        "2.1.0",
        "--reason",
        "too many errors",
    ])
    .await;
    assert!(ok, "{err}");
    assert_eq!(out.trim(), "routing catalog: 2.0.0=100 2.1.0=0");
    let (ok, out, _) = run(&["route", "get", "--registry", reg, "catalog"]).await;
    assert!(ok);
    assert!(out.starts_with("service catalog (updated "), "{out}");
    assert!(out.contains("over 300s (at least 50 calls)"), "{out}");
    assert!(
        out.contains("rolled back 2.1.0 at ")
            && out.contains("too many errors (weights before: 2.0.0=90 2.1.0=10)"),
        "{out}"
    );

    let (ok, out, err) = run(&["export", "istio", "--registry", reg, "catalog"]).await;
    assert!(ok, "{err}");
    assert!(out.contains("kind: VirtualService") && out.contains("kind: DestinationRule"));
    assert!(
        out.contains("subset: v2-0-0") && out.contains("weight: 100"),
        "{out}"
    );
    assert!(out.contains("\n---\n"), "{out}");
    // It is YAML a mesh takes: two documents, the weights after the rollback, one subset per
    // version.
    let docs: Vec<serde_json::Value> = serde_yaml_ng::Deserializer::from_str(&out)
        .map(|d| serde::Deserialize::deserialize(d).expect("a YAML document"))
        .collect();
    assert_eq!(docs.len(), 2, "{out}");
    assert_eq!(docs[0]["kind"], "VirtualService");
    let weights: Vec<(String, u64)> = docs[0]["spec"]["http"][0]["route"]
        .as_array()
        .expect("routes")
        .iter()
        .map(|r| {
            (
                r["destination"]["subset"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
                r["weight"].as_u64().unwrap_or(999),
            )
        })
        .collect();
    assert_eq!(
        weights,
        [("v2-0-0".to_owned(), 100), ("v2-1-0".to_owned(), 0)]
    );
    assert_eq!(docs[1]["kind"], "DestinationRule");
    let subsets: Vec<&str> = docs[1]["spec"]["subsets"]
        .as_array()
        .expect("subsets")
        .iter()
        .filter_map(|s| s["name"].as_str())
        .collect();
    assert_eq!(subsets, ["v2-0-0", "v2-1-0"]);

    // Rolling back the stable version now would send everything to the canary rolled back
    // above: refused, naming it, unless --force.
    let stable_back = ["route", "rollback", "--registry", reg, "catalog", "2.0.0"];
    let (ok, _, err) = run(&stable_back).await;
    assert!(!ok);
    assert!(
        err.contains("registry answered 409")
            && err.contains("2.1.0 was itself rolled back")
            && err.contains("--force"),
        "{err}"
    );
    let (ok, out, err) = run(&[&stable_back[..], &["--force"]].concat()).await;
    assert!(ok, "{err}");
    assert_eq!(out.trim(), "routing catalog: 2.0.0=0 2.1.0=100");

    // A bad VERSION=WEIGHT is one line naming it, before any request.
    for (arg, want) in [
        ("2.0.0", "error: \"2.0.0\" is not VERSION=WEIGHT"),
        (
            "2.0.0=lots",
            "error: \"2.0.0=lots\": the weight must be an integer from 0 to 100",
        ),
        (
            "v2=100",
            "error: \"v2=100\": the version must be a semantic version",
        ),
    ] {
        let (ok, _, err) = run(&["route", "set", "--registry", reg, "catalog", arg]).await;
        assert!(!ok);
        assert!(err.starts_with(want), "{arg}: {err}");
        assert_eq!(err.trim_end().lines().count(), 1, "{arg}: {err}");
    }
    // The registry's own checks come back naming the field.
    let (ok, _, err) = run(&["route", "set", "--registry", reg, "catalog", "2.0.0=50"]).await;
    assert!(!ok);
    assert!(
        err.contains("registry answered 400") && err.contains("weights:"),
        "{err}"
    );

    let (ok, out, _) = run(&["route", "rm", "--registry", reg, "catalog"]).await;
    assert!(ok);
    assert_eq!(out.trim(), "deleted the routing policy of catalog");
    let (ok, _, err) = run(&["route", "rm", "--registry", reg, "catalog"]).await;
    assert!(!ok);
    assert!(err.contains("has no routing policy"), "{err}");
    let (ok, _, err) = run(&["export", "istio", "--registry", reg, "catalog"]).await;
    assert!(!ok);
    assert!(err.contains("registry answered 404"), "{err}");

    server.terminate().await;
}
