//! One `serve` per SQLite file: the process serving a file holds an exclusive lock on a file
//! beside it (`<file>-serve.lock`, which names that process), released by the OS when the
//! process ends however it ends. SQLite itself would take a second process's writes safely,
//! but the health work, read caches and change feed of two processes on one file would not
//! agree the way replicas on PostgreSQL do; a second `serve` is refused instead.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, Write};
use std::path::PathBuf;
use std::str::FromStr;

use sqlx::sqlite::SqliteConnectOptions;

use crate::StoreError;

/// The claim of one serving process on an SQLite file; held until dropped (or the process
/// ends).
#[derive(Debug)]
pub struct ServingClaim {
    _file: File,
    /// The lock file.
    pub path: PathBuf,
}

/// Claims the SQLite file `url` names for this process to serve; `Ok(None)` for other URLs and
/// in-memory databases. Fails, naming the file and the process that holds it, when another
/// process serves it.
pub fn claim_for_serving(url: &str) -> Result<Option<ServingClaim>, StoreError> {
    if !url.starts_with("sqlite:") || url.contains(":memory:") || url.contains("mode=memory") {
        return Ok(None);
    }
    let options = SqliteConnectOptions::from_str(url)
        .map_err(|e| StoreError::Config(format!("{url}: {e}")))?;
    let db = options.get_filename().to_path_buf();
    let mut name = db.file_name().unwrap_or_default().to_os_string();
    name.push("-serve.lock");
    let path = db.with_file_name(name);
    let io = |e: std::io::Error| StoreError::Config(format!("{}: {e}", path.display()));
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .map_err(io)?;
    match try_lock(&file) {
        Ok(true) => {}
        Ok(false) => {
            let mut holder = String::new();
            let _ = file.read_to_string(&mut holder);
            let holder = holder.trim();
            let holder = if holder.is_empty() {
                "another process".to_owned()
            } else {
                holder.to_owned()
            };
            return Err(StoreError::Config(format!(
                "{} is already served by {holder}: one SQLite file serves one `mcp-fleet serve`; \
                 stop that one first, or run several replicas on PostgreSQL (--database-url \
                 postgres://…)",
                db.display()
            )));
        }
        Err(e) => return Err(io(e)),
    }
    let who = format!(
        "`mcp-fleet serve` (pid {} on {}, lock file {})",
        std::process::id(),
        host_name(),
        path.display()
    );
    file.set_len(0).map_err(io)?;
    file.rewind().map_err(io)?;
    file.write_all(who.as_bytes()).map_err(io)?;
    file.flush().map_err(io)?;
    Ok(Some(ServingClaim { _file: file, path }))
}

/// Takes an exclusive lock on `file` if no other open file holds one; `false` when one does.
#[cfg(unix)]
fn try_lock(file: &File) -> std::io::Result<bool> {
    use rustix::fs::{FlockOperation, flock};
    match flock(file, FlockOperation::NonBlockingLockExclusive) {
        Ok(()) => Ok(true),
        Err(rustix::io::Errno::WOULDBLOCK) => Ok(false),
        Err(e) => Err(e.into()),
    }
}

/// No lock where `flock` is missing: a second `serve` there is not detected.
#[cfg(not(unix))]
fn try_lock(_file: &File) -> std::io::Result<bool> {
    Ok(true)
}

fn host_name() -> String {
    std::env::var("HOSTNAME")
        .ok()
        .or_else(|| std::fs::read_to_string("/proc/sys/kernel/hostname").ok())
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "this host".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_claim_on_a_file_is_refused_naming_the_first() {
        let dir = tempfile::tempdir().expect("dir");
        let url = format!("sqlite://{}", dir.path().join("r.db").display());
        let first = claim_for_serving(&url).expect("claim").expect("a file");
        let refused = claim_for_serving(&url).expect_err("claimed twice");
        let msg = refused.to_string();
        assert!(msg.contains("r.db is already served by"), "{msg}");
        assert!(
            msg.contains(&format!("pid {}", std::process::id())),
            "{msg}"
        );
        drop(first);
        assert!(claim_for_serving(&url).expect("claim").is_some());
        assert!(
            claim_for_serving("sqlite::memory:")
                .expect("memory")
                .is_none()
        );
        assert!(
            claim_for_serving("postgres://u@h/db")
                .expect("pg")
                .is_none()
        );
    }
}
