//! `/services/{service}/…`: a service's routing policy (set, read, delete), its rollback (what
//! the gateway calls when a canary trips) and its export as Istio manifests.
//!
//! Over 500 lines with its unit tests, which sit next to the code they check (64 of 521 lines).

use std::collections::BTreeSet;

use axum::extract::{Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::Utc;
use mcp_fleet_model::{
    FieldError, HealthStatus, RollbackError, Routing, RoutingPolicy, ServerId, ValidationErrors,
    Version,
};
use serde_json::Value;

use super::json;
use crate::AppState;
use crate::auth::Writer;
use crate::error::ApiError;
use crate::extract::{JsonBody, ServicePath};

/// Longest rollback `reason`, in characters.
const MAX_REASON_CHARS: usize = 1000;

/// Weights as a person reads them in a log line: `1.0.0=90, 1.1.0=10`.
fn weights_text(weights: &std::collections::BTreeMap<Version, u8>) -> String {
    let parts: Vec<String> = weights.iter().map(|(v, w)| format!("{v}={w}")).collect();
    parts.join(", ")
}

pub(super) fn no_policy(service: &ServerId) -> ApiError {
    ApiError::NotFound(format!(
        "service \"{service}\" has no routing policy; set one with PUT /services/{service}/routing"
    ))
}

/// Runs a store write in its own task, so that a client hanging up cannot cut it between commit
/// and cache invalidation; the cache is voided when `wrote` says the outcome is a write.
pub(super) async fn write<T, F>(
    state: &AppState,
    wrote: fn(&T) -> bool,
    op: impl FnOnce(AppState) -> F + Send + 'static,
) -> Result<T, ApiError>
where
    T: Send + 'static,
    F: Future<Output = Result<T, mcp_fleet_store::StoreError>> + Send + 'static,
{
    let task_state = state.clone();
    tokio::spawn(async move {
        let outcome = op(task_state.clone()).await;
        if outcome.as_ref().is_ok_and(wrote) {
            task_state.changed();
        }
        outcome
    })
    .await
    .map_err(|e| {
        tracing::error!(error = %e, "routing write task failed");
        ApiError::Internal
    })?
    .map_err(ApiError::from)
}

/// `PUT /services/{service}/routing`: set (or replace) the policy.
#[utoipa::path(
    put,
    path = "/services/{service}/routing",
    tag = "routing",
    summary = "Set a service's routing policy",
    description = "Splits the service's traffic across its versions by weight (percent, adding \
                   up to 100); each version must be that of an entry of the service. With \
                   `rollback`, the gateway rolls a version back on its own when its error rate \
                   exceeds the others' by more than `maxErrorRateDelta` over `window`, after \
                   `minRequests` calls. Replacing a policy clears its rollback record. The \
                   version with the highest weight (the lowest on a tie) is stable: a policy \
                   giving traffic to a version whose tool catalog breaks the stable version's \
                   (see `GET /services/{service}/diff`) is refused (`409`) unless it says \
                   `allowBreaking: {\"reason\": ...}`, which is recorded with who set it \
                   (`breakingAllowed`). Versions not listed yet are not refused (`contract.unknown`). \
                   Answered once durable.",
    params(("service" = ServerId, Path, description = "The service (the `service` of its entries)")),
    request_body(content = RoutingPolicy, content_type = "application/json"),
    responses(
        (status = 201, description = "Set; the service had no policy", body = Routing),
        (status = 200, description = "Replaced the service's policy", body = Routing),
        (status = 400, response = crate::error::responses::BadRequest),
        (status = 409, description = "A version given traffic breaks the stable version's contract and `allowBreaking` is not set (`breaking-contract`; every breaking change in `breaking`)", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 413, response = crate::error::responses::PayloadTooLarge),
        (status = 415, response = crate::error::responses::UnsupportedMediaType),
        (status = 503, response = crate::error::responses::DatabaseUnavailable),
    )
)]
pub(crate) async fn put_routing(
    State(state): State<AppState>,
    ServicePath(service): ServicePath,
    writer: Writer,
    JsonBody(body): JsonBody,
) -> Result<Response, ApiError> {
    let by = writer.allow(mcp_fleet_model::Scope::RoutingWrite, &[service.as_str()])?;
    let policy = RoutingPolicy::from_json(&body)?;
    let known: BTreeSet<Version> = state
        .store()
        .service_versions(&service)
        .await?
        .into_iter()
        .collect();
    let unknown: Vec<FieldError> = policy
        .weights
        .keys()
        .filter(|v| !known.contains(*v))
        .map(|v| {
            let listed: Vec<String> = known.iter().map(Version::to_string).collect();
            FieldError::new(
                format!("weights.{v}"),
                if listed.is_empty() {
                    format!(
                        "no entry of service \"{service}\" has this version (it has no entries)"
                    )
                } else {
                    format!(
                        "no entry of service \"{service}\" has this version; its versions are {}",
                        listed.join(", ")
                    )
                },
            )
        })
        .collect();
    if !unknown.is_empty() {
        return Err(ApiError::Validation(ValidationErrors(unknown)));
    }
    let check = super::contracts::check(&state, &service, &policy.weights).await?;
    let allow = policy.allow_breaking.clone();
    let doc = Routing::new(service.clone(), policy, by.as_deref(), Utc::now())
        .held_to(check, allow.as_ref())
        .map_err(|breaks| super::contracts::refusal(&service, breaks))?;
    let task_doc = doc.clone();
    let created = write(
        &state,
        |_| true,
        move |s| async move { s.store().put_routing(&task_doc).await },
    )
    .await?;
    tracing::info!(%service, created, weights = %weights_text(&doc.weights), "routing policy set");
    for allowed in &doc.breaking_allowed {
        tracing::warn!(
            %service,
            version = %allowed.version,
            stable = %doc.contract.as_ref().map(|c| c.stable.to_string()).unwrap_or_default(),
            by = allowed.by.as_deref().unwrap_or("-"),
            reason = %allowed.reason,
            "traffic allowed to a version that breaks the stable version's contract"
        );
    }
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    json(status, &doc)
}

