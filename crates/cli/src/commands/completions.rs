//! `completions SHELL` and `man`: shell completions and the man page, generated from the
//! command line's own definition so they never drift from it.

use std::io::Write;
use std::path::PathBuf;

use anyhow::Context;
use clap::Args;
use clap_complete::Shell;

/// Options of `completions`.
#[derive(Debug, Args)]
pub(crate) struct CompletionsArgs {
    /// The shell to complete for.
    #[arg(value_enum)]
    shell: Shell,
}

/// Options of `man`.
#[derive(Debug, Args)]
pub(crate) struct ManArgs {
    /// Write `mcp-fleet.1` and a page per subcommand (`mcp-fleet-serve.1`, …) into this
    /// directory instead of printing `mcp-fleet.1`.
    #[arg(long, value_name = "DIR")]
    dir: Option<PathBuf>,
}

/// Prints the completion script of `args.shell` for `cmd`.
pub(crate) fn completions(args: &CompletionsArgs, mut cmd: clap::Command) -> anyhow::Result<()> {
    let name = cmd.get_name().to_owned();
    // Into memory first: the generator panics on a failed write (a closed pipe).
    let mut script = Vec::new();
    clap_complete::generate(args.shell, &mut cmd, name, &mut script);
    print(&script).context("cannot print the completion script")
}

/// Prints the man page of `cmd`, or writes every page into `args.dir`.
pub(crate) fn man(args: &ManArgs, cmd: clap::Command) -> anyhow::Result<()> {
    let cmd = cmd.disable_help_subcommand(true);
    match &args.dir {
        Some(dir) => {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("cannot create {}", dir.display()))?;
            clap_mangen::generate_to(cmd, dir)
                .with_context(|| format!("cannot write man pages into {}", dir.display()))?;
            println!("man pages written to {}", dir.display());
        }
        None => {
            let mut page = Vec::new();
            clap_mangen::Man::new(cmd)
                .date(env!("MCP_FLEET_BUILD_DATE"))
                .render(&mut page)
                .context("cannot render the man page")?;
            print(&page).context("cannot print the man page")?;
        }
    }
    Ok(())
}

/// Writes `bytes` to standard output; a reader that went away (`| head`) is not an error.
pub(crate) fn print(bytes: &[u8]) -> std::io::Result<()> {
    let mut out = std::io::stdout().lock();
    match out.write_all(bytes).and_then(|()| out.flush()) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        other => other,
    }
}
