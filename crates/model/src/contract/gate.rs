//! The contract gate of a routing policy: which version is stable (its catalog is the contract
//! the others are held to), and which versions given traffic would break it. Pure: weights and
//! catalogs in, a verdict out; the registry reads the catalogs and records the verdict.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{ChangeLocation, ToolDef, diff_catalogs};
use crate::ids::Version;
use crate::time::{Timestamp, serde_ts};

/// How a policy's versions stand against its stable version's catalog, as recorded in the
/// routing document when the policy is set (`contract`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct RoutingContract {
    /// The version whose catalog is the contract: the one with the highest weight (the lowest
    /// such version on a tie).
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub stable: Version,
    /// Versions with traffic whose catalog breaks the stable version's (sent traffic only with
    /// `allowBreaking`).
    #[cfg_attr(feature = "openapi", schema(value_type = Vec<String>))]
    #[serde(default)]
    pub breaking: Vec<Version>,
    /// Versions with traffic that could not be compared: it, or the stable version, has no
    /// listed catalog yet (its contract is unknown).
    #[cfg_attr(feature = "openapi", schema(value_type = Vec<String>))]
    #[serde(default)]
    pub unknown: Vec<Version>,
}

/// A breaking version sent traffic on purpose: who allowed it, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct BreakingAllowed {
    /// The version that breaks the stable version's contract.
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub version: Version,
    /// Who set the policy: a token id or OIDC subject (`null` while writes are open).
    #[serde(default)]
    pub by: Option<String>,
    /// Why, as the caller put it (`allowBreaking.reason`).
    pub reason: String,
    /// When.
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    #[serde(with = "serde_ts")]
    pub at: Timestamp,
}

/// One breaking change that keeps a version from getting traffic: listed in the `409` problem
/// of `PUT /services/{service}/routing` (`breaking`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct ContractBreak {
    /// The version refused.
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub version: Version,
    /// The stable version whose contract it breaks.
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub stable: Version,
    /// The tool.
    pub tool: String,
    /// The part of the tool that changed; absent when the tool was removed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location: Option<ChangeLocation>,
    /// Where within that part (`/properties/sku`; empty for the whole).
    pub path: String,
    /// The change in words.
    pub message: String,
}

/// The verdict of [`check_contract`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContractCheck {
    /// What the routing document records.
    pub contract: RoutingContract,
    /// Every breaking change of every breaking version, by version then tool.
    pub breaks: Vec<ContractBreak>,
}

/// The stable version of `weights`: the highest weight, the lowest version on a tie (the rule a
/// rollback picks its heir by). `None` only when `weights` is empty.
pub fn stable_version(weights: &BTreeMap<Version, u8>) -> Option<&Version> {
    weights
        .iter()
        .max_by(|a, b| a.1.cmp(b.1).then_with(|| b.0.cmp(a.0)))
        .map(|(v, _)| v)
}

