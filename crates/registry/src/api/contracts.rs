//! Contracts between versions: `GET /services/{service}/diff` (how one version's tool catalog
//! differs from another's, each change breaking or compatible), and the check a routing policy
//! passes before it is set (no traffic to a version that breaks the stable version's contract,
//! unless allowed).

use std::collections::BTreeMap;

use axum::extract::{RawQuery, State};
use axum::http::StatusCode;
use axum::response::Response;
use mcp_fleet_model::{
    ContractBreak, ContractCheck, FieldError, ServerId, ToolDef, ValidationErrors, Version,
    VersionDiff, check_contract, diff_catalogs,
};

use super::json;
use crate::AppState;
use crate::error::ApiError;
use crate::extract::ServicePath;

/// Parses `from` and `to`, both required; anything else is a mistake.
fn parse_diff_query(raw: Option<&str>) -> Result<(Version, Version), ValidationErrors> {
    let mut errors = Vec::new();
    let (mut from, mut to) = (None, None);
    let mut seen: Vec<String> = Vec::new();
    for (key, value) in form_urlencoded::parse(raw.unwrap_or("").as_bytes()) {
        if seen.iter().any(|k| *k == key) {
            errors.push(FieldError::new(key.as_ref(), "must be given at most once"));
            continue;
        }
        seen.push(key.to_string());
        let slot = match key.as_ref() {
            "from" => &mut from,
            "to" => &mut to,
            other => {
                errors.push(FieldError::new(
                    other,
                    "unknown query parameter; expected from and to",
                ));
                continue;
            }
        };
        match value.parse::<Version>() {
            Ok(v) => *slot = Some(v),
            Err(e) => errors.push(FieldError::new(key.as_ref(), e)),
        }
    }
    for (field, value) in [("from", &from), ("to", &to)] {
        if value.is_none() && !seen.iter().any(|k| k == field) {
            errors.push(FieldError::new(
                field,
                "is required: a version of the service (e.g. from=1.0.0&to=1.1.0)",
            ));
        }
    }
    match (from, to) {
        (Some(from), Some(to)) if errors.is_empty() => Ok((from, to)),
        _ => Err(ValidationErrors(errors)),
    }
}

/// The tools of the newest listing of an instance of `service` at `version`; `None` when no
/// instance at that version has been listed.
async fn listed_tools(
    state: &AppState,
    service: &ServerId,
    version: &Version,
) -> Result<Option<Vec<ToolDef>>, ApiError> {
    let catalog = state
        .store()
        .service_catalog(service, &version.to_string())
        .await?;
    Ok(catalog
        .filter(|c| c.fetched_at.is_some())
        .map(|c| c.tools.into_iter().map(|t| t.tool).collect()))
}

/// `GET /services/{service}/diff?from=&to=`
#[utoipa::path(
    get,
    path = "/services/{service}/diff",
    tag = "tools",
    summary = "How a service's tool catalog changed between two versions",
    description = "Compares the tools the newest listing of an instance at `from` offered with \
                   those of one at `to`: tools added, removed and changed, each schema change \
                   classified as breaking (a removed tool, a new required property, a removed \
                   property, a narrowed type or enum, a tightened bound, ...) or compatible. \
                   `breaking` is true when a client written for `from` can break on `to`. \
                   Catalogs are listed by the health worker; a version none of whose instances \
                   has been listed yet is a `404`.",
    params(
        ("service" = ServerId, Path, description = "The service"),
        ("from" = String, Query, description = "The old version"),
        ("to" = String, Query, description = "The new version"),
    ),
    responses(
        (status = 200, description = "The differences", body = VersionDiff),
        (status = 400, response = crate::error::responses::BadRequest),
        (status = 404, description = "The service has no entries, or no instance of a version has been listed yet (`not-found`)", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 503, response = crate::error::responses::DatabaseUnavailable),
    )
)]
pub(crate) async fn diff(
    State(state): State<AppState>,
    ServicePath(service): ServicePath,
    RawQuery(raw): RawQuery,
) -> Result<Response, ApiError> {
    let (from, to) = parse_diff_query(raw.as_deref())?;
    let old = listed_tools(&state, &service, &from).await?;
    let new = listed_tools(&state, &service, &to).await?;
    let missing = [(&from, old.is_none()), (&to, new.is_none())];
    let (Some(old), Some(new)) = (old, new) else {
        let versions = state.store().service_versions(&service).await?;
        let mut missing: Vec<String> = missing
            .into_iter()
            .filter(|(_, missing)| *missing)
            .map(|(v, _)| v.to_string())
            .collect();
        missing.dedup();
        return Err(ApiError::NotFound(if versions.is_empty() {
            format!("service \"{service}\" has no entries")
        } else {
            format!(
                "no instance of \"{service}\" at version {} has been listed yet (the health \
                 worker lists each instance's tools when it registers)",
                missing.join(" or ")
            )
        }));
    };
    let diff = diff_catalogs(&old, &new);
    json(
        StatusCode::OK,
        &VersionDiff {
            service,
            from,
            to,
            diff,
        },
    )
}

