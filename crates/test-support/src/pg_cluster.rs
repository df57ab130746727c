//! A PostgreSQL cluster of a test's own, which it may stop and start again (outage tests), as
//! `scripts/pg` makes one: `initdb` in a temporary directory, trust auth, a free loopback port;
//! as root it runs as the `postgres` user (or `mcpfleet-pg`, created on first use).

use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio::process::Command;

/// A running (or stopped) throwaway cluster; dropping it stops it and deletes its files.
#[derive(Debug)]
pub struct PgCluster {
    bindir: PathBuf,
    /// The OS user running the server; `None` when it is the current user.
    user: Option<String>,
    dir: tempfile::TempDir,
    port: u16,
}

fn has_server_bins(dir: &Path) -> bool {
    ["initdb", "pg_ctl", "postgres"]
        .iter()
        .all(|bin| dir.join(bin).is_file())
}

/// The directory holding `initdb`, `pg_ctl` and `postgres`, found as `scripts/pg` finds it.
fn find_bindir() -> Option<PathBuf> {
    if let Ok(out) = std::process::Command::new("pg_config")
        .arg("--bindir")
        .output()
    {
        let dir = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
        if out.status.success() && has_server_bins(&dir) {
            return Some(dir);
        }
    }
    // Debian and Ubuntu keep the server off PATH, one directory per major version.
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let major = e.file_name().to_str()?.parse().ok()?;
            Some((major, e.path().join("bin")))
        })
        .collect();
    versions.sort();
    if let Some((_, dir)) = versions.into_iter().rev().find(|(_, d)| has_server_bins(d)) {
        return Some(dir);
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path).find(|d| has_server_bins(d))
}

fn run(cmd: &mut std::process::Command) -> Result<String, String> {
    let out = cmd.output().map_err(|e| format!("{cmd:?}: {e}"))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
    } else {
        Err(format!(
            "{cmd:?}: {}: {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

/// The user to run the server as: `None` (ourselves) unless we are root, which initdb refuses.
fn pick_user() -> Result<Option<String>, String> {
    if run(std::process::Command::new("id").arg("-u"))? != "0" {
        return Ok(None);
    }
    for user in ["postgres", "mcpfleet-pg"] {
        if run(std::process::Command::new("id").args(["-u", user])).is_ok_and(|uid| uid != "0") {
            return Ok(Some(user.to_owned()));
        }
    }
    run(std::process::Command::new("useradd").args([
        "--system",
        "--user-group",
        "--no-create-home",
        "--home-dir",
        "/nonexistent",
        "--shell",
        "/usr/sbin/nologin",
        "mcpfleet-pg",
    ]))?;
    Ok(Some("mcpfleet-pg".to_owned()))
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("find a free port")
}

impl PgCluster {
    /// Creates and starts a cluster, or `None` when no PostgreSQL server binaries are installed
    /// (a panic under `CI=true`, where PostgreSQL tests must run).
    pub async fn start() -> Option<Self> {
        let Some(bindir) = find_bindir() else {
            if std::env::var("CI").is_ok_and(|v| v == "true") {
                panic!("no PostgreSQL server binaries (initdb, pg_ctl, postgres) under CI=true");
            }
            eprintln!("skipping: no PostgreSQL server binaries (initdb, pg_ctl, postgres) found");
            return None;
        };
        let user = pick_user().expect("pick the cluster's OS user");
        // Under /tmp rather than $TMPDIR: the server's user must reach it, and the unix socket
        // path must stay short.
        let dir = tempfile::Builder::new()
            .prefix("mcp-fleet-pg-test.")
            .tempdir_in("/tmp")
            .expect("create cluster dir");
        if let Some(user) = &user {
            run(std::process::Command::new("chown").args([
                "-R",
                &format!("{user}:"),
                &dir.path().display().to_string(),
            ]))
            .expect("chown cluster dir");
        }
        let mut cluster = Self {
            bindir,
            user,
            dir,
            port: 0,
        };
        let data = cluster.data().display().to_string();
        cluster
            .pg("initdb", &["-D", &data, "-U", "postgres", "-A", "trust"])
            .await
            .expect("initdb");
        let conf = format!(
            "\nlisten_addresses = '127.0.0.1'\nunix_socket_directories = '{}'\nfsync = on\n",
            cluster.dir.path().display()
        );
        use std::io::Write;
        std::fs::OpenOptions::new()
            .append(true)
            .open(cluster.data().join("postgresql.conf"))
            .and_then(|mut f| f.write_all(conf.as_bytes()))
            .expect("configure cluster");
        // The port is free when picked but may be taken before the server binds it.
        let mut last = String::new();
        for _ in 0..5 {
            cluster.port = free_port();
            match cluster.resume().await {
                Ok(()) => return Some(cluster),
                Err(e) => last = e,
            }
        }
        panic!("cannot start PostgreSQL: {last}");
    }

    fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// Runs the server binary `bin` with `args` as the cluster's user.
    async fn pg(&self, bin: &str, args: &[&str]) -> Result<(), String> {
        let program = self.bindir.join(bin);
        let mut cmd = match &self.user {
            Some(user) => {
                let mut cmd = Command::new("runuser");
                cmd.args(["-u", user, "--"]).arg(program);
                cmd
            }
            None => Command::new(program),
        };
        cmd.args(args)
            .current_dir(self.dir.path())
            .kill_on_drop(true);
        let out = tokio::time::timeout(Duration::from_secs(60), cmd.output())
            .await
            .map_err(|_| format!("{bin} {args:?} took over 60 s"))?
            .map_err(|e| format!("{bin}: {e}"))?;
        if out.status.success() {
            Ok(())
        } else {
            Err(format!(
                "{bin} {args:?}: {}: {}{}",
                out.status,
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ))
        }
    }

    /// The URL of its `postgres` database.
    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    /// Stops the server (`pg_ctl stop -m fast`: clients are disconnected, nothing committed is
    /// lost), waiting until it is down.
    pub async fn stop(&self) {
        let data = self.data().display().to_string();
        self.pg(
            "pg_ctl",
            &["-D", &data, "-m", "fast", "-w", "-t", "30", "stop"],
        )
        .await
        .expect("pg_ctl stop");
    }

    /// Starts the server again on the same port and data, waiting until it accepts connections.
    pub async fn resume(&self) -> Result<(), String> {
        let data = self.data().display().to_string();
        let log = self.dir.path().join("server.log").display().to_string();
        let port = format!("-p {}", self.port);
        let started = self
            .pg(
                "pg_ctl",
                &[
                    "-D", &data, "-l", &log, "-o", &port, "-w", "-t", "30", "start",
                ],
            )
            .await;
        started.map_err(|e| {
            let log = std::fs::read_to_string(self.dir.path().join("server.log"));
            format!("{e}\n{}", log.unwrap_or_default())
        })
    }
}

impl Drop for PgCluster {
    fn drop(&mut self) {
        let mut cmd = match &self.user {
            Some(user) => {
                let mut cmd = std::process::Command::new("runuser");
                cmd.args(["-u", user, "--"]).arg(self.bindir.join("pg_ctl"));
                cmd
            }
            None => std::process::Command::new(self.bindir.join("pg_ctl")),
        };
        let _ = cmd
            .arg("-D")
            .arg(self.data())
            .args(["-m", "immediate", "-w", "-t", "10", "stop"])
            .current_dir(self.dir.path())
            .output();
    }
}
