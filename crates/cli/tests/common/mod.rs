//! Spawning `mcp-fleet` and waiting for it, with deadlines.

use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader, Lines};
use tokio::process::{Child, ChildStdout, Command};

/// How long a process may take to start or stop.
pub(crate) const PROCESS_DEADLINE: Duration = Duration::from_secs(30);

/// The binary under test.
pub(crate) fn binary() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_mcp-fleet"));
    cmd.env_remove("MCP_FLEET_REGISTRY")
        .env_remove("MCP_FLEET_LISTEN")
        .env_remove("MCP_FLEET_DATABASE_URL")
        // Tables are as wide as their content unless a test sets a width.
        .env_remove("COLUMNS")
        // No config file of the person running the tests: only those a test writes.
        .env_remove("MCP_FLEET_CONFIG")
        .env("XDG_CONFIG_HOME", "/nonexistent/mcp-fleet-tests")
        .env("RUST_LOG", "warn,rmcp=off")
        .kill_on_drop(true);
    cmd
}

/// A running `mcp-fleet` process that printed `listening on URL`.
pub(crate) struct Running {
    pub(crate) child: Child,
    pub(crate) url: String,
    /// Kept open: a closed pipe would make the child's next print fail.
    _stdout: Lines<BufReader<ChildStdout>>,
    /// Lines printed before the `listening on` line.
    pub(crate) banner: Vec<String>,
}

/// Spawns `mcp-fleet ARGS` and waits for its `listening on http://…` line.
pub(crate) async fn spawn_listening(args: &[&str]) -> Running {
    let mut cmd = binary();
    cmd.args(args);
    spawn_command(cmd).await
}

/// Spawns `cmd` (from [`binary`], with its arguments, environment and stderr as the test wants)
/// and waits for its `listening on http://…` line.
pub(crate) async fn spawn_command(mut cmd: Command) -> Running {
    let args: Vec<_> = cmd.as_std().get_args().map(|a| a.to_owned()).collect();
    let mut child = cmd
        .stdout(Stdio::piped())
        .stdin(Stdio::null())
        .spawn()
        .expect("spawn mcp-fleet");
    let mut stdout = BufReader::new(child.stdout.take().expect("stdout")).lines();
    let mut banner = Vec::new();
    let url = tokio::time::timeout(PROCESS_DEADLINE, async {
        while let Some(line) = stdout.next_line().await.expect("read stdout") {
            if let Some(url) = line.strip_prefix("listening on ") {
                return url.trim().to_owned();
            }
            banner.push(line);
        }
        panic!("mcp-fleet {args:?} exited before listening: {banner:?}");
    })
    .await
    .expect("mcp-fleet did not start in time");
    Running {
        child,
        url,
        _stdout: stdout,
        banner,
    }
}

/// The command `mcp-fleet serve` on a free port over `database_url`, for a test to add to.
pub(crate) fn serve_command(database_url: &str) -> Command {
    let mut cmd = binary();
    cmd.args([
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--database-url",
        database_url,
    ]);
    cmd
}

/// `mcp-fleet serve` on a free port over `database_url`.
pub(crate) async fn serve(database_url: &str) -> Running {
    spawn_command(serve_command(database_url)).await
}

impl Running {
    /// Sends SIGTERM and waits for a clean exit.
    pub(crate) async fn terminate(mut self) {
        let pid = self.child.id().expect("pid");
        let status = std::process::Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status()
            .expect("run kill");
        assert!(status.success());
        let exit = tokio::time::timeout(PROCESS_DEADLINE, self.child.wait())
            .await
            .expect("did not stop after SIGTERM")
            .expect("wait");
        assert!(exit.success(), "exit after SIGTERM: {exit}");
    }

    /// SIGKILL: no chance to clean up.
    pub(crate) async fn kill_hard(mut self) {
        self.child.start_kill().expect("SIGKILL");
        tokio::time::timeout(PROCESS_DEADLINE, self.child.wait())
            .await
            .expect("did not die after SIGKILL")
            .expect("wait");
    }
}

/// The value of the unlabelled metric `name` on `url`'s `/metrics`; `None` while it does not
/// answer.
pub(crate) async fn metric(url: &str, name: &str) -> Option<u64> {
    let text = reqwest::get(format!("{url}/metrics"))
        .await
        .ok()?
        .text()
        .await
        .ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
}

/// Runs `mcp-fleet ARGS` to completion: (success, stdout, stderr).
pub(crate) async fn run(args: &[&str]) -> (bool, String, String) {
    let (code, out, err) = run_code(args).await;
    (code == Some(0), out, err)
}

/// Runs `mcp-fleet ARGS` to completion: (exit code, stdout, stderr).
pub(crate) async fn run_code(args: &[&str]) -> (Option<i32>, String, String) {
    let mut cmd = binary();
    cmd.args(args);
    run_command(cmd).await
}

/// Runs `cmd` (from [`binary`], with its arguments and environment) to completion: (exit code,
/// stdout, stderr).
pub(crate) async fn run_command(mut cmd: Command) -> (Option<i32>, String, String) {
    let out = tokio::time::timeout(PROCESS_DEADLINE, cmd.output())
        .await
        .expect("command timed out")
        .expect("run mcp-fleet");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}
