//! The query of `GET /servers`: `tags`, `status`, `service`, `limit`, `cursor`, `wait` and
//! `timeout`, parsed once into a store [`ListQuery`] and an optional blocking [`Wait`].

use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use mcp_fleet_model::{
    FieldError, MAX_TAGS, ServerId, StatusFilter, Tag, ValidationErrors, parse_duration,
};
use mcp_fleet_store::{ListQuery, MAX_PAGE};

use super::events::parse_revision;

/// The opaque cursor for "after this id".
pub(super) fn encode_cursor(after: &ServerId) -> String {
    URL_SAFE_NO_PAD.encode(after.as_str())
}

pub(super) fn decode_cursor(cursor: &str) -> Result<ServerId, String> {
    let bytes = URL_SAFE_NO_PAD
        .decode(cursor)
        .map_err(|_| "is not a cursor this registry issued".to_string())?;
    String::from_utf8(bytes)
        .ok()
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| "is not a cursor this registry issued".to_string())
}

/// How long a blocking listing waits for a change when `timeout` is not given.
pub(super) const DEFAULT_WAIT: Duration = Duration::from_secs(30);
/// The longest `timeout` of a blocking listing.
pub(super) const MAX_WAIT: Duration = Duration::from_secs(5 * 60);

/// A blocking listing (`wait`, `timeout`): answer once the registry is past revision `after`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Wait {
    pub(super) after: i64,
    pub(super) timeout: Duration,
}

/// Parses a `timeout`: whole `ms`, `s` (the default unit) or `m`, at most [`MAX_WAIT`].
pub(super) fn parse_timeout(value: &str) -> Result<Duration, String> {
    let bad = || format!("must be a duration such as 500ms, 30s or 5m, got {value:?}");
    let value = value.trim();
    let timeout = parse_duration(value, true).ok_or_else(bad)?;
    if timeout > MAX_WAIT {
        return Err(format!("must be at most 5m, got {value:?}"));
    }
    Ok(timeout)
}

/// Adds the tags of one `tags` parameter to `tags`: seed semantics, a comma-separated list whose
/// empty items are ignored.
pub(super) fn push_tags(value: &str, tags: &mut Vec<Tag>, errors: &mut Vec<FieldError>) {
    for item in value.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        match item.parse::<Tag>() {
            Ok(tag) => tags.push(tag),
            Err(e) => errors.push(FieldError::new("tags", format!("{item:?} {e}"))),
        }
    }
}

/// Sorts and dedups a query's tags, refusing more than [`MAX_TAGS`].
pub(super) fn settle_tags(tags: &mut Vec<Tag>, errors: &mut Vec<FieldError>) {
    tags.sort();
    tags.dedup();
    if tags.len() > MAX_TAGS {
        errors.push(FieldError::new(
            "tags",
            format!("at most {MAX_TAGS} tags per query, got {}", tags.len()),
        ));
    }
}

/// Parses `tags`, `status`, `service`, `limit`, `cursor`, `wait` and `timeout`; anything else is a
/// mistake worth reporting.
pub(super) fn parse_list_query(
    raw: Option<&str>,
) -> Result<(ListQuery, Option<Wait>), ValidationErrors> {
    let mut q = ListQuery::default();
    let (mut wait, mut timeout) = (None, None);
    let mut errors = Vec::new();
    let mut seen: Vec<String> = Vec::new();
    for (key, value) in form_urlencoded::parse(raw.unwrap_or("").as_bytes()) {
        if key != "tags" {
            if seen.iter().any(|k| *k == key) {
                errors.push(FieldError::new(key.as_ref(), "must be given at most once"));
                continue;
            }
            seen.push(key.to_string());
        }
        match key.as_ref() {
            "tags" => push_tags(&value, &mut q.tags, &mut errors),
            "status" => match value.parse::<StatusFilter>() {
                Ok(s) => q.status = s,
                Err(e) => errors.push(FieldError::new("status", e)),
            },
            "service" => match value.parse::<ServerId>() {
                Ok(service) => q.service = Some(service),
                Err(e) => errors.push(FieldError::new("service", e)),
            },
            "limit" => match value.parse::<u32>() {
                Ok(n) if (1..=MAX_PAGE).contains(&n) => q.limit = n,
                _ => errors.push(FieldError::new(
                    "limit",
                    format!("must be an integer from 1 to {MAX_PAGE}, got {value:?}"),
                )),
            },
            "cursor" => match decode_cursor(&value) {
                Ok(after) => q.after = Some(after),
                Err(e) => errors.push(FieldError::new("cursor", e)),
            },
            "wait" => match parse_revision("wait", &value) {
                Ok(after) => wait = Some(after),
                Err(e) => errors.push(e),
            },
            "timeout" => match parse_timeout(&value) {
                Ok(t) => timeout = Some(t),
                Err(e) => errors.push(FieldError::new("timeout", e)),
            },
            other => errors.push(FieldError::new(
                other,
                "unknown query parameter; expected tags, status, service, limit, cursor, wait or \
                 timeout",
            )),
        }
    }
    if timeout.is_some() && wait.is_none() {
        errors.push(FieldError::new(
            "timeout",
            "applies only to a blocking listing: give wait=<revision> too",
        ));
    }
    settle_tags(&mut q.tags, &mut errors);
    if errors.is_empty() {
        let wait = wait.map(|after| Wait {
            after,
            timeout: timeout.unwrap_or(DEFAULT_WAIT),
        });
        Ok((q, wait))
    } else {
        Err(ValidationErrors(errors))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_defaults_match_the_seed() {
        let q = parse_list_query(None).expect("empty query");
        assert_eq!(q, (ListQuery::default(), None));
        let (q, _) = parse_list_query(Some("tags=b,a,,a&status=any&limit=5")).expect("valid");
        assert_eq!(q.tags.len(), 2);
        assert_eq!(q.status, StatusFilter::Any);
        assert_eq!(q.limit, 5);
    }

    #[test]
    fn cursors_round_trip_and_reject_garbage() {
        let id: ServerId = "abc-1".parse().expect("id");
        assert_eq!(decode_cursor(&encode_cursor(&id)), Ok(id));
        assert!(decode_cursor("!!").is_err());
        assert!(decode_cursor(&URL_SAFE_NO_PAD.encode("Not An Id")).is_err());
    }

    #[test]
    fn timeouts_are_whole_ms_s_or_m_up_to_5m() {
        assert_eq!(parse_timeout("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_timeout(" 30 "), Ok(Duration::from_secs(30)));
        assert_eq!(parse_timeout("5m"), Ok(MAX_WAIT));
        assert_eq!(
            parse_timeout("6m"),
            Err("must be at most 5m, got \"6m\"".to_owned())
        );
        assert_eq!(
            parse_timeout("1.5s"),
            Err("must be a duration such as 500ms, 30s or 5m, got \"1.5s\"".to_owned())
        );
    }
}
