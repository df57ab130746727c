//! The deployment files (`deploy/kubernetes/*.yaml`, `Dockerfile`) run the binary: every
//! subcommand, flag and `MCP_FLEET_*` variable they give it must be one it knows, and every
//! Secret key they read must be in the example Secret, so that they cannot drift from the code.
//! (`scripts/test` also validates the manifests against the Kubernetes schemas.)

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Stdio;

use serde::Deserialize;
use serde_json::Value;

use crate::common::{PROCESS_DEADLINE, binary};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Every document of every manifest, as JSON values, with the file it came from.
fn manifests() -> Vec<(String, Value)> {
    let dir = repo().join("deploy/kubernetes");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .expect("deploy/kubernetes exists")
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    let mut docs = Vec::new();
    for file in files {
        let text = std::fs::read_to_string(&file).expect("read manifest");
        let name = file
            .file_name()
            .expect("a file name")
            .to_string_lossy()
            .into_owned();
        for doc in serde_yaml_ng::Deserializer::from_str(&text) {
            let value = Value::deserialize(doc)
                .unwrap_or_else(|e| panic!("{name}: not YAML a manifest can hold: {e}"));
            if !value.is_null() {
                docs.push((name.clone(), value));
            }
        }
    }
    docs
}

/// A command line the deployment gives the binary, and the variables it sets.
#[derive(Debug)]
struct Invocation {
    origin: String,
    args: Vec<String>,
    env: Vec<String>,
}

fn invocations(docs: &[(String, Value)]) -> Vec<Invocation> {
    let mut found = Vec::new();
    for (file, doc) in docs {
        if doc["kind"] != "Deployment" {
            continue;
        }
        let containers = doc["spec"]["template"]["spec"]["containers"]
            .as_array()
            .unwrap_or_else(|| panic!("{file}: a Deployment without containers"));
        for container in containers {
            let strings = |v: &Value| -> Vec<String> {
                v.as_array()
                    .map(|a| {
                        a.iter()
                            .filter_map(|s| s.as_str().map(str::to_owned))
                            .collect()
                    })
                    .unwrap_or_default()
            };
            found.push(Invocation {
                origin: format!("{file}: container {}", container["name"]),
                args: strings(&container["args"]),
                env: container["env"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|e| e["name"].as_str().map(str::to_owned))
                    .collect(),
            });
        }
    }
    found
}

/// The Dockerfile's `CMD ["…", …]` and its `ENV NAME=…` lines.
fn dockerfile() -> Invocation {
    let text = std::fs::read_to_string(repo().join("Dockerfile")).expect("read Dockerfile");
    let cmd = text
        .lines()
        .find_map(|l| l.strip_prefix("CMD "))
        .expect("the Dockerfile has a CMD");
    Invocation {
        origin: "Dockerfile: CMD".into(),
        args: serde_json::from_str(cmd).expect("CMD is a JSON array"),
        env: text
            .lines()
            .filter_map(|l| l.strip_prefix("ENV "))
            .filter_map(|l| l.split('=').next().map(str::to_owned))
            .collect(),
    }
}

async fn help(words: &[&str]) -> String {
    let out = tokio::time::timeout(
        PROCESS_DEADLINE,
        binary()
            .arg("help")
            .args(words)
            .stdin(Stdio::null())
            .output(),
    )
    .await
    .expect("help timed out")
    .expect("run help");
    assert!(out.status.success(), "`mcp-fleet help {words:?}` failed");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Whether `help` lists `word` as a whole word (`--listen` is not `--listen-x`).
fn lists(help: &str, word: &str) -> bool {
    help.match_indices(word).any(|(at, _)| {
        !help[at + word.len()..]
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    })
}

#[tokio::test]
async fn deployments_give_the_binary_only_subcommands_flags_and_variables_it_knows() {
    let docs = manifests();
    let mut all = invocations(&docs);
    assert!(
        all.len() >= 2,
        "expected the registry and gateway Deployments: {all:?}"
    );
    all.push(dockerfile());
    let global = help(&[]).await;
    let mut helps = BTreeMap::new();
    let mut problems = Vec::new();
    for inv in &all {
        let Some(sub) = inv.args.first() else {
            problems.push(format!("{}: no subcommand in args", inv.origin));
            continue;
        };
        if !helps.contains_key(sub) {
            let text = help(&[sub.as_str()]).await;
            helps.insert(sub.clone(), text);
        }
        let text = format!("{global}\n{}", helps[sub]);
        for flag in inv.args.iter().filter(|a| a.starts_with("--")) {
            let flag = flag.split('=').next().unwrap_or(flag);
            if !lists(&text, flag) {
                problems.push(format!(
                    "{}: `mcp-fleet {sub}` has no flag {flag}",
                    inv.origin
                ));
            }
        }
        for var in inv.env.iter().filter(|v| v.starts_with("MCP_FLEET_")) {
            if !lists(&text, &format!("[env: {var}")) {
                problems.push(format!(
                    "{}: `mcp-fleet {sub}` reads no variable {var}",
                    inv.origin
                ));
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn every_secret_key_the_deployments_read_is_in_the_example_secret() {
    let docs = manifests();
    let example: BTreeSet<String> = docs
        .iter()
        .filter(|(_, d)| d["kind"] == "Secret")
        .flat_map(|(_, d)| {
            d["stringData"]
                .as_object()
                .into_iter()
                .flat_map(|m| m.keys().cloned())
        })
        .collect();
    let mut read = Vec::new();
    for (file, doc) in docs.iter().filter(|(_, d)| d["kind"] == "Deployment") {
        for container in doc["spec"]["template"]["spec"]["containers"]
            .as_array()
            .into_iter()
            .flatten()
        {
            for env in container["env"].as_array().into_iter().flatten() {
                let key = &env["valueFrom"]["secretKeyRef"]["key"];
                if let Some(key) = key.as_str() {
                    read.push((file.clone(), key.to_owned()));
                }
            }
        }
    }
    assert!(
        read.len() >= 2,
        "the Deployments read their secrets: {read:?}"
    );
    let missing: Vec<_> = read.iter().filter(|(_, k)| !example.contains(k)).collect();
    assert!(
        missing.is_empty(),
        "keys missing from secrets.example.yaml: {missing:?}"
    );
}

#[test]
fn the_kustomization_lists_every_manifest_but_the_example_secret() {
    let dir = repo().join("deploy/kubernetes");
    let text = std::fs::read_to_string(dir.join("kustomization.yaml")).expect("kustomization");
    let listed: BTreeSet<String> =
        serde_yaml_ng::from_str::<Value>(&text).expect("YAML")["resources"]
            .as_array()
            .expect("resources")
            .iter()
            .filter_map(|r| r.as_str().map(str::to_owned))
            .collect();
    let present: BTreeSet<String> = std::fs::read_dir(&dir)
        .expect("dir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .filter(|n| {
            n.ends_with(".yaml") && n != "kustomization.yaml" && n != "secrets.example.yaml"
        })
        .collect();
    assert_eq!(listed, present);
}
