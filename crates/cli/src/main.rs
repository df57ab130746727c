//! The `mcp-fleet` command: parses arguments and hands each subcommand to the crates that do
//! the work. No business logic lives here.

mod commands;
mod config;
mod output;
mod shutdown;

use std::io::IsTerminal;
use std::process::ExitCode;

use clap::{CommandFactory, FromArgMatches, Parser, Subcommand, ValueEnum};

/// mimalloc instead of the system allocator: the registry and the gateway allocate on every
/// request from many threads, where glibc's arena locks cost throughput (figures, and those of
/// the workspace's `no_thp`, in docs/perf.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Has mimalloc return emptied pages to the OS at once (`purge_delay` 0) unless
/// `MIMALLOC_PURGE_DELAY` says otherwise: with its default delay (1 s) the purge waits for the
/// next allocation that reaches its arena, so a registry idle after a large read kept ~50 MB it
/// no longer used (docs/perf.md, registry memory).
#[allow(unsafe_code)]
fn purge_freed_memory_at_once() {
    /// `mi_option_purge_delay` in mimalloc.h (v2 and v3), which libmimalloc-sys does not name.
    const PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;
    if std::env::var_os("MIMALLOC_PURGE_DELAY").is_none() {
        // SAFETY: `mi_option_set` stores an integer in mimalloc's option table; it takes no
        // pointer, and runs first in `main`, before any other thread could read the option.
        unsafe { libmimalloc_sys::mi_option_set(PURGE_DELAY, 0) };
    }
}

/// mcp-fleet: a registry, health checker and discovery service for a fleet of MCP servers.
#[derive(Debug, Parser)]
#[command(name = "mcp-fleet", version, about)]
struct Cli {
    /// Log lines as `text` (for people) or `json` (one object per line, with the request span's
    /// method, route, status and latency), on standard error. `RUST_LOG` sets the level.
    #[arg(
        long,
        global = true,
        env = "MCP_FLEET_LOG_FORMAT",
        value_enum,
        default_value_t = LogFormat::Text
    )]
    log_format: LogFormat,
    /// Config file of option values (flags and environment variables win over it); default:
    /// ./mcp-fleet.toml, else $XDG_CONFIG_HOME/mcp-fleet/config.toml, when there.
    #[arg(long, global = true, env = config::CONFIG_ENV, value_name = "FILE")]
    config: Option<std::path::PathBuf>,
    #[command(subcommand)]
    command: Command,
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the registry's HTTP API.
    Serve(commands::serve::ServeArgs),
    /// Run only the health worker, against the registry's database (pair with
    /// `serve --no-health-worker`).
    HealthWorker(commands::health::HealthWorkerArgs),
    /// Run a registry on a throwaway SQLite file with sample MCP servers that register themselves.
    Demo(Box<commands::demo::DemoArgs>),
    /// Register (or re-register) a server, from a JSON file or from flags.
    Register(commands::client::RegisterArgs),
    /// Mirror the servers of an official MCP Registry v0.1 API (those with a streamable-http
    /// remote) into entries, and report what changed.
    Import(commands::import::ImportArgs),
    /// Renew a TTL entry (PUT /servers/{id}/heartbeat).
    Heartbeat(commands::client::HeartbeatArgs),
    /// Probe a server now and show the outcome (POST /servers/{id}/check).
    Check(commands::client::CheckArgs),
    /// List servers as a table (or JSON).
    Ls(commands::client::LsArgs),
    /// Show one server's entry as JSON.
    Get(commands::client::GetArgs),
    /// Delete a server's entry.
    Rm(commands::client::RmArgs),
    /// Set, show or delete a service's routing policy (weights per version, automatic rollback).
    Route(commands::route::RouteArgs),
    /// Export a service's routing policy for another system (`export istio <service>`).
    Export(commands::route::ExportArgs),
    /// Show how a service's tools changed between two versions, each change breaking or
    /// compatible (`diff inventory 1.0.0 1.1.0`).
    Diff(commands::diff::DiffArgs),
    /// Show the fleet's health summary.
    Status(commands::client::StatusArgs),
    /// List the fleet's MCP tools (connecting to every matching server) as a table or JSON;
    /// `--search TEXT` searches the registry's catalog instead, connecting to none; `tools
    /// accept` trusts a changed tool.
    Tools(commands::tools::ToolsArgs),
    /// Print the registry's changes as they happen (resuming where it left off after a drop).
    Watch(commands::watch::WatchArgs),
    /// Call a tool of the fleet by its name (`<service>__<tool>`, as `tools` lists it) or bare name.
    Call(commands::tools::CallArgs),
    /// Run the aggregating MCP gateway: the whole fleet behind one MCP endpoint.
    Gateway(commands::gateway::GatewayArgs),
    /// Manage API tokens (in the registry's database).
    #[command(subcommand)]
    Token(commands::token::TokenCommand),
    /// Run an MCP server (any language) as a child, registered while it runs.
    Announce(commands::announce::AnnounceArgs),
    /// Print the completion script of a shell (`source <(mcp-fleet completions bash)`).
    Completions(commands::completions::CompletionsArgs),
    /// Print the man page (generated from this command line), or write every page to a directory.
    Man(commands::completions::ManArgs),
    /// Print the version, git commit, build date and features.
    Version,
}

