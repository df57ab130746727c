//! Which instance serves a call: the service's routing policy (weights by version, read from
//! the registry), the session's sticky version, outlier ejection, then round robin.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use mcp_fleet_model::{Routing, Version};

use crate::catalog::Instance;

/// When a canary is rolled back automatically: the registry's rule.
pub(crate) use mcp_fleet_model::RollbackRule;

/// A service's routing policy, as the registry's `GET /services/{service}/routing` has it.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Policy {
    /// Weight (0–100) by version.
    pub(crate) weights: Vec<(Version, u32)>,
    /// Automatic rollback, when set.
    pub(crate) rollback: Option<RollbackRule>,
    /// When the policy was last set (not by a rollback).
    pub(crate) updated_at: Option<DateTime<Utc>>,
}

impl From<&Routing> for Policy {
    fn from(doc: &Routing) -> Self {
        Self {
            // A BTreeMap: already in version order.
            weights: doc
                .weights
                .iter()
                .map(|(v, w)| (v.clone(), u32::from(*w)))
                .collect(),
            rollback: doc.rollback,
            updated_at: Some(doc.updated_at),
        }
    }
}

impl Policy {
    /// `version`'s weight (0 when the policy does not name it).
    pub(crate) fn weight(&self, version: &Version) -> u32 {
        self.weights
            .iter()
            .find(|(v, _)| v == version)
            .map_or(0, |(_, w)| *w)
    }

    /// The stable version: the one with the highest weight (the older one on a tie).
    pub(crate) fn stable(&self) -> Option<&Version> {
        let mut best: Option<&(Version, u32)> = None;
        for vw in &self.weights {
            if best.is_none_or(|b| vw.1 > b.1) {
                best = Some(vw);
            }
        }
        best.filter(|b| b.1 > 0).map(|b| &b.0)
    }

    /// Versions with traffic other than the stable one.
    pub(crate) fn canaries(&self) -> Vec<&Version> {
        let stable = self.stable();
        self.weights
            .iter()
            .filter(|(v, w)| *w > 0 && Some(v) != stable)
            .map(|(v, _)| v)
            .collect()
    }

    /// The policy after `canary` is rolled back: its weight goes to the stable version.
    pub(crate) fn without(&self, canary: &Version) -> Self {
        let mut next = self.clone();
        let moved = next.weight(canary);
        let stable = next.stable().cloned();
        for (v, w) in &mut next.weights {
            if v == canary {
                *w = 0;
            } else if Some(&*v) == stable.as_ref() {
                *w += moved;
            }
        }
        next
    }
}

/// Picks a version among `present` (each with its weight) at random by weight.
fn pick_weighted<'a>(present: &[(&'a Version, u32)], roll: u32) -> Option<&'a Version> {
    let total: u32 = present.iter().map(|(_, w)| w).sum();
    if total == 0 {
        return None;
    }
    let mut r = roll % total;
    for (v, w) in present {
        if r < *w {
            return Some(v);
        }
        r -= w;
    }
    None
}

