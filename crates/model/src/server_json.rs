//! What a server.json record (the official MCP Registry's format) becomes as mcp-fleet
//! registrations: `mcp-fleet import` and `register --server-json`.
//!
//! The record is read as JSON rather than as [`crate::official::ServerJson`]: a remote's
//! `variables`, which fill its URL template, are not in that type, and one odd record of a
//! foreign registry is then reported and skipped instead of failing a whole import.
//!
//! Over 500 lines with its unit tests, which sit next to the code they check (174 of 592 lines).

use serde_json::{Map, Value, json};

use crate::error::ValidationErrors;
use crate::ids::{ServerId, Tag, Version};
use crate::official::{FleetHealthMeta, STREAMABLE_HTTP};
use crate::registration::{MAX_DESCRIPTION_CHARS, MAX_NAME_CHARS, Registration};

/// `metadata` key holding the server.json `name` an entry was made from.
pub const OFFICIAL_NAME_KEY: &str = "officialName";
/// `metadata` key holding the registry an imported entry was read from.
pub const IMPORTED_FROM_KEY: &str = "importedFrom";

/// Why a server.json record makes no mcp-fleet entry.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Unimportable {
    /// Packages to run locally and no remote at all.
    #[error("only {0} packages")]
    OnlyPackages(String),
    /// Remotes, none of them Streamable HTTP.
    #[error("no streamable-http remote (only {0})")]
    NoStreamableRemote(String),
    /// Neither remotes nor packages.
    #[error("no remotes and no packages")]
    Nothing,
    /// More than one Streamable HTTP remote; an entry has one URL.
    #[error("{} streamable-http remotes ({}): an entry has one url", .0.len(), .0.join(", "))]
    SeveralRemotes(Vec<String>),
    /// The remote's URL is not one an entry can hold.
    #[error("invalid url {url}: {reason}")]
    InvalidUrl {
        /// The remote's URL as the record gives it.
        url: String,
        /// Why it cannot be used.
        reason: String,
    },
    /// The record's version is not semver, which entries require.
    #[error("version {0:?} is not a semantic version")]
    Version(String),
    /// A required field is missing or of the wrong type.
    #[error("not a server.json record: {0}")]
    Malformed(String),
    /// The registration made from it is refused for another field.
    #[error("{0}")]
    Invalid(ValidationErrors),
}

/// What a record becomes: the registration body to send, already checked.
#[derive(Debug, Clone, PartialEq)]
pub struct Imported {
    /// The body of `POST /servers`.
    pub body: Value,
    /// The same, parsed: what the registry will store.
    pub registration: Registration,
}

/// Choices the caller makes about the mapping.
#[derive(Debug, Clone, Default)]
pub struct MapOptions {
    /// Tags added to the record's own (`--tags`).
    pub tags: Vec<Tag>,
    /// The registry read from, recorded as `metadata.importedFrom`.
    pub imported_from: Option<String>,
    /// A URL to use instead of the record's remote (`register --url`): then the record's
    /// remotes are not looked at.
    pub url: Option<String>,
    /// The entry id to use instead of the one made from the record's name.
    pub id: Option<ServerId>,
    /// The service to use instead of the entry id.
    pub service: Option<ServerId>,
}

/// The entry id (and service) for a server.json `name`: lowercased, every run of other
/// characters than `a-z` and `0-9` made one `-` (`io.github.user/weather` →
/// `io-github-user-weather`); a longer result than 64 characters keeps its first 55 and a hash
/// of the whole name, so that two long names stay apart.
pub fn entry_id(name: &str) -> String {
    let mut slug = String::with_capacity(name.len());
    for c in name.chars().flat_map(char::to_lowercase) {
        if c.is_ascii_lowercase() || c.is_ascii_digit() {
            slug.push(c);
        } else if !slug.is_empty() && !slug.ends_with('-') {
            slug.push('-');
        }
    }
    while slug.ends_with('-') {
        slug.pop();
    }
    if slug.len() > 64 {
        slug.truncate(55);
        while slug.ends_with('-') {
            slug.pop();
        }
        slug = format!("{slug}-{:08x}", fnv1a(name.as_bytes()) as u32);
    }
    if slug.is_empty() {
        slug = format!("server-{:08x}", fnv1a(name.as_bytes()) as u32);
    }
    slug
}

