//! The OpenAPI document (`GET /openapi.json`), generated from the handlers' `#[utoipa::path]`
//! attributes and the wire types' `ToSchema` derives, so it changes with the code. A test
//! checks that it describes every route of [`crate::api::table`].

use mcp_fleet_model::{Entry, ServerId, Version};
use serde::Serialize;
use utoipa::OpenApi;

use crate::api::{
    checks, contracts, docs, events, metrics, observations, page, policy, probes, servers,
    services, status, tools, v01,
};

/// The API's description.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "mcp-fleet registry",
        description = "A registry of MCP servers: servers register themselves, agents find them \
                       by tag, operators watch the fleet's health. Errors are RFC 7807 \
                       `application/problem+json` documents with a stable `code`."
    ),
    paths(
        page::index,
        servers::list,
        servers::register,
        servers::get_one,
        servers::replace,
        servers::remove,
        services::put_routing,
        services::get_routing,
        services::delete_routing,
        services::rollback,
        observations::observations,
        services::istio,
        contracts::diff,
        events::events,
        checks::check,
        checks::heartbeat,
        status::status,
        tools::search,
        tools::server_tools,
        tools::refresh,
        tools::pins,
        tools::accept,
        probes::healthz,
        probes::readyz,
        policy::address_policy,
        metrics::scrape,
        docs::openapi,
        v01::list,
        v01::versions,
        v01::version,
    ),
    components(
        schemas(crate::error::Problem<'static>),
        responses(
            crate::error::responses::BadRequest,
            crate::error::responses::EntryNotFound,
            crate::error::responses::PolicyNotFound,
            crate::error::responses::PayloadTooLarge,
            crate::error::responses::UnsupportedMediaType,
            crate::error::responses::DatabaseUnavailable,
        )
    ),
    tags(
        (name = "servers", description = "Register, list, look up and remove entries"),
        (name = "routing", description = "Services' routing policies: weights per version, rollback, Istio export"),
        (name = "tools", description = "The tool catalog: every server's tools, prompts and resources, searched by meaning; trusted tool hashes"),
        (name = "health", description = "The fleet's health: checks, heartbeats, status"),
        (name = "operations", description = "Running the registry: probes, metrics, this document, the status page"),
        (name = "official registry", description = "The official MCP Registry's v0.1 read API, for GitHub Copilot, VS Code and docker mcp"),
    )
)]
pub(crate) struct ApiDoc;

/// The body of `GET /servers`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ServerList {
    /// Matching entries, in id order.
    pub(crate) servers: Vec<Entry>,
    /// Present when more entries remain: pass it as `cursor` for the next page.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) next_cursor: Option<String>,
}

/// The body of a successful registration.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct Registered {
    /// The entry's id.
    pub(crate) id: ServerId,
}

/// The body of `POST /services/{service}/routing/rollback`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct RollbackRequest {
    /// The version to roll back; it must be in the policy's weights.
    pub(crate) version: Version,
    /// Why, for people reading the policy later (1–1,000 characters).
    #[schema(example = "error rate 0.31 vs 0.00 over 60s (112 calls)")]
    pub(crate) reason: String,
}

