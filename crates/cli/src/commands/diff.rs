//! `diff SERVICE FROM TO`: how a service's tool catalog changed between two versions, each
//! change breaking or compatible, as the registry compares the catalogs it listed.

use clap::Args;
use mcp_fleet_model::{Version, VersionDiff};

use super::client::RegistryArg;
use crate::output::{Grid, OutputArg};

/// Options of `diff`.
#[derive(Debug, Args)]
pub(crate) struct DiffArgs {
    #[command(flatten)]
    registry: RegistryArg,
    /// The service.
    service: String,
    /// The version clients were written for (`1.0.0`).
    from: String,
    /// The version compared with it (`1.1.0`).
    to: String,
    /// `json` and `yaml` print the registry's answer (`breaking`, `added`, `removed`,
    /// `changed`).
    #[command(flatten)]
    output: OutputArg,
}

fn version(arg: &str, text: &str) -> anyhow::Result<Version> {
    text.parse()
        .map_err(|e| anyhow::anyhow!("{arg} {text:?}: the version {e}"))
}

/// The table's rows: tools removed, then changes of changed tools, then tools added.
fn rows(diff: &VersionDiff) -> Vec<Vec<String>> {
    let yes_no = |b: bool| if b { "yes" } else { "no" }.to_owned();
    let mut rows = Vec::new();
    for tool in &diff.diff.removed {
        rows.push(vec![
            tool.clone(),
            "removed".to_owned(),
            yes_no(true),
            format!("Tool `{tool}` was removed."),
        ]);
    }
    for tool in &diff.diff.changed {
        for change in &tool.changes {
            rows.push(vec![
                tool.name.clone(),
                change.kind.to_string(),
                yes_no(change.breaking),
                change.message.clone(),
            ]);
        }
    }
    for tool in &diff.diff.added {
        rows.push(vec![
            tool.clone(),
            "added".to_owned(),
            yes_no(false),
            format!("Tool `{tool}` was added."),
        ]);
    }
    rows
}

/// The line under the table: whether a client of `from` can break on `to`, and why.
fn summary(diff: &VersionDiff) -> String {
    let d = &diff.diff;
    let (from, to) = (&diff.from, &diff.to);
    let count = |n: usize, what: &str| {
        let s = if n == 1 { "" } else { "s" };
        format!("{n} {what}{s}")
    };
    if d.breaking {
        let changes: usize = d
            .changed
            .iter()
            .map(|t| t.changes.iter().filter(|c| c.breaking).count())
            .sum();
        let mut why = Vec::new();
        if !d.removed.is_empty() {
            why.push(format!("{} removed", count(d.removed.len(), "tool")));
        }
        if changes > 0 {
            why.push(count(changes, "breaking change"));
        }
        format!(
            "BREAKING: a client written for {from} can break on {to} ({})",
            why.join(", ")
        )
    } else if d.added.is_empty() && d.changed.is_empty() {
        format!("no changes: {from} and {to} offer the same tools")
    } else {
        format!(
            "compatible: a client written for {from} works with {to} ({} added, {} changed)",
            count(d.added.len(), "tool"),
            count(d.changed.len(), "tool")
        )
    }
}

/// Runs `diff`. Its exit code is 0 whether the change breaks or not: the summary line (and
/// `breaking` in JSON) says which.
pub(crate) async fn run(args: DiffArgs) -> anyhow::Result<()> {
    let from = version("FROM", &args.from)?;
    let to = version("TO", &args.to)?;
    let diff = args
        .registry
        .client()?
        .diff(&args.service, &from, &to)
        .await?;
    if args.output.print_data(&diff)? {
        return Ok(());
    }
    let rows = rows(&diff);
    if !rows.is_empty() {
        let mut table = Grid::new(&["TOOL", "CHANGE", "BREAKING", "MESSAGE"]);
        table.gives_way(&["MESSAGE"]);
        for row in rows {
            table.add_row(row);
        }
        println!("{table}");
    }
    println!("{}", summary(&diff));
    Ok(())
}

#[cfg(test)]
mod tests {
    use mcp_fleet_model::{ToolDef, diff_catalogs};
    use serde_json::json;

    use super::*;

    fn diff(old: serde_json::Value, new: serde_json::Value) -> VersionDiff {
        let old: Vec<ToolDef> = serde_json::from_value(old).expect("old");
        let new: Vec<ToolDef> = serde_json::from_value(new).expect("new");
        VersionDiff {
            service: "inventory".parse().expect("service"),
            from: "1.0.0".parse().expect("from"),
            to: "2.0.0".parse().expect("to"),
            diff: diff_catalogs(&old, &new),
        }
    }

    #[test]
    fn rows_and_summaries() {
        let lookup = json!({"name": "lookup", "inputSchema": {"type": "object"}});
        let stock = json!({"name": "stock", "inputSchema": {"type": "object"}});
        let strict = json!({"name": "lookup", "inputSchema": {"type": "object",
            "properties": {"w": {"type": "string"}}, "required": ["w"]}});

        let breaking = diff(json!([lookup, stock]), json!([strict]));
        let all = rows(&breaking);
        let cells: Vec<[&str; 3]> = all
            .iter()
            .map(|r| [r[0].as_str(), r[1].as_str(), r[2].as_str()])
            .collect();
        assert_eq!(
            cells,
            [
                ["stock", "removed", "yes"],
                ["lookup", "propertyAdded", "no"],
                ["lookup", "requiredAdded", "yes"],
            ]
        );
        assert_eq!(
            summary(&breaking),
            "BREAKING: a client written for 1.0.0 can break on 2.0.0 (1 tool removed, 1 \
             breaking change)"
        );

        let compatible = diff(json!([lookup]), json!([lookup, stock]));
        assert_eq!(rows(&compatible)[0][..3], ["stock", "added", "no"]);
        assert_eq!(
            summary(&compatible),
            "compatible: a client written for 1.0.0 works with 2.0.0 (1 tool added, 0 tools \
             changed)"
        );
        let same = diff(json!([lookup]), json!([lookup]));
        assert!(rows(&same).is_empty());
        assert_eq!(
            summary(&same),
            "no changes: 1.0.0 and 2.0.0 offer the same tools"
        );
    }
}
