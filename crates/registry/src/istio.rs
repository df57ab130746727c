//! A routing policy as Istio manifests: a `VirtualService` splitting the service's traffic by
//! weight across version subsets, and the `DestinationRule` defining those subsets.

use std::collections::BTreeMap;

use mcp_fleet_model::{Routing, subset_name};
use serde::Serialize;

/// The Istio API both manifests use.
const API_VERSION: &str = "networking.istio.io/v1";

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Resource<S> {
    api_version: &'static str,
    kind: &'static str,
    metadata: Metadata,
    spec: S,
}

#[derive(Serialize)]
struct Metadata {
    name: String,
}

#[derive(Serialize)]
struct VirtualServiceSpec {
    hosts: Vec<String>,
    http: Vec<HttpRoute>,
}

#[derive(Serialize)]
struct HttpRoute {
    route: Vec<RouteDestination>,
}

#[derive(Serialize)]
struct RouteDestination {
    destination: Destination,
    weight: u8,
}

#[derive(Serialize)]
struct Destination {
    host: String,
    subset: String,
}

#[derive(Serialize)]
struct DestinationRuleSpec {
    host: String,
    subsets: Vec<Subset>,
}

#[derive(Serialize)]
struct Subset {
    name: String,
    labels: BTreeMap<&'static str, String>,
}

/// The two manifests as one YAML stream (`---` between them). Every weighed version is listed,
/// also those at weight 0, so that a rolled-back version's subset stays defined.
pub(crate) fn manifests(routing: &Routing) -> Result<String, serde_yaml_ng::Error> {
    let host = routing.service.to_string();
    let virtual_service = Resource {
        api_version: API_VERSION,
        kind: "VirtualService",
        metadata: Metadata { name: host.clone() },
        spec: VirtualServiceSpec {
            hosts: vec![host.clone()],
            http: vec![HttpRoute {
                route: routing
                    .weights
                    .iter()
                    .map(|(version, &weight)| RouteDestination {
                        destination: Destination {
                            host: host.clone(),
                            subset: subset_name(version),
                        },
                        weight,
                    })
                    .collect(),
            }],
        },
    };
    let destination_rule = Resource {
        api_version: API_VERSION,
        kind: "DestinationRule",
        metadata: Metadata { name: host.clone() },
        spec: DestinationRuleSpec {
            host,
            subsets: routing
                .weights
                .keys()
                .map(|version| Subset {
                    name: subset_name(version),
                    labels: BTreeMap::from([("version", version.to_string())]),
                })
                .collect(),
        },
    };
    Ok(format!(
        "{}---\n{}",
        serde_yaml_ng::to_string(&virtual_service)?,
        serde_yaml_ng::to_string(&destination_rule)?
    ))
}

#[cfg(test)]
mod tests {
    use serde::Deserialize;
    use serde_json::json;

    use super::*;

    #[test]
    fn manifests_parse_back_with_the_weights_and_subsets() {
        let routing: Routing = serde_json::from_value(json!({
            "service": "catalog",
            "weights": {"2.0.0": 90, "2.1.0+b.1": 10},
            "updatedAt": "2026-01-01T00:00:00.000Z",
        }))
        .expect("routing");
        let text = manifests(&routing).expect("render");
        let docs: Vec<serde_json::Value> = serde_yaml_ng::Deserializer::from_str(&text)
            .map(|d| serde_json::Value::deserialize(d).expect("YAML document"))
            .collect();
        assert_eq!(docs.len(), 2, "{text}");
        let (vs, dr) = (&docs[0], &docs[1]);
        assert_eq!(vs["apiVersion"], API_VERSION);
        assert_eq!(vs["kind"], "VirtualService");
        assert_eq!(vs["metadata"]["name"], "catalog");
        assert_eq!(vs["spec"]["hosts"], json!(["catalog"]));
        assert_eq!(
            vs["spec"]["http"],
            json!([{"route": [
                {"destination": {"host": "catalog", "subset": "v2-0-0"}, "weight": 90},
                {"destination": {"host": "catalog", "subset": "v2-1-0-b-1"}, "weight": 10},
            ]}])
        );
        assert_eq!(dr["kind"], "DestinationRule");
        assert_eq!(dr["metadata"]["name"], "catalog");
        assert_eq!(dr["spec"]["host"], "catalog");
        assert_eq!(
            dr["spec"]["subsets"],
            json!([
                {"name": "v2-0-0", "labels": {"version": "2.0.0"}},
                {"name": "v2-1-0-b-1", "labels": {"version": "2.1.0+b.1"}},
            ])
        );
    }
}