/// Holds `weights` to the stable version's catalog: every version with traffic is compared
/// with it. Versions without a listed catalog are `unknown`, never refused.
pub(super) async fn check(
    state: &AppState,
    service: &ServerId,
    weights: &BTreeMap<Version, u8>,
) -> Result<Option<ContractCheck>, ApiError> {
    let mut catalogs = BTreeMap::new();
    for version in weights.iter().filter(|(_, w)| **w > 0).map(|(v, _)| v) {
        if let Some(tools) = listed_tools(state, service, version).await? {
            catalogs.insert(version.clone(), tools);
        }
    }
    Ok(check_contract(weights, &catalogs))
}

/// The `409` refusal of a policy sending traffic to versions in `breaks`.
pub(super) fn refusal(service: &ServerId, breaks: Vec<ContractBreak>) -> ApiError {
    let mut versions: Vec<String> = breaks.iter().map(|b| b.version.to_string()).collect();
    versions.dedup();
    let stable = breaks
        .first()
        .map(|b| b.stable.to_string())
        .unwrap_or_default();
    let changes = if breaks.len() == 1 {
        "change"
    } else {
        "changes"
    };
    ApiError::BreakingContract {
        detail: format!(
            "{} of \"{service}\" would get traffic but {} the contract of the stable version \
             {stable} ({} breaking {changes}, listed in `breaking`); to route to {} anyway, set \
             allowBreaking.reason (mcp-fleet route set --allow-breaking REASON)",
            plural_versions(&versions),
            if versions.len() == 1 {
                "breaks"
            } else {
                "break"
            },
            breaks.len(),
            if versions.len() == 1 { "it" } else { "them" },
        ),
        breaks,
    }
}

fn plural_versions(versions: &[String]) -> String {
    match versions {
        [one] => format!("version {one}"),
        many => format!("versions {}", many.join(", ")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One row per query: the fields its problem names (none for a valid one).
    #[test]
    fn diff_queries() {
        let rows: [(Option<&str>, &[&str]); 8] = [
            (Some("from=1.0.0&to=1.1.0"), &[]),
            (None, &["from", "to"]),
            (Some("to=1.1.0"), &["from"]),
            (Some("from=1.0.0&to=latest"), &["to"]),
            (Some("from=&to=1.1.0"), &["from"]),
            (Some("from=1.0.0&to=1.1.0&x=1"), &["x"]),
            (Some("from=1.0.0&from=1.0.1&to=1.1.0"), &["from"]),
            (Some("from=v1&to=v2"), &["from", "to"]),
        ];
        for (raw, fields) in rows {
            let got = parse_diff_query(raw).err().map(|e| e.fields().join(","));
            let want = (!fields.is_empty()).then(|| fields.join(","));
            assert_eq!(got, want, "{raw:?}");
        }
    }
}