/// Chooses who serves a call among `candidates` (the available instances offering the tool).
///
/// Ejected instances are skipped unless all are. With a policy, the session keeps its
/// `sticky` version while that version has weight and an instance; otherwise a version is
/// drawn by weight among those present, and kept. Within the version, instances take turns
/// (`turn`). Without a policy every candidate takes turns.
pub(crate) fn choose<'a, T: Copy>(
    candidates: &[(&'a Instance, T)],
    policy: Option<&Policy>,
    sticky: &mut Option<Version>,
    ejected: impl Fn(&str) -> bool,
    turn: usize,
    roll: u32,
) -> Option<(&'a Instance, T)> {
    let healthy: Vec<(&Instance, T)> = candidates
        .iter()
        .copied()
        .filter(|(i, _)| !ejected(&i.id))
        .collect();
    let healthy = if healthy.is_empty() {
        candidates.to_vec()
    } else {
        healthy
    };
    let pool: Vec<(&Instance, T)> = match policy {
        None => healthy,
        Some(policy) => {
            let has = |v: &Version| healthy.iter().any(|(i, _)| i.version.as_ref() == Some(v));
            let keep = sticky
                .as_ref()
                .filter(|v| policy.weight(v) > 0 && has(v))
                .cloned();
            let version = keep.or_else(|| {
                let mut present: HashMap<&Version, u32> = HashMap::new();
                for (i, _) in &healthy {
                    if let Some(v) = &i.version {
                        let w = policy.weight(v);
                        if w > 0 {
                            present.insert(v, w);
                        }
                    }
                }
                let mut present: Vec<(&Version, u32)> = present.into_iter().collect();
                present.sort();
                pick_weighted(&present, roll).cloned()
            });
            match version {
                Some(v) => {
                    let pool = healthy
                        .iter()
                        .copied()
                        .filter(|(i, _)| i.version.as_ref() == Some(&v))
                        .collect();
                    *sticky = Some(v);
                    pool
                }
                // The policy names no version that is here: any instance rather than none.
                None => healthy,
            }
        }
    };
    if pool.is_empty() {
        return None;
    }
    Some(pool[turn % pool.len()])
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn v(s: &str) -> Version {
        s.parse().expect("version")
    }

    fn inst(id: &str, version: &str) -> Instance {
        Instance {
            id: id.into(),
            version: Some(v(version)),
            available: true,
        }
    }

    fn policy(weights: &[(&str, u32)]) -> Policy {
        Policy {
            weights: weights.iter().map(|(s, w)| (v(s), *w)).collect(),
            rollback: None,
            updated_at: None,
        }
    }

    #[test]
    fn reads_the_registry_document() {
        let doc: Routing = serde_json::from_value(json!({
            "service": "cat", "weights": {"2.1.0": 10, "2.0.0": 90},
            "rollback": {"maxErrorRateDelta": 0.05, "window": "60s", "minRequests": 50},
            "updatedAt": "2026-11-25T10:00:00.000Z", "rolledBack": null
        }))
        .expect("a routing document");
        let p = Policy::from(&doc);
        assert_eq!(p.weights, vec![(v("2.0.0"), 90), (v("2.1.0"), 10)]);
        assert_eq!(p.stable(), Some(&v("2.0.0")));
        assert_eq!(p.canaries(), vec![&v("2.1.0")]);
        let rule = p.rollback.expect("rule");
        assert_eq!(rule.window, std::time::Duration::from_secs(60));
        assert_eq!(rule.min_requests, 50);
        let after = p.without(&v("2.1.0"));
        assert_eq!(after.weights, vec![(v("2.0.0"), 100), (v("2.1.0"), 0)]);
        assert!(after.canaries().is_empty());
    }

    #[test]
    fn sessions_keep_their_version_and_weights_are_honoured() {
        let a = inst("a", "1.0.0");
        let b = inst("b", "2.0.0");
        let cands = [(&a, ()), (&b, ())];
        let p = policy(&[("1.0.0", 90), ("2.0.0", 10)]);
        let mut counts = HashMap::new();
        for roll in 0..100 {
            let mut sticky = None;
            let (first, ()) =
                choose(&cands, Some(&p), &mut sticky, |_| false, 0, roll).expect("one");
            // Later calls of the session stay on its version, whatever the draw.
            for later in 0..5 {
                let (again, ()) = choose(
                    &cands,
                    Some(&p),
                    &mut sticky,
                    |_| false,
                    later,
                    roll + 37 * later as u32,
                )
                .expect("one");
                assert_eq!(again.id, first.id);
            }
            *counts.entry(first.id.clone()).or_insert(0) += 1;
        }
        assert_eq!(counts["a"], 90);
        assert_eq!(counts["b"], 10);
        // A rolled-back version loses its sessions too.
        let mut sticky = Some(v("2.0.0"));
        let rolled = p.without(&v("2.0.0"));
        let (now, ()) = choose(&cands, Some(&rolled), &mut sticky, |_| false, 0, 95).expect("one");
        assert_eq!(now.id, "a");
        assert_eq!(sticky, Some(v("1.0.0")));
    }

    #[test]
    fn ejected_instances_are_skipped_unless_all_are() {
        let a = inst("a", "1.0.0");
        let b = inst("b", "1.0.0");
        let cands = [(&a, ()), (&b, ())];
        let mut sticky = None;
        for turn in 0..4 {
            let (i, ()) = choose(&cands, None, &mut sticky, |id| id == "a", turn, 0).expect("one");
            assert_eq!(i.id, "b");
        }
        let (i, ()) = choose(&cands, None, &mut sticky, |_| true, 0, 0).expect("one");
        assert_eq!(i.id, "a");
        // Without ejections, turns alternate.
        let ids: Vec<_> = (0..4)
            .map(|t| {
                choose(&cands, None, &mut sticky, |_| false, t, 0)
                    .expect("one")
                    .0
                    .id
                    .clone()
            })
            .collect();
        assert_eq!(ids, ["a", "b", "a", "b"]);
    }
}