/// Colour codes in log lines only for a person at a terminal: never when standard error is a
/// file or a pipe (`demo 2> demo.err`), never when `NO_COLOR` is set to anything but "" (no-color.org).
fn colour_logs(stderr_is_terminal: bool, no_color: Option<&std::ffi::OsStr>) -> bool {
    stderr_is_terminal && no_color.is_none_or(|v| v.is_empty())
}

fn init_tracing(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        // rmcp logs every failed connection at error level; for the health worker a refused
        // connection is an expected probe result, recorded on the entry.
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,rmcp=off"));
    let colour = colour_logs(
        std::io::stderr().is_terminal(),
        std::env::var_os("NO_COLOR").as_deref(),
    );
    let fmt = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(colour)
        // A log line that cannot be written (standard error closed: `… 2>&1 | head`) is dropped.
        // Reporting it would `eprintln!` to that same closed stream and panic, and a panic in
        // the task that turns SIGTERM into shutdown left the process deaf to it.
        .log_internal_errors(false)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => fmt.init(),
        // The innermost span (a request's: method, route, status, latency_ms) on every line;
        // the list of enclosing spans would repeat it.
        LogFormat::Json => fmt
            .json()
            .with_current_span(true)
            .with_span_list(false)
            .init(),
    }
}

/// The command line: `--log-format` and `--config` are global (given before or after any
/// subcommand) but shown once, in `mcp-fleet --help`, not in every subcommand's help. Each
/// subcommand gets a hidden copy, which keeps clap from adding a visible one to it.
fn command_line() -> clap::Command {
    fn hide_in_subcommands(cmd: clap::Command, hidden: &clap::Arg) -> clap::Command {
        cmd.mut_subcommands(|sc| {
            let has = sc.get_arguments().any(|a| a.get_id() == hidden.get_id());
            let sc = if has { sc } else { sc.arg(hidden.clone()) };
            hide_in_subcommands(sc, hidden)
        })
    }
    let mut cmd = Cli::command();
    for id in ["log_format", "config"] {
        let hidden = cmd
            .get_arguments()
            .find(|a| a.get_id() == id)
            .cloned()
            .map(|a| a.hide(true));
        if let Some(hidden) = hidden {
            cmd = hide_in_subcommands(cmd, &hidden);
        }
    }
    cmd
}

