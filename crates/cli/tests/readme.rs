//! The README's examples, run, so that they cannot drift from what the code does.
//!
//! Every line of the README's `sh` blocks that starts `mcp-fleet` (or `cargo run --release --`)
//! is checked against the binary: its subcommand exists (`mcp-fleet help …`) and each `--flag` it
//! shows is one that subcommand's help lists. The lines that are complete commands (no
//! placeholder such as `ID` or `[--json]`) and do not run a server are then run for real, in
//! README order, together with every `curl` line, against a `mcp-fleet serve` started in a fresh
//! directory (so `./mcp-fleet.db` is its database, as the README says) with the health worker
//! off:
//!
//! - `localhost:4000` becomes the test registry's address; the example upstreams
//!   (`10.0.0.N:PORT`) become a loopback port where nothing listens, so nothing leaves the
//!   machine, even for `POST /servers/{id}/check`;
//! - `entry.json` is the README's example entry, cut to the fields it says a client sends;
//! - a `curl` must answer 2xx, 304 or 404 (the examples delete what others then look up) and
//!   never 400, 422 or 5xx: a malformed example is a drifted one; a client command must exit 0,
//!   or 1 because what it names is absent.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Stdio;

use serde_json::Value;
use tokio::process::Command;

use crate::common::{PROCESS_DEADLINE, binary, spawn_command};

const README: &str = include_str!("../../../README.md");

/// Subcommands that run until stopped: their lines are checked, never run.
const SERVERS: &[&str] = &[
    "serve",
    "demo",
    "gateway",
    "health-worker",
    "watch",
    "announce",
];

/// Subcommands that connect to the registered MCP servers: checked, never run.
const CONNECTING: &[&str] = &["tools", "call"];

/// One command of a `sh` block: its text with continuation lines joined, comments removed.
#[derive(Debug)]
struct Example {
    line: usize,
    text: String,
}

/// The commands of the README's `sh` blocks, in order.
fn examples() -> Vec<Example> {
    let mut out = Vec::new();
    let mut in_sh = false;
    let mut pending: Option<Example> = None;
    for (i, raw) in README.lines().enumerate() {
        let line_no = i + 1;
        if raw.starts_with("```") {
            in_sh = raw.trim() == "```sh";
            continue;
        }
        if !in_sh {
            continue;
        }
        let code = strip_comment(raw).trim_end();
        if code.trim().is_empty() {
            continue;
        }
        let (code, continues) = match code.strip_suffix('\\') {
            Some(head) => (head.trim_end(), true),
            None => (code, false),
        };
        match &mut pending {
            // Inside a quoted argument the line break is part of it.
            Some(example) if quote_open(&example.text) => {
                example.text.push('\n');
                example.text.push_str(code);
            }
            Some(example) => {
                example.text.push(' ');
                example.text.push_str(code.trim());
            }
            None => {
                pending = Some(Example {
                    line: line_no,
                    text: code.trim().to_owned(),
                });
            }
        }
        let quoted = pending.as_ref().is_some_and(|e| quote_open(&e.text));
        if !continues && !quoted {
            out.extend(pending.take());
        }
    }
    out
}

/// Whether `text` ends inside a quoted string.
fn quote_open(text: &str) -> bool {
    shell_chars(text)
        .last()
        .is_some_and(|(_, _, quoted)| quoted)
}

/// The characters of `text` with their byte offset and whether a quoted string is open after
/// each (a quote character opens or closes one, as the shell reads `'` and `"`).
fn shell_chars(text: &str) -> impl Iterator<Item = (usize, char, bool)> + '_ {
    let (mut single, mut double) = (false, false);
    text.char_indices().map(move |(i, c)| {
        match c {
            '\'' if !double => single = !single,
            '"' if !single => double = !double,
            _ => {}
        }
        (i, c, single || double)
    })
}

/// Whether `text` redirects, pipes or chains outside quotes (`man > ~/…`): such lines write
/// where the test must not, so they are only checked.
fn redirects(text: &str) -> bool {
    shell_chars(text)
        .any(|(_, c, quoted)| !quoted && matches!(c, '>' | '<' | '|' | ';' | '&' | '$' | '`'))
}

/// `code  # comment` → `code`, leaving `#` inside quotes alone.
fn strip_comment(line: &str) -> &str {
    let mut prev = ' ';
    for (i, c, quoted) in shell_chars(line) {
        if c == '#' && !quoted && prev.is_whitespace() {
            return &line[..i];
        }
        prev = c;
    }
    line
}

