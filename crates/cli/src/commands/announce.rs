//! `mcp-fleet announce`: runs any MCP server as a child and keeps it registered while it runs.
//!
//! The child is started, registered once `<url>/mcp` answers, kept registered by heartbeats
//! (registered again when the registry forgets it), and deregistered when it exits or when a
//! SIGTERM or SIGINT arrives (forwarded to it). The command exits with the child's exit code.

use std::ffi::OsString;
use std::path::PathBuf;
use std::process::{ExitCode, ExitStatus};
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use mcp_fleet_announce::{AnnounceError, Announcement, Announcer};
use serde_json::Value;
use tokio::process::{Child, Command};
use tokio::task::JoinHandle;

use crate::commands::client::{RegistryArg, read_file};

/// How long a child stopped by announce itself (its server never answered, or the registry
/// refused the entry) has between SIGTERM and SIGKILL.
const STOP_GRACE: Duration = Duration::from_secs(10);

/// Options of `announce`.
#[derive(Debug, Args)]
pub(crate) struct AnnounceArgs {
    #[command(flatten)]
    registry: RegistryArg,
    /// The entry to register, as JSON (the format of `register --file`; `-` reads standard
    /// input). Its `url` is where the child serves: MCP at `<url>/mcp`.
    #[arg(long, short)]
    file: PathBuf,
    /// The entry's TTL (`ttlSeconds`; default: the file's, else 30s), 5s to 24h; a heartbeat
    /// goes out every third of it.
    #[arg(long, value_parser = humantime::parse_duration)]
    ttl: Option<Duration>,
    /// How long the child may take until its MCP endpoint answers; then it is stopped.
    #[arg(long, default_value = "30s", value_parser = humantime::parse_duration)]
    ready_timeout: Duration,
    /// The server's command and its arguments, after `--`.
    #[arg(last = true, required = true, value_name = "COMMAND")]
    command: Vec<OsString>,
}

pub(crate) async fn run(args: AnnounceArgs) -> anyhow::Result<ExitCode> {
    let announcer = announcer(&args)?;
    let mut signals = signals::Signals::new().context("cannot listen for signals")?;
    let (program, rest) = args
        .command
        .split_first()
        .context("no command given after --")?;
    let shown = program.to_string_lossy().into_owned();
    let mut command = Command::new(program);
    command.args(rest).kill_on_drop(true);
    // Its own process group: a Ctrl-C at the terminal reaches the child once, through us, and
    // a signal forwarded reaches the processes the child started too.
    #[cfg(unix)]
    command.process_group(0);
    let mut child = match command.spawn() {
        Ok(child) => child,
        Err(e) => {
            eprintln!("error: cannot run {shown}: {e}");
            // As env(1) and shells: 127 when there is no such command, 126 when it cannot run.
            let code = if e.kind() == std::io::ErrorKind::NotFound {
                127
            } else {
                126
            };
            return Ok(ExitCode::from(code));
        }
    };
    tracing::info!(
        command = %shown,
        pid = child.id(),
        mcp_url = %announcer.mcp_url(),
        "started; registering once the MCP endpoint answers"
    );

    let ready_timeout = args.ready_timeout;
    let mut starting = Box::pin({
        let announcer = announcer.clone();
        async move {
            announcer.wait_until_ready(ready_timeout).await?;
            announcer.start().await
        }
    });
    let mut starting_done = false;
    let mut announcement: Option<Announcement> = None;
    let mut deregistering: Option<JoinHandle<Result<bool, AnnounceError>>> = None;
    let mut failure: Option<anyhow::Error> = None;
    let mut kill_at: Option<tokio::time::Instant> = None;

    let status = loop {
        tokio::select! {
            status = child.wait() => break status.context("cannot wait for the child")?,
            signal = signals.recv() => {
                forward(&child, signal);
                if signals::stops(signal) {
                    starting_done = true;
                    if let Some(a) = announcement.take() {
                        deregistering = Some(tokio::spawn(a.shutdown()));
                    }
                }
            }
            started = &mut starting, if !starting_done => {
                starting_done = true;
                match started {
                    Ok(a) => announcement = Some(a),
                    Err(e) => {
                        // The cause is printed once, as the command's error, when the child has exited.
                        tracing::warn!("stopping {shown}: it cannot be announced");
                        failure = Some(refusal(e));
                        forward(&child, signals::TERM);
                        kill_at = Some(tokio::time::Instant::now() + STOP_GRACE);
                    }
                }
            }
            () = sleep_until(kill_at), if kill_at.is_some() => {
                tracing::warn!("{shown} still runs {} after SIGTERM: killing it", humantime::format_duration(STOP_GRACE));
                kill_at = None;
                let _ = child.start_kill();
            }
        }
    };
    if !starting_done {
        tracing::warn!(
            "{shown} exited ({status}) before its MCP endpoint answered; nothing was registered"
        );
    } else {
        tracing::info!("{shown} exited ({status})");
    }
    if let Some(a) = announcement.take() {
        deregistering = Some(tokio::spawn(a.shutdown()));
    }
    if let Some(task) = deregistering {
        match task.await {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => tracing::warn!("could not deregister: {e}"),
            Err(e) => tracing::warn!("could not deregister: {e}"),
        }
    }
    match failure {
        Some(e) => Err(e),
        None => Ok(exit_code(status)),
    }
}