/// `GET /services/{service}/routing`
#[utoipa::path(
    get,
    path = "/services/{service}/routing",
    tag = "routing",
    summary = "Read a service's routing policy",
    params(("service" = ServerId, Path, description = "The service")),
    responses(
        (status = 200, description = "The policy, with the last rollback since it was set", body = Routing),
        (status = 400, response = crate::error::responses::BadRequest),
        (status = 404, response = crate::error::responses::PolicyNotFound),
        (status = 503, response = crate::error::responses::DatabaseUnavailable),
    )
)]
pub(crate) async fn get_routing(
    State(state): State<AppState>,
    ServicePath(service): ServicePath,
) -> Result<Response, ApiError> {
    match state.store().get_routing(&service).await? {
        Some(doc) => json(StatusCode::OK, &doc),
        None => Err(no_policy(&service)),
    }
}

/// `DELETE /services/{service}/routing`: `204`, or `404` when there is no policy.
#[utoipa::path(
    delete,
    path = "/services/{service}/routing",
    tag = "routing",
    summary = "Delete a service's routing policy",
    description = "Without a policy the gateway spreads calls over all of the service's instances.",
    params(("service" = ServerId, Path, description = "The service")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 400, response = crate::error::responses::BadRequest),
        (status = 404, response = crate::error::responses::PolicyNotFound),
        (status = 503, response = crate::error::responses::DatabaseUnavailable),
    )
)]
pub(crate) async fn delete_routing(
    State(state): State<AppState>,
    ServicePath(service): ServicePath,
    writer: Writer,
) -> Result<Response, ApiError> {
    writer.allow(mcp_fleet_model::Scope::RoutingWrite, &[service.as_str()])?;
    let task_service = service.clone();
    let deleted = write(
        &state,
        |deleted| *deleted,
        move |s| async move { s.store().delete_routing(&task_service).await },
    )
    .await?;
    if deleted {
        tracing::info!(%service, "routing policy deleted");
        Ok(StatusCode::NO_CONTENT.into_response())
    } else {
        Err(no_policy(&service))
    }
}

/// Parses a rollback body: `{"version": "2.1.0", "reason": "…"}`.
fn parse_rollback(body: &Value) -> Result<(Version, String), ValidationErrors> {
    let Value::Object(obj) = body else {
        return Err(ValidationErrors::one("body", "must be a JSON object"));
    };
    let mut errors: Vec<FieldError> = obj
        .keys()
        .filter(|k| !matches!(k.as_str(), "version" | "reason"))
        .map(|k| FieldError::new(k, "unknown field"))
        .collect();
    let version = match obj.get("version") {
        Some(Value::String(s)) => s
            .parse::<Version>()
            .map_err(|e| errors.push(FieldError::new("version", e)))
            .ok(),
        Some(_) => {
            errors.push(FieldError::new("version", "must be a string"));
            None
        }
        None => {
            errors.push(FieldError::new("version", "is required"));
            None
        }
    };
    let reason = match obj.get("reason") {
        Some(Value::String(s)) if !s.trim().is_empty() => {
            let n = s.chars().count();
            if n > MAX_REASON_CHARS {
                errors.push(FieldError::new(
                    "reason",
                    format!("must be at most {MAX_REASON_CHARS} characters, got {n}"),
                ));
            }
            Some(s.clone())
        }
        Some(Value::String(_)) => {
            errors.push(FieldError::new("reason", "must not be empty"));
            None
        }
        Some(_) => {
            errors.push(FieldError::new("reason", "must be a string"));
            None
        }
        None => {
            errors.push(FieldError::new("reason", "is required"));
            None
        }
    };
    match (version, reason) {
        (Some(v), Some(r)) if errors.is_empty() => Ok((v, r)),
        _ => Err(ValidationErrors(errors)),
    }
}