/// Holds every version with traffic in `weights` to the stable version's catalog. `catalogs`
/// has the tools of each version that has a listed catalog; a version without one (or any
/// version, when the stable one has none) is `unknown`, never refused. `None` when `weights` is
/// empty.
pub fn check_contract(
    weights: &BTreeMap<Version, u8>,
    catalogs: &BTreeMap<Version, Vec<ToolDef>>,
) -> Option<ContractCheck> {
    let stable = stable_version(weights)?;
    let mut contract = RoutingContract {
        stable: stable.clone(),
        breaking: Vec::new(),
        unknown: Vec::new(),
    };
    let mut breaks = Vec::new();
    for (version, _) in weights.iter().filter(|(v, w)| **w > 0 && *v != stable) {
        let (Some(old), Some(new)) = (catalogs.get(stable), catalogs.get(version)) else {
            contract.unknown.push(version.clone());
            continue;
        };
        let diff = diff_catalogs(old, new);
        if !diff.breaking {
            continue;
        }
        contract.breaking.push(version.clone());
        let at = |tool: &str, location, path: &str, message: String| ContractBreak {
            version: version.clone(),
            stable: stable.clone(),
            tool: tool.to_owned(),
            location,
            path: path.to_owned(),
            message,
        };
        for tool in &diff.removed {
            breaks.push(at(tool, None, "", format!("Tool `{tool}` was removed.")));
        }
        for change in diff.changed.iter().filter(|c| c.breaking) {
            for c in change.changes.iter().filter(|c| c.breaking) {
                breaks.push(at(
                    &change.name,
                    Some(c.location),
                    &c.path,
                    c.message.clone(),
                ));
            }
        }
    }
    Some(ContractCheck { contract, breaks })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn v(s: &str) -> Version {
        s.parse().expect("version")
    }

    fn weights(pairs: &[(&str, u8)]) -> BTreeMap<Version, u8> {
        pairs.iter().map(|(k, w)| (v(k), *w)).collect()
    }

    fn tools(value: serde_json::Value) -> Vec<ToolDef> {
        serde_json::from_value(value).expect("tools")
    }

    #[test]
    fn the_stable_version_is_the_heaviest_then_the_lowest() {
        let rows: [(&[(&str, u8)], &str); 4] = [
            (&[("1.0.0", 90), ("1.1.0", 10)], "1.0.0"),
            (&[("1.0.0", 10), ("1.1.0", 90)], "1.1.0"),
            (&[("1.0.0", 50), ("1.1.0", 50)], "1.0.0"),
            (&[("1.0.0", 20), ("2.0.0", 40), ("3.0.0", 40)], "2.0.0"),
        ];
        for (pairs, want) in rows {
            assert_eq!(stable_version(&weights(pairs)), Some(&v(want)), "{pairs:?}");
        }
        assert_eq!(stable_version(&BTreeMap::new()), None);
    }

    /// Breaking versions with traffic are listed with every breaking change; compatible ones,
    /// versions at weight 0 and the stable version itself are not; versions without a catalog
    /// are unknown.
    #[test]
    fn versions_with_traffic_are_held_to_the_stable_catalog() {
        let stable = tools(json!([
            {"name": "lookup", "inputSchema": {"type": "object",
                "properties": {"sku": {"type": "string"}}}},
            {"name": "stock", "inputSchema": {"type": "object"}}
        ]));
        let compatible = tools(json!([
            {"name": "lookup", "description": "Find.", "inputSchema": {"type": "object",
                "properties": {"sku": {"type": "string"}}}},
            {"name": "stock", "inputSchema": {"type": "object"}},
            {"name": "reserve", "inputSchema": {"type": "object"}}
        ]));
        let breaking = tools(json!([
            {"name": "lookup", "inputSchema": {"type": "object",
                "properties": {"sku": {"type": "string"}, "warehouse": {"type": "string"}},
                "required": ["warehouse"]}}
        ]));
        let catalogs = BTreeMap::from([
            (v("1.0.0"), stable),
            (v("1.1.0"), compatible),
            (v("2.0.0"), breaking.clone()),
            (v("2.1.0"), breaking),
        ]);
        let w = weights(&[
            ("1.0.0", 70),
            ("1.1.0", 10),
            ("2.0.0", 10),
            ("2.1.0", 0),
            ("3.0.0", 10),
        ]);
        let check = check_contract(&w, &catalogs).expect("weights");
        assert_eq!(
            check.contract,
            RoutingContract {
                stable: v("1.0.0"),
                breaking: vec![v("2.0.0")],
                unknown: vec![v("3.0.0")],
            }
        );
        let got: Vec<(&str, &str, Option<ChangeLocation>, &str)> = check
            .breaks
            .iter()
            .map(|b| {
                assert_eq!((&b.version, &b.stable), (&v("2.0.0"), &v("1.0.0")));
                (
                    b.tool.as_str(),
                    b.path.as_str(),
                    b.location,
                    b.message.as_str(),
                )
            })
            .collect();
        assert_eq!(
            got,
            [
                ("stock", "", None, "Tool `stock` was removed."),
                (
                    "lookup",
                    "/properties/warehouse",
                    Some(ChangeLocation::Input),
                    "Property `warehouse` of the input schema is now required."
                ),
            ]
        );

        // Without the stable version's catalog nothing can be compared, nothing is refused.
        let mut without = catalogs.clone();
        without.remove(&v("1.0.0"));
        let check = check_contract(&w, &without).expect("weights");
        assert!(check.breaks.is_empty());
        assert_eq!(check.contract.unknown, [v("1.1.0"), v("2.0.0"), v("3.0.0")]);
    }
}
