//! The schema migrations, one list for both backends: each backend has its own SQL files under
//! `migrations/<backend>/`, with the same numbers and names. A migration's version, name and
//! file contents (its checksum) never change once released: existing databases must still open.

use std::borrow::Cow;

use sqlx::SqlSafeStr;
use sqlx::migrate::{Migration, MigrationType, Migrator};

/// The migrations' versions and names, in version order. Versions are given, not counted, so
/// that a number once released is never reused.
const NAMES: [(i64, &str); 12] = [
    (1, "servers"),
    (2, "row version"),
    (3, "events"),
    (4, "service"),
    (5, "routing"),
    (6, "auth"),
    (7, "error detail"),
    (8, "health leases"),
    (9, "canary observations"),
    (10, "tool catalog"),
    (11, "catalog unpinned"),
    (12, "catalog search"),
];

/// The migrations of the backend whose SQL files `dir` names, from `migrations/<dir>/`.
macro_rules! migrations {
    ($dir:literal) => {
        $crate::migrate::migrator([
            include_str!(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/migrations/",
                $dir,
                "/0001_servers.sql"
            )),
            include_str!(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/migrations/",
                $dir,
                "/0002_row_version.sql"
            )),
            include_str!(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/migrations/",
                $dir,
                "/0003_events.sql"
            )),
            include_str!(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/migrations/",
                $dir,
                "/0004_service.sql"
            )),
            include_str!(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/migrations/",
                $dir,
                "/0005_routing.sql"
            )),
            include_str!(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/migrations/",
                $dir,
                "/0006_auth.sql"
            )),
            include_str!(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/migrations/",
                $dir,
                "/0007_error_detail.sql"
            )),
            include_str!(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/migrations/",
                $dir,
                "/0008_health_leases.sql"
            )),
            include_str!(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/migrations/",
                $dir,
                "/0009_canary_observations.sql"
            )),
            include_str!(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/migrations/",
                $dir,
                "/0010_tool_catalog.sql"
            )),
            include_str!(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/migrations/",
                $dir,
                "/0011_catalog_unpinned.sql"
            )),
            include_str!(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/migrations/",
                $dir,
                "/0012_catalog_search.sql"
            )),
        ])
    };
}
pub(crate) use migrations;

/// A migrator applying `sql`, the files of [`NAMES`] in order.
pub(crate) fn migrator(sql: [&'static str; NAMES.len()]) -> Migrator {
    Migrator::with_migrations(
        NAMES
            .into_iter()
            .zip(sql)
            .map(|((version, name), sql)| {
                Migration::new(
                    version,
                    Cow::Borrowed(name),
                    MigrationType::Simple,
                    sql.into_sql_str(),
                    false,
                )
            })
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each backend's files are the migrations [`NAMES`] lists, by number and name, so that a
    /// file added without its name (or the other backend's file) cannot go unnoticed.
    #[test]
    fn names_match_each_backends_files() {
        for dir in ["sqlite", "postgres"] {
            let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("migrations")
                .join(dir);
            let mut files: Vec<String> = std::fs::read_dir(&path)
                .expect("migrations directory")
                .map(|f| f.expect("entry").file_name().to_string_lossy().into_owned())
                .collect();
            files.sort();
            let want: Vec<String> = NAMES
                .into_iter()
                .map(|(n, name)| format!("{n:04}_{}.sql", name.replace(' ', "_")))
                .collect();
            assert_eq!(files, want, "{dir}");
        }
        let sqlite = migrations!("sqlite");
        let versions: Vec<(i64, &str)> = sqlite
            .iter()
            .map(|m| (m.version, m.description.as_ref()))
            .collect();
        assert_eq!(versions[1], (2, "row version"));
        assert_eq!(versions.len(), NAMES.len());
    }
}