/// The words after `mcp-fleet` (or `cargo run --release --`), if the example is a CLI command.
fn cli_words(text: &str) -> Option<Vec<String>> {
    let words = shlex::split(text)?;
    let start = words.iter().position(|w| w == "mcp-fleet").map(|i| i + 1);
    let start = start.or_else(|| {
        let at = words.windows(4).position(|w| {
            w[0] == "cargo" && w[1] == "run" && w[2] == "--release" && w[3] == "--"
        })?;
        Some(at + 4)
    })?;
    // Only environment assignments may come before the command.
    let before_is_env = words[..start.saturating_sub(1)]
        .iter()
        .all(|w| w.contains('=') || ["cargo", "run", "--release", "--"].contains(&w.as_str()));
    before_is_env.then(|| words[start..].to_vec())
}

/// Whether `word` stands for something (`ID`, `[--json]`, `a|b`, `mcpf_…`) rather than being it.
fn is_placeholder(word: &str) -> bool {
    let upper = word.len() >= 2
        && word
            .chars()
            .all(|c| c.is_ascii_uppercase() || c == '_' || c == '-');
    upper || word.contains(['[', ']', '|', '…'])
}

async fn output(cmd: &mut Command) -> (Option<i32>, String, String) {
    let out = tokio::time::timeout(PROCESS_DEADLINE, cmd.stdin(Stdio::null()).output())
        .await
        .expect("command timed out")
        .expect("run command");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Splits `words` into the subcommand path the binary knows and the rest.
async fn subcommand_path(words: &[String], helps: &mut BTreeMap<String, String>) -> usize {
    let mut depth = 0;
    while let Some(word) = words.get(depth) {
        if word.starts_with('-') || is_placeholder(word) {
            break;
        }
        let path = words[..=depth].join(" ");
        if let std::collections::btree_map::Entry::Vacant(slot) = helps.entry(path) {
            let (code, out, _) = output(binary().arg("help").args(&words[..=depth])).await;
            if code != Some(0) {
                break;
            }
            slot.insert(out);
        }
        depth += 1;
    }
    depth
}

#[test]
fn the_readme_has_examples_to_check() {
    let examples = examples();
    let cli = examples
        .iter()
        .filter(|e| cli_words(&e.text).is_some())
        .count();
    let curl = examples
        .iter()
        .filter(|e| e.text.starts_with("curl "))
        .count();
    assert!(cli >= 20, "only {cli} CLI examples found: {examples:#?}");
    assert!(curl >= 15, "only {curl} curl examples found");
    assert!(redirects("mcp-fleet man > ~/x") && !redirects("curl -d '{\"a\":\">\"}' x"));
    assert_eq!(
        strip_comment(r##"curl -d '{"a":"#b"}' x   # c"##),
        r##"curl -d '{"a":"#b"}' x   "##
    );
}

#[tokio::test]
async fn every_cli_example_names_a_real_subcommand_and_real_flags() {
    let mut helps = BTreeMap::new();
    let mut problems = Vec::new();
    for example in examples() {
        let Some(words) = cli_words(&example.text) else {
            continue;
        };
        let depth = subcommand_path(&words, &mut helps).await;
        if depth == 0 {
            problems.push(format!(
                "README line {}: `{}`: no such subcommand",
                example.line, example.text
            ));
            continue;
        }
        let help = &helps[&words[..depth].join(" ")];
        for word in &words[depth..] {
            let flag = word.trim_start_matches('[').trim_end_matches(']');
            let flag = flag.split('=').next().unwrap_or(flag);
            if !flag.starts_with("--") || flag == "--" {
                continue;
            }
            let listed = help.match_indices(flag).any(|(at, _)| {
                !help[at + flag.len()..]
                    .chars()
                    .next()
                    .is_some_and(|c| c.is_ascii_alphanumeric() || c == '-')
            });
            if !listed {
                problems.push(format!(
                    "README line {}: `mcp-fleet {}` has no flag {flag}",
                    example.line,
                    words[..depth].join(" ")
                ));
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// The README's example entry, cut to the fields its "Clients send …" sentence names.
fn example_entry() -> Value {
    let start = README
        .find("```json\n{\n  \"id\"")
        .expect("the README's example entry");
    let body = &README[start + "```json\n".len()..];
    let body = &body[..body.find("```").expect("end of the example entry")];
    let Value::Object(entry) = serde_json::from_str(body).expect("the example entry is JSON")
    else {
        panic!("the example entry is not an object")
    };
    let sentence = &README[README
        .find("Clients send ")
        .expect("the sentence on client fields")..];
    let sentence = &sentence[..sentence.find("(optional)").expect("its end")];
    let sent: Vec<&str> = sentence.split('`').skip(1).step_by(2).collect();
    assert!(sent.contains(&"url") && sent.len() >= 10, "{sent:?}");
    let client: serde_json::Map<_, _> = entry
        .into_iter()
        .filter(|(key, _)| sent.contains(&key.as_str()))
        .collect();
    Value::Object(client)
}

/// `10.0.0.N:PORT` → `127.0.0.1:closed`, wherever it appears.
fn to_loopback(text: &str, closed: u16) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(at) = rest.find("10.0.0.") {
        out.push_str(&rest[..at]);
        let tail = &rest[at + "10.0.0.".len()..];
        let host_end = tail
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(tail.len());
        let mut after = &tail[host_end..];
        if let Some(port) = after.strip_prefix(':') {
            let end = port
                .find(|c: char| !c.is_ascii_digit())
                .unwrap_or(port.len());
            after = &port[end..];
        }
        out.push_str(&format!("127.0.0.1:{closed}"));
        rest = after;
    }
    out.push_str(rest);
    out
}

#[tokio::test]
async fn the_readme_examples_run_against_a_real_registry() {
    let dir = tempfile::tempdir().expect("tempdir");
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.local_addr().expect("addr").port()
    };
    let entry = to_loopback(&example_entry().to_string(), closed);
    std::fs::write(dir.path().join("entry.json"), entry).expect("write entry.json");

    let mut serve = binary();
    serve
        .current_dir(dir.path())
        .args(["serve", "--listen", "127.0.0.1:0", "--no-health-worker"]);
    let server = spawn_command(serve).await;
    let authority = server
        .url
        .strip_prefix("http://")
        .expect("an http URL")
        .to_owned();
    // The routing examples split the `catalog` service between 2.0.0 and 2.1.0: the README
    // presumes both instances exist.
    for version in ["2.0.0", "2.1.0"] {
        let id = format!("catalog-{}", version.replace('.', "-"));
        let url = format!("http://127.0.0.1:{closed}");
        let (code, _, err) = output(binary().args([
            "register",
            "--registry",
            &server.url,
            "--id",
            &id,
            "--service",
            "catalog",
            "--name",
            "Catalog",
            "--url",
            &url,
            "--server-version",
            version,
        ]))
        .await;
        assert_eq!(code, Some(0), "{err}");
    }

    let bin_dir = Path::new(env!("CARGO_BIN_EXE_mcp-fleet"))
        .parent()
        .expect("the binary's directory");
    let path = format!(
        "{}:{}",
        bin_dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let mut ran = 0;
    let mut problems = Vec::new();
    for example in examples() {
        let text = to_loopback(&example.text, closed)
            .replace("localhost:4000", &authority)
            .replace("cargo run --release --", "mcp-fleet");
        let runnable_cli = !example.text.contains('…')
            && !redirects(&example.text)
            && cli_words(&example.text).is_some_and(|words| {
                let sub = words.first().map(String::as_str).unwrap_or_default();
                !words.iter().any(|w| is_placeholder(w))
                    && !SERVERS.contains(&sub)
                    && !CONNECTING.contains(&sub)
            });
        let curl = text.starts_with("curl ");
        if !(runnable_cli || curl) {
            continue;
        }
        let script = if curl {
            format!("{text} --silent --output /dev/null --write-out '%{{http_code}}' --max-time 2")
        } else {
            text.clone()
        };
        let (code, out, err) = output(
            Command::new("bash")
                .arg("-c")
                .arg(&script)
                .current_dir(dir.path())
                .env("PATH", &path)
                .env("MCP_FLEET_REGISTRY", &server.url)
                .env("RUST_LOG", "warn,rmcp=off")
                .env_remove("MCP_FLEET_TOKEN")
                .env_remove("MCP_FLEET_CONFIG")
                .env_remove("COLUMNS")
                .env("XDG_CONFIG_HOME", dir.path().join("no-config"))
                .env_remove("MCP_FLEET_DATABASE_URL"),
        )
        .await;
        ran += 1;
        let fine = if curl {
            // 28: the time limit, for streams (`curl -N`) and blocking queries.
            let status: u16 = out.trim().parse().unwrap_or(0);
            let waits = text.contains(" -N ") || text.contains("wait=");
            // 503 `not-running`: this registry runs no health worker to check with.
            let no_worker = text.contains("/check") && status == 503;
            match code {
                Some(0) => (200..300).contains(&status) || matches!(status, 304 | 404) || no_worker,
                Some(28) => waits,
                _ => false,
            }
        } else {
            code == Some(0)
                || (code == Some(1) && (err.contains("no token") || err.contains("404")))
        };
        if !fine {
            problems.push(format!(
                "README line {}: `{text}` → exit {code:?}, stdout {out:?}, stderr {err:?}",
                example.line
            ));
        }
    }
    server.terminate().await;
    assert!(ran >= 25, "only {ran} examples ran");
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn example_upstreams_become_a_loopback_port() {
    assert_eq!(
        to_loopback("--url http://10.0.0.5:8080 x 10.0.0.6", 9),
        "--url http://127.0.0.1:9 x 127.0.0.1:9"
    );
}