/// FNV-1a, 64 bits: stable across builds and platforms, unlike `std`'s hasher.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// `url` with each `{variable}` replaced by its `default` in `variables`.
fn expand_variables(url: &str, variables: Option<&Value>) -> Result<String, Unimportable> {
    let mut out = String::with_capacity(url.len());
    let mut rest = url;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let after = &rest[open + 1..];
        let Some(close) = after.find('}') else {
            return Err(invalid_url(url, "has an unclosed '{'"));
        };
        let name = &after[..close];
        let default = variables
            .and_then(|v| v.get(name))
            .and_then(|v| v.get("default"))
            .and_then(Value::as_str);
        match default {
            Some(value) => out.push_str(value),
            None => {
                return Err(invalid_url(
                    url,
                    &format!("variable {{{name}}} has no default value"),
                ));
            }
        }
        rest = &after[close + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

fn invalid_url(url: &str, reason: &str) -> Unimportable {
    Unimportable::InvalidUrl {
        url: url.to_owned(),
        reason: reason.to_owned(),
    }
}

/// The entry URL for a remote's URL: mcp-fleet serves MCP at `<url>/mcp`, so the remote's
/// path must end in `/mcp`, which is cut off.
fn base_url(remote: &str) -> Result<String, Unimportable> {
    let (path_end, query) = match remote.find(['?', '#']) {
        Some(i) => (&remote[..i], &remote[i..]),
        None => (remote, ""),
    };
    if !query.is_empty() {
        return Err(invalid_url(
            remote,
            "has a query or fragment, which an entry's <url>/mcp cannot carry",
        ));
    }
    let trimmed = path_end.strip_suffix('/').unwrap_or(path_end);
    match trimmed.strip_suffix("/mcp") {
        Some(base) if base.contains("://") && !base.ends_with(':') && !base.ends_with('/') => {
            Ok(base.to_owned())
        }
        _ => Err(invalid_url(
            remote,
            "does not end in /mcp (an entry's MCP endpoint is <url>/mcp)",
        )),
    }
}

fn remotes(server: &Map<String, Value>) -> &[Value] {
    server
        .get("remotes")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default()
}

fn streamable(remotes: &[Value]) -> Vec<&Value> {
    remotes
        .iter()
        .filter(|r| r.get("type").and_then(Value::as_str) == Some(STREAMABLE_HTTP))
        .collect()
}

/// A Streamable HTTP remote's URL, variables expanded, and whether it wants an
/// `Authorization` header.
fn expanded(remote: &Value) -> Result<(String, bool), Unimportable> {
    let url = remote
        .get("url")
        .and_then(Value::as_str)
        .ok_or_else(|| Unimportable::Malformed("a streamable-http remote without a url".into()))?;
    let expanded = expand_variables(url, remote.get("variables"))?;
    let bearer = remote
        .get("headers")
        .and_then(Value::as_array)
        .is_some_and(|headers| {
            headers.iter().any(|h| {
                h.get("name")
                    .and_then(Value::as_str)
                    .is_some_and(|n| n.eq_ignore_ascii_case("authorization"))
            })
        });
    Ok((expanded, bearer))
}

/// The one Streamable HTTP remote's URL of `server`, variables expanded.
fn remote_url(server: &Map<String, Value>) -> Result<(String, bool), Unimportable> {
    let remotes = remotes(server);
    match streamable(remotes).as_slice() {
        [] if remotes.is_empty() => {
            let kinds = packages_kinds(server);
            Err(if kinds.is_empty() {
                Unimportable::Nothing
            } else {
                Unimportable::OnlyPackages(kinds)
            })
        }
        [] => {
            let mut kinds: Vec<&str> = remotes
                .iter()
                .map(|r| r.get("type").and_then(Value::as_str).unwrap_or("untyped"))
                .collect();
            kinds.dedup();
            Err(Unimportable::NoStreamableRemote(format!(
                "{} remotes",
                kinds.join(", ")
            )))
        }
        [one] => expanded(one),
        several => Err(Unimportable::SeveralRemotes(
            several
                .iter()
                .map(|r| {
                    r.get("url")
                        .and_then(Value::as_str)
                        .unwrap_or("?")
                        .to_owned()
                })
                .collect(),
        )),
    }
}

/// The transports of `server`'s packages, e.g. `stdio` or `stdio, streamable-http`.
fn packages_kinds(server: &Map<String, Value>) -> String {
    let mut kinds: Vec<&str> = server
        .get("packages")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default()
        .iter()
        .map(|p| {
            p.pointer("/transport/type")
                .and_then(Value::as_str)
                .unwrap_or("untyped")
        })
        .collect();
    kinds.sort_unstable();
    kinds.dedup();
    kinds.join(", ")
}

fn cut(text: &str, max_chars: usize) -> String {
    text.chars().take(max_chars).collect()
}

/// The registration a server.json record (`server`, the `server` object of a v0.1 listing or a
/// server.json file) makes: id and service from its `name` ([`entry_id`]), name from its
/// `title` (else `name`), its description and version, the URL of its one Streamable HTTP
/// remote without the `/mcp` at its end, `auth` `bearer` when that remote wants an
/// `Authorization` header, and `metadata.officialName`.
pub fn registration(server: &Value, options: &MapOptions) -> Result<Imported, Unimportable> {
    let Value::Object(server) = server else {
        return Err(Unimportable::Malformed("not a JSON object".into()));
    };
    let text = |key: &str| server.get(key).and_then(Value::as_str);
    let name = text("name")
        .filter(|n| !n.trim().is_empty())
        .ok_or_else(|| Unimportable::Malformed("no \"name\"".into()))?;
    let version = text("version")
        .ok_or_else(|| Unimportable::Malformed(format!("{name}: no \"version\"")))?;
    if version.parse::<Version>().is_err() {
        return Err(Unimportable::Version(version.to_owned()));
    }
    let (url, shown, bearer) = match &options.url {
        Some(url) => (url.clone(), url.clone(), false),
        None => {
            let (remote, bearer) = remote_url(server)?;
            (base_url(&remote)?, remote, bearer)
        }
    };
    let id = match &options.id {
        Some(id) => id.to_string(),
        None => entry_id(name),
    };
    let service = options
        .service
        .as_ref()
        .map_or_else(|| id.clone(), ToString::to_string);
    let title = text("title")
        .filter(|t| !t.trim().is_empty())
        .unwrap_or(name);
    let mut tags: Vec<Value> = Vec::new();
    for tag in &options.tags {
        let tag = Value::from(tag.as_str());
        if !tags.contains(&tag) {
            tags.push(tag);
        }
    }
    let mut metadata = Map::new();
    metadata.insert(OFFICIAL_NAME_KEY.into(), Value::from(name));
    if let Some(from) = &options.imported_from {
        metadata.insert(IMPORTED_FROM_KEY.into(), Value::from(from.as_str()));
    }
    let mut body = json!({
        "id": id,
        "service": service,
        "name": cut(title, MAX_NAME_CHARS),
        "description": cut(text("description").unwrap_or_default(), MAX_DESCRIPTION_CHARS),
        "url": url,
        "version": version,
        "tags": tags,
        "metadata": metadata,
    });
    if bearer {
        body["auth"] = json!({ "type": "bearer" });
    }
    match Registration::from_json(&body, None) {
        Ok(registration) => Ok(Imported { body, registration }),
        Err(errors) => Err(match errors.0.iter().find(|e| e.field == "url") {
            Some(e) => invalid_url(&shown, &e.message),
            None => Unimportable::Invalid(errors),
        }),
    }
}

/// The registrations a record of a v0.1 listing makes. A record of an mcp-fleet registry
/// (`health`, its `_meta["dev.mcp-fleet/health"]`, naming the instances behind the version)
/// makes one entry per instance: its id, the service after the name's `/`, the instance's
/// remote (the remotes and instances pair up in order; one remote is every instance's) and the
/// record's tags. Any other
/// record makes one entry, as [`registration`] says.
pub fn registrations(
    server: &Value,
    health: Option<&FleetHealthMeta>,
    options: &MapOptions,
) -> Vec<Result<Imported, Unimportable>> {
    let Some(health) = health.filter(|h| !h.instances.is_empty()) else {
        return vec![registration(server, options)];
    };
    let name = server
        .get("name")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let service: Option<ServerId> = name
        .split_once('/')
        .and_then(|(_, service)| service.parse().ok())
        .or_else(|| entry_id(name).parse().ok());
    let mut tags = options.tags.clone();
    for tag in health.tags.iter().filter_map(|t| t.parse::<Tag>().ok()) {
        if !tags.contains(&tag) {
            tags.push(tag);
        }
    }
    let remotes = match server.as_object() {
        Some(server) => streamable(remotes(server)),
        None => Vec::new(),
    };
    // One remote serves every instance when they share its URL (remotes are listed once per URL).
    let remotes = match remotes.as_slice() {
        [one] => vec![*one; health.instances.len()],
        _ if remotes.len() == health.instances.len() => remotes,
        _ => {
            return vec![Err(Unimportable::Malformed(format!(
                "{} instances but {} streamable-http remotes",
                health.instances.len(),
                remotes.len()
            )))];
        }
    };
    health
        .instances
        .iter()
        .zip(remotes)
        .map(|(instance, remote)| {
            let id = instance
                .parse::<ServerId>()
                .map_err(|e| Unimportable::Malformed(format!("instance id {instance:?} {e}")))?;
            let (remote_url, bearer) = expanded(remote)?;
            let mut imported = registration(
                server,
                &MapOptions {
                    tags: tags.clone(),
                    imported_from: options.imported_from.clone(),
                    url: Some(base_url(&remote_url)?),
                    id: Some(id),
                    service: service.clone(),
                },
            )?;
            if bearer {
                imported.body["auth"] = json!({ "type": "bearer" });
                imported.registration =
                    Registration::from_json(&imported.body, None).map_err(Unimportable::Invalid)?;
            }
            Ok(imported)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn names_become_slugs() {
        let rows = [
            ("io.github.user/weather", "io-github-user-weather"),
            ("com.example/My_Server--2", "com-example-my-server-2"),
            ("..//..", "server-"),
        ];
        for (name, want) in rows {
            assert!(
                entry_id(name).starts_with(want),
                "{name}: {}",
                entry_id(name)
            );
            assert!(entry_id(name).parse::<ServerId>().is_ok(), "{name}");
        }
        let long = format!("io.github.someone/{}", "x".repeat(80));
        let other = format!("io.github.someone/{}y", "x".repeat(80));
        assert_eq!(entry_id(&long).len(), 64);
        assert!(entry_id(&long).parse::<ServerId>().is_ok());
        assert_ne!(entry_id(&long), entry_id(&other));
    }

    fn server(remotes: Value) -> Value {
        json!({"name": "io.github.user/weather", "description": "Weather", "version": "1.0.2",
               "remotes": remotes})
    }

    #[test]
    fn the_one_streamable_remote_gives_the_url() {
        let rows: Vec<(Value, Result<&str, &str>)> = vec![
            (
                json!([{"type": "streamable-http", "url": "https://api.example.com/mcp"}]),
                Ok("https://api.example.com"),
            ),
            (
                json!([{"type": "streamable-http", "url": "https://api.example.com/v1/mcp/"}]),
                Ok("https://api.example.com/v1"),
            ),
            (
                json!([{"type": "streamable-http", "url": "https://{host}/mcp",
                        "variables": {"host": {"default": "api.example.com"}}}]),
                Ok("https://api.example.com"),
            ),
            (
                json!([{"type": "streamable-http", "url": "https://{host}/mcp"}]),
                Err("invalid url https://{host}/mcp: variable {host} has no default value"),
            ),
            (
                json!([{"type": "streamable-http", "url": "https://api.example.com/sse"}]),
                Err(
                    "invalid url https://api.example.com/sse: does not end in /mcp (an entry's MCP endpoint is <url>/mcp)",
                ),
            ),
            (
                json!([{"type": "sse", "url": "https://api.example.com/sse"}]),
                Err("no streamable-http remote (only sse remotes)"),
            ),
            (
                json!([{"type": "streamable-http", "url": "https://a.example/mcp"},
                       {"type": "streamable-http", "url": "https://b.example/mcp"}]),
                Err(
                    "2 streamable-http remotes (https://a.example/mcp, https://b.example/mcp): an entry has one url",
                ),
            ),
            (
                json!([{"type": "streamable-http", "url": "https://user:pw@a.example/mcp"}]),
                Err(
                    "invalid url https://user:pw@a.example/mcp: must not contain credentials (user:password@)",
                ),
            ),
        ];
        for (remotes, want) in rows {
            let got = registration(&server(remotes.clone()), &MapOptions::default())
                .map(|i| i.registration.url.as_str().to_owned())
                .map_err(|e| e.to_string());
            let want = want.map(str::to_owned).map_err(str::to_owned);
            assert_eq!(got, want, "{remotes}");
        }
    }

    #[test]
    fn packages_only_and_bad_versions_are_refused() {
        let stdio = json!({"name": "a/b", "version": "1.0.0",
            "packages": [{"registryType": "npm", "transport": {"type": "stdio"}}]});
        let err = registration(&stdio, &MapOptions::default()).expect_err("stdio");
        assert_eq!(err.to_string(), "only stdio packages");
        let bare = json!({"name": "a/b", "version": "1.0.0"});
        assert_eq!(
            registration(&bare, &MapOptions::default())
                .expect_err("nothing")
                .to_string(),
            "no remotes and no packages"
        );
        let loose = json!({"name": "a/b", "version": "1.0",
            "remotes": [{"type": "streamable-http", "url": "https://a.example/mcp"}]});
        assert_eq!(
            registration(&loose, &MapOptions::default())
                .expect_err("1.0")
                .to_string(),
            "version \"1.0\" is not a semantic version"
        );
    }

    #[test]
    fn fields_map_as_documented() {
        let record = json!({"name": "io.github.user/remote-weather", "title": "Remote Weather",
            "description": "Weather over HTTP", "version": "2.1.0",
            "remotes": [{"type": "streamable-http", "url": "https://api.example.com/mcp",
                          "headers": [{"name": "Authorization", "isSecret": true}]}]});
        let options = MapOptions {
            tags: vec!["weather".parse().expect("tag")],
            imported_from: Some("https://registry.example".into()),
            ..MapOptions::default()
        };
        let imported = registration(&record, &options).expect("importable");
        assert_eq!(
            imported.body,
            json!({"id": "io-github-user-remote-weather", "service": "io-github-user-remote-weather",
                   "name": "Remote Weather", "description": "Weather over HTTP",
                   "url": "https://api.example.com", "version": "2.1.0", "tags": ["weather"],
                   "auth": {"type": "bearer"},
                   "metadata": {"officialName": "io.github.user/remote-weather",
                                "importedFrom": "https://registry.example"}})
        );
    }

    #[test]
    fn an_mcp_fleet_record_makes_one_entry_per_instance() {
        let record = json!({"name": "com.example/catalog", "description": "Catalog",
            "version": "2.0.0", "title": "Catalog",
            "remotes": [{"type": "streamable-http", "url": "http://10.0.0.5:8080/mcp"},
                        {"type": "streamable-http", "url": "http://10.0.0.6:8080/mcp"}]});
        let health: FleetHealthMeta = serde_json::from_value(json!({"status": "healthy",
            "tags": ["catalog", "products"], "instances": ["catalog-1", "catalog-2"]}))
        .expect("health meta");
        let made: Vec<(String, String, String)> =
            registrations(&record, Some(&health), &MapOptions::default())
                .into_iter()
                .map(|r| {
                    let r = r.expect("importable").registration;
                    (r.id.to_string(), r.service.to_string(), r.url.to_string())
                })
                .collect();
        assert_eq!(
            made,
            [
                (
                    "catalog-1".into(),
                    "catalog".into(),
                    "http://10.0.0.5:8080".into()
                ),
                (
                    "catalog-2".into(),
                    "catalog".into(),
                    "http://10.0.0.6:8080".into()
                ),
            ]
        );
        let one: FleetHealthMeta = serde_json::from_value(json!({"status": "healthy",
            "instances": ["catalog-1", "catalog-2", "catalog-3"]}))
        .expect("health meta");
        let err = registrations(&record, Some(&one), &MapOptions::default());
        assert_eq!(
            err[0].as_ref().expect_err("mismatch").to_string(),
            "not a server.json record: 3 instances but 2 streamable-http remotes"
        );
    }
}
