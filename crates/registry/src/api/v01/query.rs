//! The query of `GET /v0.1/servers` (`cursor`, `limit`, `search`, `updated_since`, `version`,
//! `include_deleted`), parsed once, and its opaque cursor.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use mcp_fleet_model::{FieldError, Timestamp, ValidationErrors, Version};

use super::catalog::Item;

/// Page size when `limit` is not given, as the official registry's.
const DEFAULT_LIMIT: usize = 30;
/// The largest `limit`, as the official registry's.
const MAX_LIMIT: usize = 100;
/// Which versions a listing shows (`version`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) enum Versions {
    /// Every version.
    All,
    /// Each server's latest (`version=latest`).
    Latest,
    /// This exact version.
    Exact(String),
}

/// `GET /v0.1/servers`'s query, parsed.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct Query {
    /// Start after this item (`name`, `version`).
    pub(super) after: Option<(String, Version)>,
    pub(super) limit: usize,
    /// Lowercased substring of the name.
    pub(super) search: Option<String>,
    pub(super) updated_since: Option<Timestamp>,
    pub(super) version: Versions,
    pub(super) include_deleted: bool,
}

pub(super) fn encode_cursor(item: &Item) -> String {
    URL_SAFE_NO_PAD.encode(format!("{}\n{}", item.name, item.version))
}

fn decode_cursor(cursor: &str) -> Result<(String, Version), String> {
    let bad = || "is not a cursor this registry issued".to_owned();
    let bytes = URL_SAFE_NO_PAD.decode(cursor).map_err(|_| bad())?;
    let text = String::from_utf8(bytes).map_err(|_| bad())?;
    let (name, version) = text.split_once('\n').ok_or_else(bad)?;
    Ok((name.to_owned(), version.parse().map_err(|_| bad())?))
}

pub(super) fn parse_bool(field: &str, value: &str) -> Result<bool, FieldError> {
    match value {
        "true" => Ok(true),
        "false" => Ok(false),
        _ => Err(FieldError::new(
            field,
            format!("must be true or false, got {value:?}"),
        )),
    }
}

/// Parses the listing's query. Parameters of the official API this one does not know are
/// ignored, as the official registry ignores them; a bad value of a known one is a `400`.
pub(super) fn parse_query(raw: Option<&str>) -> Result<Query, ValidationErrors> {
    let mut q = Query {
        after: None,
        limit: DEFAULT_LIMIT,
        search: None,
        updated_since: None,
        version: Versions::All,
        include_deleted: false,
    };
    let mut errors = Vec::new();
    let mut seen: Vec<String> = Vec::new();
    for (key, value) in form_urlencoded::parse(raw.unwrap_or("").as_bytes()) {
        if seen.iter().any(|k| *k == key) {
            errors.push(FieldError::new(key.as_ref(), "must be given at most once"));
            continue;
        }
        seen.push(key.to_string());
        match key.as_ref() {
            "cursor" => match decode_cursor(&value) {
                Ok(after) => q.after = Some(after),
                Err(e) => errors.push(FieldError::new("cursor", e)),
            },
            "limit" => match value.parse::<usize>() {
                Ok(n) if (1..=MAX_LIMIT).contains(&n) => q.limit = n,
                _ => errors.push(FieldError::new(
                    "limit",
                    format!("must be an integer from 1 to {MAX_LIMIT}, got {value:?}"),
                )),
            },
            "search" => {
                let value = value.trim();
                if value.chars().count() > 200 {
                    errors.push(FieldError::new("search", "must be at most 200 characters"));
                } else if !value.is_empty() {
                    q.search = Some(value.to_lowercase());
                }
            }
            "updated_since" => match chrono::DateTime::parse_from_rfc3339(&value) {
                Ok(t) => q.updated_since = Some(t.with_timezone(&chrono::Utc)),
                Err(_) => errors.push(FieldError::new(
                    "updated_since",
                    format!("must be an RFC 3339 time such as 2026-01-02T03:04:05Z, got {value:?}"),
                )),
            },
            "version" => match value.as_ref() {
                "" => errors.push(FieldError::new(
                    "version",
                    "must be \"latest\" or a version such as 1.2.3",
                )),
                "latest" => q.version = Versions::Latest,
                exact if exact.len() > 255 => {
                    errors.push(FieldError::new("version", "must be at most 255 characters"));
                }
                exact => q.version = Versions::Exact(exact.to_owned()),
            },
            "include_deleted" => match parse_bool("include_deleted", &value) {
                Ok(b) => q.include_deleted = b,
                Err(e) => errors.push(e),
            },
            _ => {}
        }
    }
    if errors.is_empty() {
        Ok(q)
    } else {
        Err(ValidationErrors(errors))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_reject_garbage() {
        let (name, version) = decode_cursor(&URL_SAFE_NO_PAD.encode("a.b/c\n1.2.3")).unwrap();
        assert_eq!(
            (name.as_str(), version.to_string().as_str()),
            ("a.b/c", "1.2.3")
        );
        assert!(decode_cursor("!!").is_err());
        assert!(decode_cursor(&URL_SAFE_NO_PAD.encode("no-newline")).is_err());
    }

    #[test]
    fn bad_values_name_their_parameter() {
        for (query, field) in [
            ("limit=0", "limit"),
            ("limit=101", "limit"),
            ("limit=x", "limit"),
            ("cursor=zz", "cursor"),
            ("updated_since=yesterday", "updated_since"),
            ("include_deleted=yes", "include_deleted"),
            ("version=", "version"),
            ("limit=1&limit=2", "limit"),
        ] {
            let e = parse_query(Some(query)).expect_err(query);
            assert_eq!(e.0[0].field, field, "{query}");
        }
        let q = parse_query(Some("search=Bill&version=latest&unknown=1")).expect("valid");
        assert_eq!(q.search.as_deref(), Some("bill"));
        assert_eq!(q.version, Versions::Latest);
        assert_eq!(q.limit, DEFAULT_LIMIT);
    }
}