/// The announcer of `--file` with `--registry`, `--token` and `--ttl`; a bad entry is reported
/// before the child starts.
fn announcer(args: &AnnounceArgs) -> anyhow::Result<Announcer> {
    let body = Value::Object(read_file(&args.file)?);
    let source = if args.file.as_os_str() == "-" {
        "standard input (--file -)".to_owned()
    } else {
        args.file.display().to_string()
    };
    let mut announcer =
        Announcer::new(args.registry.url(), body).with_context(|| source.clone())?;
    if let Some(token) = args.registry.token() {
        announcer = announcer.with_token(token);
    }
    if let Some(ttl) = args.ttl {
        announcer = announcer.with_ttl(ttl).context("--ttl")?;
    }
    Ok(announcer)
}

/// A registry's refusal of the credentials as the client error the CLI maps to its exit code
/// and hint; anything else as it is.
fn refusal(e: AnnounceError) -> anyhow::Error {
    match e {
        AnnounceError::Registry { status, detail } if matches!(status, 401 | 403) => {
            mcp_fleet_discovery::ClientError::Problem {
                status,
                detail,
                errors: Vec::new(),
                breaking: Vec::new(),
            }
            .into()
        }
        e => e.into(),
    }
}

async fn sleep_until(at: Option<tokio::time::Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// The exit code a shell would report for `status`: its code, or 128 + the signal that ended it.
fn exit_code(status: ExitStatus) -> ExitCode {
    #[cfg(unix)]
    {
        use std::os::unix::process::ExitStatusExt;
        if let Some(signal) = status.signal() {
            return ExitCode::from(128u8.wrapping_add(signal as u8));
        }
    }
    ExitCode::from(status.code().unwrap_or(1) as u8)
}

/// Sends `signal` to the child's process group (the child and what it started).
fn forward(child: &Child, signal: signals::Signal) {
    let Some(pid) = child.id() else { return };
    if let Err(e) = signals::send(pid, signal) {
        tracing::warn!(pid, "cannot forward {}: {e}", signals::name(signal));
    } else {
        tracing::info!(pid, "forwarded {}", signals::name(signal));
    }
}

#[cfg(unix)]
mod signals {
    //! The signals announce forwards: SIGTERM, SIGINT, SIGQUIT (which also deregister), SIGHUP,
    //! SIGUSR1 and SIGUSR2.

    use tokio::signal::unix::{SignalKind, signal};

    pub(super) type Signal = rustix::process::Signal;
    pub(super) const TERM: Signal = Signal::TERM;

    /// One stream per forwarded signal.
    pub(super) struct Signals {
        streams: Vec<(Signal, tokio::signal::unix::Signal)>,
    }

    impl Signals {
        pub(super) fn new() -> std::io::Result<Self> {
            let kinds = [
                (Signal::TERM, SignalKind::terminate()),
                (Signal::INT, SignalKind::interrupt()),
                (Signal::QUIT, SignalKind::quit()),
                (Signal::HUP, SignalKind::hangup()),
                (Signal::USR1, SignalKind::user_defined1()),
                (Signal::USR2, SignalKind::user_defined2()),
            ];
            let streams = kinds
                .into_iter()
                .map(|(sig, kind)| Ok((sig, signal(kind)?)))
                .collect::<std::io::Result<_>>()?;
            Ok(Self { streams })
        }

        /// The next signal received.
        pub(super) async fn recv(&mut self) -> Signal {
            std::future::poll_fn(|cx| {
                for (sig, stream) in &mut self.streams {
                    if stream.poll_recv(cx).is_ready() {
                        return std::task::Poll::Ready(*sig);
                    }
                }
                std::task::Poll::Pending
            })
            .await
        }
    }

    /// Whether `signal` asks the server to stop (and the entry is deregistered).
    pub(super) fn stops(signal: Signal) -> bool {
        [Signal::TERM, Signal::INT, Signal::QUIT].contains(&signal)
    }

    pub(super) fn send(pid: u32, signal: Signal) -> std::io::Result<()> {
        let pid = i32::try_from(pid)
            .ok()
            .and_then(rustix::process::Pid::from_raw)
            .ok_or_else(|| std::io::Error::other("no such process id"))?;
        rustix::process::kill_process_group(pid, signal).map_err(Into::into)
    }

    pub(super) fn name(signal: Signal) -> &'static str {
        match signal {
            Signal::TERM => "SIGTERM",
            Signal::INT => "SIGINT",
            Signal::QUIT => "SIGQUIT",
            Signal::HUP => "SIGHUP",
            Signal::USR1 => "SIGUSR1",
            Signal::USR2 => "SIGUSR2",
            _ => "a signal",
        }
    }
}

#[cfg(not(unix))]
mod signals {
    //! Without Unix signals: Ctrl-C stops the child.

    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub(super) struct Signal;
    pub(super) const TERM: Signal = Signal;

    pub(super) struct Signals;

    impl Signals {
        pub(super) fn new() -> std::io::Result<Self> {
            Ok(Self)
        }

        pub(super) async fn recv(&mut self) -> Signal {
            let _ = tokio::signal::ctrl_c().await;
            Signal
        }
    }

    pub(super) fn stops(_: Signal) -> bool {
        true
    }

    pub(super) fn send(_: u32, _: Signal) -> std::io::Result<()> {
        Err(std::io::Error::other(
            "signals are not forwarded on this system",
        ))
    }

    pub(super) fn name(_: Signal) -> &'static str {
        "Ctrl-C"
    }
}
