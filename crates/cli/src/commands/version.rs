//! `version`: what this binary is (version, git commit, build date, compiler, features).

/// The facts `mcp-fleet version` prints, one `key: value` line each, for people and `grep`.
pub(crate) fn lines() -> Vec<(&'static str, String)> {
    let features = env!("MCP_FLEET_BUILD_FEATURES");
    vec![
        ("version", env!("CARGO_PKG_VERSION").to_owned()),
        ("commit", env!("MCP_FLEET_BUILD_COMMIT").to_owned()),
        ("built", env!("MCP_FLEET_BUILD_DATE").to_owned()),
        ("profile", env!("MCP_FLEET_BUILD_PROFILE").to_owned()),
        ("rustc", env!("MCP_FLEET_BUILD_RUSTC").to_owned()),
        ("target", env!("MCP_FLEET_BUILD_TARGET").to_owned()),
        (
            "features",
            if features.is_empty() {
                "none".to_owned()
            } else {
                features.replace(',', ", ")
            },
        ),
        // Both backends are always built in; `--database-url` picks one.
        ("databases", "sqlite, postgres".to_owned()),
    ]
}

/// Prints [`lines`].
pub(crate) fn run() -> anyhow::Result<()> {
    use std::fmt::Write;
    let mut text = format!("mcp-fleet {}\n", env!("CARGO_PKG_VERSION"));
    for (key, value) in lines().into_iter().skip(1) {
        let _ = writeln!(text, "{:<10} {value}", format!("{key}:"));
    }
    crate::commands::completions::print(text.as_bytes())
        .map_err(|e| anyhow::anyhow!("cannot print the version: {e}"))
}