/// The document as JSON.
pub(crate) fn render() -> Result<Vec<u8>, serde_json::Error> {
    serde_json::to_vec(&ApiDoc::openapi())
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use axum::body::Body;
    use axum::http::{Method, Request, StatusCode};
    use serde_json::Value;
    use tower::ServiceExt;

    use super::*;
    use crate::{AppState, Config};

    const METHODS: [Method; 5] = [
        Method::GET,
        Method::POST,
        Method::PUT,
        Method::DELETE,
        Method::PATCH,
    ];

    /// `(method, path)` of every operation the router answers: each path of the route table,
    /// with each method that does not get `405` (a path parameter stands in as `x`).
    async fn routed() -> BTreeSet<(String, String)> {
        let store = mcp_fleet_store::connect("sqlite::memory:")
            .await
            .expect("store");
        let app = crate::router(AppState::new(store, Config::default()));
        let mut out = BTreeSet::new();
        for (path, _) in crate::api::table() {
            let concrete = path
                .split('/')
                .map(|seg| if seg.starts_with('{') { "x" } else { seg })
                .collect::<Vec<_>>()
                .join("/");
            for method in METHODS {
                let req = Request::builder()
                    .method(method.clone())
                    .uri(&concrete)
                    .body(Body::empty())
                    .expect("request");
                let res = app.clone().oneshot(req).await.expect("answer");
                if res.status() != StatusCode::METHOD_NOT_ALLOWED {
                    out.insert((method.as_str().to_lowercase(), path.to_owned()));
                }
            }
        }
        out
    }

    fn documented(doc: &Value) -> BTreeSet<(String, String)> {
        let mut out = BTreeSet::new();
        for (path, item) in doc["paths"].as_object().expect("paths") {
            for method in item.as_object().expect("path item").keys() {
                if METHODS
                    .iter()
                    .any(|m| m.as_str().eq_ignore_ascii_case(method))
                {
                    out.insert((method.clone(), path.clone()));
                }
            }
        }
        out
    }

    #[tokio::test]
    async fn every_route_is_documented_and_every_documented_route_exists() {
        let doc: Value = serde_json::from_slice(&render().expect("render")).expect("JSON");
        let routed = routed().await;
        let documented = documented(&doc);
        assert!(
            routed.len() >= 13,
            "route probing found too little: {routed:?}"
        );
        let missing: Vec<_> = routed.difference(&documented).collect();
        assert!(
            missing.is_empty(),
            "routes missing from /openapi.json (add #[utoipa::path] to the handler and list it \
             in openapi.rs): {missing:?}"
        );
        let stale: Vec<_> = documented.difference(&routed).collect();
        assert!(stale.is_empty(), "documented but not routed: {stale:?}");
    }

    #[test]
    fn every_referenced_schema_is_defined() {
        let text = String::from_utf8(render().expect("render")).expect("UTF-8");
        let doc: Value = serde_json::from_str(&text).expect("JSON");
        let schemas = doc["components"]["schemas"].as_object().expect("schemas");
        for part in text.split("\"$ref\":\"#/components/schemas/").skip(1) {
            let name = part.split('"').next().unwrap_or_default();
            assert!(schemas.contains_key(name), "undefined schema {name}");
        }
        for name in [
            "Entry",
            "Registration",
            "FleetStatus",
            "Problem",
            "ServerList",
            "Routing",
            "RoutingPolicy",
            "RollbackRule",
            "RollbackRecord",
            "RollbackRequest",
            "Observations",
            "SlotCounts",
            "ObservedTotals",
            "VersionTotals",
        ] {
            assert!(schemas.contains_key(name), "{name} is not described");
        }
        // Shared answers (`crate::error::responses`) are listed in `components(responses)`.
        let responses = doc["components"]["responses"]
            .as_object()
            .expect("responses");
        let mut shared = 0;
        for part in text.split("\"$ref\":\"#/components/responses/").skip(1) {
            let name = part.split('"').next().unwrap_or_default();
            assert!(responses.contains_key(name), "undefined response {name}");
            shared += 1;
        }
        assert!(shared >= 6, "only {shared} shared responses referenced");
        // The registration body names fields as clients send them.
        let reg = &schemas["Registration"];
        let required: BTreeSet<&str> = reg["required"]
            .as_array()
            .expect("required")
            .iter()
            .filter_map(Value::as_str)
            .collect();
        assert_eq!(required, BTreeSet::from(["id", "name", "url", "version"]));
        for field in ["healthUrl", "healthCheck", "ttlSeconds", "metadata", "tags"] {
            assert!(
                reg["properties"].get(field).is_some(),
                "Registration.{field}"
            );
        }
    }
}
