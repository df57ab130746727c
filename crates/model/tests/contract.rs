//! The contract comparison against its corpus (`fixtures/contract-corpus.json`): pairs of tool
//! definitions with the verdict and the change kinds expected. Every mismatch is reported at
//! once, so a change to the rules shows all it moves.

use std::collections::BTreeSet;

use mcp_fleet_model::{CatalogDiff, ChangeLocation, ToolDef, diff_catalogs, tool_hash};
use serde::Deserialize;
use serde_json::Value;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Corpus {
    #[allow(dead_code)]
    about: String,
    cases: Vec<Case>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Case {
    name: String,
    old: Option<ToolDef>,
    new: Option<ToolDef>,
    breaking: bool,
    kinds: Vec<String>,
    #[serde(default)]
    paths: Option<Vec<String>>,
}

fn corpus() -> Corpus {
    serde_json::from_str(include_str!("fixtures/contract-corpus.json")).expect("corpus parses")
}

fn diff(case: &Case) -> CatalogDiff {
    let old: Vec<ToolDef> = case.old.iter().cloned().collect();
    let new: Vec<ToolDef> = case.new.iter().cloned().collect();
    diff_catalogs(&old, &new)
}

/// The change kinds of a diff as the corpus spells them, sorted.
fn kinds(diff: &CatalogDiff) -> Vec<String> {
    let mut kinds: Vec<String> = diff
        .added
        .iter()
        .map(|_| "toolAdded".to_owned())
        .chain(diff.removed.iter().map(|_| "toolRemoved".to_owned()))
        .chain(diff.changed.iter().flat_map(|t| &t.changes).map(|c| {
            let Value::String(kind) = serde_json::to_value(c.kind).expect("a kind serializes")
            else {
                panic!("a change kind serializes as a string");
            };
            kind
        }))
        .collect();
    kinds.sort();
    kinds
}

fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v
}

#[test]
fn corpus_verdicts() {
    let corpus = corpus();
    assert!(corpus.cases.len() >= 30, "{} cases", corpus.cases.len());
    let mut names = BTreeSet::new();
    let mut mismatches = Vec::new();
    for case in &corpus.cases {
        assert!(names.insert(&case.name), "case {:?} twice", case.name);
        let diff = diff(case);
        let mut wrong = Vec::new();
        if diff.breaking != case.breaking {
            wrong.push(format!(
                "breaking: expected {}, got {}",
                case.breaking, diff.breaking
            ));
        }
        let got = kinds(&diff);
        if got != sorted(case.kinds.clone()) {
            wrong.push(format!(
                "kinds: expected {:?}, got {got:?}",
                sorted(case.kinds.clone())
            ));
        }
        if let Some(paths) = &case.paths {
            let got = sorted(
                diff.changed
                    .iter()
                    .flat_map(|t| &t.changes)
                    .map(|c| c.path.clone())
                    .collect(),
            );
            if got != sorted(paths.clone()) {
                wrong.push(format!(
                    "paths: expected {:?}, got {got:?}",
                    sorted(paths.clone())
                ));
            }
        }
        for tool in &diff.changed {
            if tool.changes.is_empty() || tool.breaking != tool.changes.iter().any(|c| c.breaking) {
                wrong.push(format!(
                    "tool {}: breaking disagrees with its changes",
                    tool.name
                ));
            }
            for change in &tool.changes {
                if change.message.is_empty() || !change.message.ends_with('.') {
                    wrong.push(format!("{:?}: message {:?}", change.kind, change.message));
                }
                if change.location == ChangeLocation::Tool && change.breaking {
                    wrong.push(format!("{:?}: a tool field change breaking", change.kind));
                }
            }
        }
        if !wrong.is_empty() {
            mismatches.push(format!(
                "{}:\n    {}\n    diff: {}",
                case.name,
                wrong.join("\n    "),
                serde_json::to_string(&diff).unwrap()
            ));
        }
    }
    assert!(
        mismatches.is_empty(),
        "{} of {} cases mismatched:\n{}",
        mismatches.len(),
        corpus.cases.len(),
        mismatches.join("\n")
    );
}

#[test]
fn every_tool_is_unchanged_against_itself() {
    for case in corpus().cases {
        for tool in case.old.iter().chain(&case.new) {
            let diff = diff_catalogs(std::slice::from_ref(tool), std::slice::from_ref(tool));
            assert!(
                !diff.breaking && diff.changed.is_empty() && diff.added.is_empty(),
                "{}: {diff:?}",
                case.name
            );
        }
    }
}

#[test]
fn hash_tells_changed_tools_apart() {
    // Every case with a change the comparison sees also changes the hash (the converse need
    // not hold: a reordered `required` hashes differently and compares equal).
    for case in corpus().cases {
        if let (Some(old), Some(new)) = (&case.old, &case.new)
            && !case.kinds.is_empty()
        {
            assert_ne!(tool_hash(old), tool_hash(new), "{}", case.name);
        }
    }
}

#[test]
fn whole_catalogs_sort_and_round_trip() {
    let corpus = corpus();
    // Give each case's tools a name of their own and compare the catalogs at once.
    let rename = |i: usize, tool: &ToolDef| ToolDef {
        name: format!("t{i:03}"),
        ..tool.clone()
    };
    let old: Vec<ToolDef> = corpus
        .cases
        .iter()
        .enumerate()
        .rev()
        .filter_map(|(i, c)| c.old.as_ref().map(|t| rename(i, t)))
        .collect();
    let new: Vec<ToolDef> = corpus
        .cases
        .iter()
        .enumerate()
        .filter_map(|(i, c)| c.new.as_ref().map(|t| rename(i, t)))
        .collect();
    let diff = diff_catalogs(&old, &new);
    assert!(diff.breaking);
    assert_eq!(
        diff.added.len(),
        corpus.cases.iter().filter(|c| c.old.is_none()).count()
    );
    assert_eq!(
        diff.removed.len(),
        corpus.cases.iter().filter(|c| c.new.is_none()).count()
    );
    let names: Vec<&str> = diff.changed.iter().map(|t| t.name.as_str()).collect();
    assert!(names.is_sorted(), "{names:?}");
    let expected_changed = corpus
        .cases
        .iter()
        .filter(|c| c.old.is_some() && c.new.is_some() && !c.kinds.is_empty())
        .count();
    assert_eq!(diff.changed.len(), expected_changed);
    let json = serde_json::to_value(&diff).unwrap();
    let back: CatalogDiff = serde_json::from_value(json).unwrap();
    assert_eq!(back, diff);
}