/// `POST /services/{service}/routing/rollback`: set a version's weight to 0.
#[utoipa::path(
    post,
    path = "/services/{service}/routing/rollback",
    tag = "routing",
    summary = "Roll a version back",
    description = "Sets the version's weight to 0 and gives it to the other version with the \
                   highest weight, recording the version, the reason and the weights before. \
                   What the gateway calls when its canary analysis trips. A version already at \
                   0 is left as it is (`200`, unchanged). Refused (`409`) when every version \
                   left with traffic was itself rolled back (weight 0 before) or has no \
                   instance that is not `down`, unless `force=true`. Answered once durable.",
    params(
        ("service" = ServerId, Path, description = "The service"),
        ("force" = Option<bool>, Query, description = "Roll back even when the versions left with traffic were rolled back or have no instance up"),
    ),
    request_body(content = crate::openapi::RollbackRequest, content_type = "application/json"),
    responses(
        (status = 200, description = "The updated policy", body = Routing),
        (status = 400, description = "Invalid fields, or the version is not in the weights (`validation-failed`)", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 404, response = crate::error::responses::PolicyNotFound),
        (status = 409, description = "The version is the only one in the weights, or the versions left with traffic were rolled back or have no instance up and `force` is not set (`conflict`)", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 415, response = crate::error::responses::UnsupportedMediaType),
        (status = 503, response = crate::error::responses::DatabaseUnavailable),
    )
)]
pub(crate) async fn rollback(
    State(state): State<AppState>,
    ServicePath(service): ServicePath,
    writer: Writer,
    query: Result<Query<RollbackQuery>, axum::extract::rejection::QueryRejection>,
    JsonBody(body): JsonBody,
) -> Result<Response, ApiError> {
    let by = writer.allow(mcp_fleet_model::Scope::RoutingWrite, &[service.as_str()])?;
    let force = match query {
        Ok(Query(q)) => q.force.unwrap_or(false),
        Err(_) => return Err(ApiError::field("force", "must be true or false")),
    };
    let (version, reason) = parse_rollback(&body)?;
    // Checked on the current document first, so that a rollback that cannot apply is the
    // caller's mistake; the store applies it to the document as it is when it writes.
    let Some(mut current) = state.store().get_routing(&service).await? else {
        return Err(no_policy(&service));
    };
    let before = current.weights.clone();
    match current.roll_back(&version, &reason, by.as_deref(), Utc::now()) {
        Err(e @ RollbackError::UnknownVersion(_)) => {
            return Err(ApiError::field("version", e.to_string()));
        }
        Err(e @ RollbackError::OnlyVersion(_)) => return Err(ApiError::Conflict(e.to_string())),
        Ok(changed) => {
            if changed && !force {
                check_heirs(&state, &service, &version, &before, &current.weights).await?;
            }
        }
    }
    let (task_service, task_version, task_reason) =
        (service.clone(), version.clone(), reason.clone());
    let doc = write(
        &state,
        |doc: &Option<Routing>| doc.is_some(),
        move |s| async move {
            s.store()
                .record_rollback(
                    &task_service,
                    &task_version,
                    &task_reason,
                    by.as_deref(),
                    Utc::now(),
                )
                .await
        },
    )
    .await?
    .ok_or_else(|| no_policy(&service))?;
    tracing::warn!(%service, %version, %reason, weights = %weights_text(&doc.weights), "rolled back");
    json(StatusCode::OK, &doc)
}

/// The query of `POST /services/{service}/routing/rollback`.
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RollbackQuery {
    force: Option<bool>,
}

/// Why a version left with traffic after a rollback cannot take it, if it cannot.
fn unfit(version: &Version, before: u8, statuses: &[HealthStatus]) -> Option<String> {
    if before == 0 {
        Some(format!("{version} was itself rolled back (weight 0)"))
    } else if statuses.is_empty() {
        Some(format!("{version} has no instance"))
    } else if statuses.iter().all(|s| *s == HealthStatus::Down) {
        Some(format!("{version} has no instance up (all down)"))
    } else {
        None
    }
}