fn main() -> ExitCode {
    purge_freed_memory_at_once();
    let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    let cmd = match config::apply_found(command_line(), &args, |name| std::env::var_os(name)) {
        Ok(cmd) => cmd,
        Err(e) => {
            eprintln!("error: {e:#}");
            return ExitCode::FAILURE;
        }
    };
    let cli = match Cli::from_arg_matches(&cmd.get_matches_from(args)) {
        Ok(cli) => cli,
        Err(e) => e.exit(),
    };
    // From the definition itself (without the config file's values as defaults): no runtime.
    let offline = match &cli.command {
        Command::Completions(args) => {
            Some(commands::completions::completions(args, command_line()))
        }
        Command::Man(args) => Some(commands::completions::man(args, command_line())),
        Command::Version => Some(commands::version::run()),
        _ => None,
    };
    if let Some(done) = offline {
        return match done {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("error: {e:#}");
                ExitCode::FAILURE
            }
        };
    }
    init_tracing(cli.log_format);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        let done = match cli.command {
            Command::Serve(args) => commands::serve::run(args).await,
            Command::HealthWorker(args) => commands::health::run_worker(args).await,
            Command::Demo(args) => commands::demo::run(*args).await,
            Command::Register(args) => commands::client::register(args).await,
            Command::Import(args) => commands::import::run(args).await,
            Command::Heartbeat(args) => commands::client::heartbeat(args).await,
            Command::Check(args) => commands::client::check(args).await,
            Command::Ls(args) => commands::client::ls(args).await,
            Command::Get(args) => commands::client::get(args).await,
            Command::Rm(args) => commands::client::rm(args).await,
            Command::Route(args) => commands::route::route(args).await,
            Command::Export(args) => commands::route::export(args).await,
            Command::Diff(args) => commands::diff::run(args).await,
            Command::Tools(args) => commands::tools::tools(args).await,
            Command::Call(args) => commands::tools::call(args).await,
            Command::Watch(args) => commands::watch::run(args).await,
            Command::Gateway(args) => commands::gateway::run(args).await,
            Command::Token(command) => commands::token::run(command).await,
            Command::Announce(args) => return commands::announce::run(args).await,
            Command::Completions(_) | Command::Man(_) | Command::Version => Ok(()),
            Command::Status(args) => {
                // Scripts read the exit code: 0 operational, 1 degraded, 2 no answer, 3 the
                // registry refused the credentials (or their absence).
                return match commands::client::status(args).await {
                    Ok(code) => Ok(ExitCode::from(code)),
                    Err(e) if refused_status(&e).is_some() => Err(e),
                    Err(e) => {
                        eprintln!("error: {}", error_chain(&e));
                        Ok(ExitCode::from(2))
                    }
                };
            }
        };
        done.map(|()| ExitCode::SUCCESS)
    });
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {}", error_chain(&e));
            match refused_status(&e) {
                Some(status) => {
                    eprintln!("{}", credentials_hint(status));
                    ExitCode::from(EXIT_REFUSED)
                }
                None => ExitCode::FAILURE,
            }
        }
    }
}

/// The exit code of any command whose request the registry refused with 401 or 403.
const EXIT_REFUSED: u8 = 3;

/// `e` and its causes on one line, none repeated where a message already includes its cause.
fn error_chain(e: &anyhow::Error) -> String {
    mcp_fleet_discovery::rmcp_errors::chain(e.as_ref())
}

/// The HTTP status when `e` is the registry refusing the request's credentials (401, 403).
fn refused_status(e: &anyhow::Error) -> Option<u16> {
    e.chain().find_map(
        |cause| match cause.downcast_ref::<mcp_fleet_discovery::ClientError>() {
            Some(mcp_fleet_discovery::ClientError::Problem { status, .. })
                if matches!(status, 401 | 403) =>
            {
                Some(*status)
            }
            _ => None,
        },
    )
}

/// What a person at the command line does about a 401 or 403, in this command's terms.
fn credentials_hint(status: u16) -> &'static str {
    if status == 401 {
        "hint: this registry needs a token: pass --token TOKEN or set MCP_FLEET_TOKEN \
         (`mcp-fleet token create` issues one)"
    } else {
        "hint: the token given (--token or MCP_FLEET_TOKEN) may not do this: see its scopes \
         and ids with `mcp-fleet token ls`"
    }
}

#[cfg(test)]
mod tests {
    use std::ffi::OsStr;

    use super::colour_logs;

    #[test]
    fn colour_only_at_a_terminal_without_no_color() {
        assert!(colour_logs(true, None));
        assert!(
            colour_logs(true, Some(OsStr::new(""))),
            "NO_COLOR= (empty) is unset"
        );
        assert!(!colour_logs(true, Some(OsStr::new("1"))));
        assert!(!colour_logs(false, None));
        assert!(!colour_logs(false, Some(OsStr::new("1"))));
    }
}