/// Refuses (`409`) a rollback of `version` after which every version with traffic (`after`) was
/// rolled back itself (weight 0 in `before`) or has no instance that is not down.
async fn check_heirs(
    state: &AppState,
    service: &ServerId,
    version: &Version,
    before: &std::collections::BTreeMap<Version, u8>,
    after: &std::collections::BTreeMap<Version, u8>,
) -> Result<(), ApiError> {
    let page = state
        .store()
        .list(&mcp_fleet_store::ListQuery {
            service: Some(service.clone()),
            status: mcp_fleet_model::StatusFilter::Any,
            limit: mcp_fleet_store::MAX_PAGE,
            ..Default::default()
        })
        .await?;
    let mut reasons = Vec::new();
    for (v, w) in after {
        if *w == 0 {
            continue;
        }
        let statuses: Vec<HealthStatus> = page
            .entries
            .iter()
            .filter(|e| &e.version == v)
            .map(|e| e.status)
            .collect();
        match unfit(v, before.get(v).copied().unwrap_or(0), &statuses) {
            Some(why) => reasons.push(why),
            None => return Ok(()),
        }
    }
    Err(ApiError::Conflict(format!(
        "rolling back {version} of \"{service}\" would send its traffic only to versions that \
         cannot take it: {}; pass force=true (route rollback --force) to roll back anyway",
        reasons.join("; ")
    )))
}

/// `GET /services/{service}/istio`: the policy as an Istio `VirtualService` and
/// `DestinationRule`.
#[utoipa::path(
    get,
    path = "/services/{service}/istio",
    tag = "routing",
    summary = "Export a service's routing policy as Istio manifests",
    description = "Two YAML documents separated by `---`: a `networking.istio.io/v1` \
                   `VirtualService` named and hosting `<service>`, with one HTTP route whose \
                   destinations are the subsets `v<version, . and + as ->` at the policy's \
                   weights, and a `DestinationRule` defining each subset by the pod label \
                   `version: <version>`.",
    params(("service" = ServerId, Path, description = "The service")),
    responses(
        (status = 200, description = "The manifests", body = String, content_type = "application/yaml"),
        (status = 400, response = crate::error::responses::BadRequest),
        (status = 404, response = crate::error::responses::PolicyNotFound),
        (status = 503, response = crate::error::responses::DatabaseUnavailable),
    )
)]
pub(crate) async fn istio(
    State(state): State<AppState>,
    ServicePath(service): ServicePath,
) -> Result<Response, ApiError> {
    let Some(doc) = state.store().get_routing(&service).await? else {
        return Err(no_policy(&service));
    };
    let yaml = crate::istio::manifests(&doc).map_err(|e| {
        tracing::error!(error = %e, "cannot render Istio manifests");
        ApiError::Internal
    })?;
    let mut res = (StatusCode::OK, yaml).into_response();
    res.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/yaml"),
    );
    Ok(res)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    /// One row per body: the fields its problem names (none for a valid body).
    #[test]
    fn rollback_bodies() {
        let long = "r".repeat(MAX_REASON_CHARS + 1);
        let rows: Vec<(Value, Vec<&str>)> = vec![
            (json!({"version": "2.1.0", "reason": "errors"}), vec![]),
            (
                json!({"version": "latest", "reason": "errors"}),
                vec!["version"],
            ),
            (json!({"version": 2, "reason": "errors"}), vec!["version"]),
            (json!({"reason": "errors"}), vec!["version"]),
            (json!({"version": "2.1.0"}), vec!["reason"]),
            (json!({"version": "2.1.0", "reason": " "}), vec!["reason"]),
            (json!({"version": "2.1.0", "reason": long}), vec!["reason"]),
            (
                json!({"version": "2.1.0", "reason": "e", "x": 1}),
                vec!["x"],
            ),
            (json!([]), vec!["body"]),
        ];
        for (body, fields) in rows {
            let got = parse_rollback(&body).err().map(|e| e.fields().join(","));
            let want = (!fields.is_empty()).then(|| fields.join(","));
            assert_eq!(got, want, "{body}");
        }
    }

    /// A version left with traffic can take it unless it was rolled back (weight 0 before), has
    /// no instance, or has only instances that are down; unchecked instances count as up.
    #[test]
    fn versions_that_cannot_take_traffic() {
        use HealthStatus::{Degraded, Down, Healthy, Unknown};
        let v: Version = "2.1.0".parse().expect("version");
        let rows: [(u8, &[HealthStatus], Option<&str>); 6] = [
            (10, &[Healthy], None),
            (10, &[Down, Degraded], None),
            (10, &[Unknown], None),
            (
                0,
                &[Healthy],
                Some("2.1.0 was itself rolled back (weight 0)"),
            ),
            (10, &[], Some("2.1.0 has no instance")),
            (
                10,
                &[Down, Down],
                Some("2.1.0 has no instance up (all down)"),
            ),
        ];
        for (before, statuses, want) in rows {
            assert_eq!(
                unfit(&v, before, statuses).as_deref(),
                want,
                "{before} {statuses:?}"
            );
        }
    }
}
