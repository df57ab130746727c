//! The config file (`mcp-fleet.toml`): option values read before the command line is parsed
//! and given to clap as defaults, so a flag wins over its environment variable, which wins over
//! the file, which wins over the built-in default.
//!
//! Keys are long option names (`registry`, `token`, `database-url`, `listen`, …). A key at the
//! top applies to every command taking that option; a table named for a subcommand (`[serve]`,
//! `[gateway]`, `[token.create]`) applies to it and its subcommands, over the top.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use clap::{Arg, ArgAction, Command};
use toml::{Table, Value};

/// The long option naming the file.
pub(crate) const CONFIG_OPTION: &str = "config";
/// The environment variable naming the file.
pub(crate) const CONFIG_ENV: &str = "MCP_FLEET_CONFIG";
/// The file looked for in the working directory.
pub(crate) const LOCAL_FILE: &str = "mcp-fleet.toml";

/// Where the config file is: `--config FILE`, else `MCP_FLEET_CONFIG`, else `./mcp-fleet.toml`
/// when it exists, else `$XDG_CONFIG_HOME/mcp-fleet/config.toml` (`~/.config/…` without it)
/// when it exists. The bool says whether it was named (and so must exist).
pub(crate) fn locate(
    args: &[OsString],
    env: impl Fn(&str) -> Option<OsString>,
) -> Option<(PathBuf, bool)> {
    if let Some(path) = flag_value(args) {
        return Some((path, true));
    }
    if let Some(path) = env(CONFIG_ENV).filter(|v| !v.is_empty()) {
        return Some((PathBuf::from(path), true));
    }
    let local = PathBuf::from(LOCAL_FILE);
    if local.is_file() {
        return Some((local, false));
    }
    let config_home = env("XDG_CONFIG_HOME")
        .map(PathBuf::from)
        .filter(|p| p.is_absolute())
        .or_else(|| env("HOME").map(|home| Path::new(&home).join(".config")))?;
    let user = config_home.join("mcp-fleet").join("config.toml");
    user.is_file().then_some((user, false))
}

/// The value of `--config FILE` or `--config=FILE` on the command line (before any `--`).
fn flag_value(args: &[OsString]) -> Option<PathBuf> {
    let flag = format!("--{CONFIG_OPTION}");
    let mut args = args.iter().skip(1);
    let mut found = None;
    while let Some(arg) = args.next() {
        if arg == "--" {
            break;
        }
        if *arg == *flag {
            found = args.next().map(PathBuf::from);
        } else if let Some(value) = arg
            .to_str()
            .and_then(|a| a.strip_prefix(&flag))
            .and_then(|rest| rest.strip_prefix('='))
        {
            found = Some(PathBuf::from(value));
        }
    }
    found
}

/// Reads the file found by [`locate`] and applies it to `cmd`; `cmd` as it is without one.
pub(crate) fn apply_found(
    cmd: Command,
    args: &[OsString],
    env: impl Fn(&str) -> Option<OsString>,
) -> anyhow::Result<Command> {
    let Some((path, named)) = locate(args, env) else {
        return Ok(cmd);
    };
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if !named && e.kind() == std::io::ErrorKind::NotFound => return Ok(cmd),
        Err(e) => {
            return Err(e).with_context(|| format!("cannot read config file {}", path.display()));
        }
    };
    let table: Table = text
        .parse()
        .with_context(|| format!("config file {} is not valid TOML", path.display()))?;
    apply(cmd, &table).with_context(|| format!("config file {}", path.display()))
}

/// Gives `cmd` (and its subcommands) the file's values as defaults; an unknown key or a value
/// its option refuses is an error naming it.
pub(crate) fn apply(cmd: Command, table: &Table) -> anyhow::Result<Command> {
    check(&cmd, table, "")?;
    set_defaults(cmd, &Table::new(), Some(table))
}

/// Every key of `table` (for `cmd`, at `section`) is an option of `cmd` or of one of its
/// subcommands, or a table named for a subcommand.
fn check(cmd: &Command, table: &Table, section: &str) -> anyhow::Result<()> {
    let at = if section.is_empty() {
        "at the top".to_owned()
    } else {
        format!("in [{section}]")
    };
    for (key, value) in table {
        if key == "help" || key == "version" {
            bail!("unknown key `{key}` {at}: not an option a file can set");
        }
        if key == CONFIG_OPTION {
            bail!("`{key}` {at}: the config file cannot name another config file");
        }
        if let Value::Table(inner) = value {
            let Some(sub) = cmd.find_subcommand(key) else {
                bail!(
                    "[{}]: `{key}` is not a subcommand of `{}`",
                    join(section, key),
                    command_path(section)
                );
            };
            check(sub, inner, &join(section, key))?;
            continue;
        }
        let mut found = false;
        for arg in options_named(cmd, key) {
            found = true;
            values(arg, value)
                .and_then(|values| {
                    if !arg.get_action().takes_values() {
                        return Ok(());
                    }
                    values.iter().try_for_each(|v| validate(arg, v))
                })
                .with_context(|| format!("`{key}` {at}"))?;
        }
        if !found {
            bail!(
                "unknown key `{key}` {at}: no option --{key} in `{}` or its subcommands",
                command_path(section)
            );
        }
    }
    Ok(())
}

/// `cmd` with the values of `inherited` and `table`'s own keys (which win) as defaults of its
/// options, and its subcommands given the same along with their own tables.
fn set_defaults(
    mut cmd: Command,
    inherited: &Table,
    table: Option<&Table>,
) -> anyhow::Result<Command> {
    let mut here = inherited.clone();
    if let Some(table) = table {
        for (key, value) in table {
            if !value.is_table() {
                here.insert(key.clone(), value.clone());
            }
        }
    }
    for (key, value) in &here {
        let Some(id) = cmd
            .get_arguments()
            .find(|a| a.get_long() == Some(key.as_str()))
            .map(|a| a.get_id().clone())
        else {
            continue;
        };
        let arg = cmd
            .get_arguments()
            .find(|a| *a.get_id() == id)
            .cloned()
            .context("an option vanished")?;
        let values = values(&arg, value)?;
        let secret = arg.is_hide_env_values_set();
        cmd = cmd.mut_arg(id, |a| {
            a.default_values(values)
                .required(false)
                .hide_default_value(secret)
        });
    }
    let names: Vec<String> = cmd
        .get_subcommands()
        .map(|s| s.get_name().to_owned())
        .collect();
    for name in names {
        let sub_table = table
            .and_then(|t| t.get(&name))
            .and_then(Value::as_table)
            .cloned();
        let mut result = Ok(());
        cmd = cmd.mut_subcommand(&name, |sub| {
            match set_defaults(sub.clone(), &here, sub_table.as_ref()) {
                Ok(sub) => sub,
                Err(e) => {
                    result = Err(e);
                    sub
                }
            }
        });
        result?;
    }
    Ok(cmd)
}

/// The options `--key` of `cmd` and of its subcommands.
fn options_named<'a>(cmd: &'a Command, key: &str) -> Vec<&'a Arg> {
    let mut found: Vec<_> = cmd
        .get_arguments()
        .filter(|a| a.get_long() == Some(key))
        .collect();
    for sub in cmd.get_subcommands() {
        found.extend(options_named(sub, key));
    }
    found
}

/// A TOML value as the command-line values of `arg`: one for a scalar, one per item of an
/// array for options taking several.
fn values(arg: &Arg, value: &Value) -> anyhow::Result<Vec<String>> {
    let scalar = |v: &Value| -> anyhow::Result<String> {
        Ok(match v {
            Value::String(s) => s.clone(),
            Value::Integer(i) => i.to_string(),
            Value::Float(f) => f.to_string(),
            Value::Boolean(b) => b.to_string(),
            Value::Datetime(d) => d.to_string(),
            Value::Array(_) | Value::Table(_) => bail!("must be a single value"),
        })
    };
    match value {
        Value::Array(items) => {
            let many = matches!(arg.get_action(), ArgAction::Append)
                || arg.get_value_delimiter().is_some()
                || arg.get_num_args().is_some_and(|n| n.max_values() > 1);
            if !many {
                bail!("must be a single value, not an array");
            }
            items.iter().map(scalar).collect()
        }
        Value::Boolean(_) if !arg.get_action().takes_values() => Ok(vec![scalar(value)?]),
        _ if !arg.get_action().takes_values() => bail!("must be true or false"),
        other => Ok(vec![scalar(other)?]),
    }
}

/// Checks `value` as `arg` would check it on the command line.
fn validate(arg: &Arg, value: &str) -> anyhow::Result<()> {
    let long = arg.get_long().unwrap_or_default();
    let probe = Command::new("mcp-fleet")
        .no_binary_name(true)
        .arg(arg.clone().required(false));
    match probe.try_get_matches_from([format!("--{long}={value}")]) {
        Ok(_) => Ok(()),
        Err(e) => {
            // Clap's message and its list of possible values, without the usage lines.
            let text = e.to_string();
            let message: Vec<&str> = text.lines().take_while(|l| !l.is_empty()).collect();
            let message = message.join(" ");
            bail!("{}", message.strip_prefix("error: ").unwrap_or(&message))
        }
    }
}

fn join(section: &str, key: &str) -> String {
    if section.is_empty() {
        key.to_owned()
    } else {
        format!("{section}.{key}")
    }
}

/// `mcp-fleet token create` for the section `token.create`.
fn command_path(section: &str) -> String {
    if section.is_empty() {
        "mcp-fleet".to_owned()
    } else {
        format!("mcp-fleet {}", section.replace('.', " "))
    }
}

#[cfg(test)]
mod tests {
    use std::ffi::OsString;

    use clap::{Arg, ArgAction, Command};

    use super::{apply, flag_value, locate};

    fn cli() -> Command {
        Command::new("mcp-fleet")
            .subcommand(
                Command::new("serve")
                    .arg(
                        Arg::new("listen")
                            .long("listen")
                            .default_value("127.0.0.1:4000"),
                    )
                    .arg(
                        Arg::new("database_url")
                            .long("database-url")
                            .default_value("sqlite://mcp-fleet.db"),
                    )
                    .arg(Arg::new("quiet").long("quiet").action(ArgAction::SetTrue)),
            )
            .subcommand(
                Command::new("gateway")
                    .arg(
                        Arg::new("listen")
                            .long("listen")
                            .default_value("127.0.0.1:4100"),
                    )
                    .arg(
                        Arg::new("port")
                            .long("port")
                            .value_parser(clap::value_parser!(u16)),
                    )
                    .arg(Arg::new("tags").long("tags").value_delimiter(',')),
            )
            .subcommand(
                Command::new("token").subcommand(
                    Command::new("ls").arg(
                        Arg::new("database_url")
                            .long("database-url")
                            .default_value("sqlite://mcp-fleet.db"),
                    ),
                ),
            )
    }

    fn parse(file: &str, args: &[&str]) -> anyhow::Result<clap::ArgMatches> {
        let cmd = apply(cli(), &file.parse().expect("TOML"))?;
        Ok(cmd.try_get_matches_from(args)?)
    }

    fn sub<'a>(m: &'a clap::ArgMatches, path: &[&str]) -> &'a clap::ArgMatches {
        path.iter()
            .fold(m, |m, name| m.subcommand_matches(name).expect("subcommand"))
    }

    #[test]
    fn tables_win_over_the_top_and_flags_over_both() {
        let file = "database-url = 'sqlite://top.db'\n\
                    [serve]\nlisten = '0.0.0.0:4000'\nquiet = true\n\
                    [gateway]\nlisten = '0.0.0.0:4100'\ntags = ['a', 'b']\n\
                    [token.ls]\ndatabase-url = 'sqlite://token.db'\n";
        let m = parse(file, &["mcp-fleet", "serve"]).expect("parse");
        let serve = sub(&m, &["serve"]);
        assert_eq!(serve.get_one::<String>("listen").unwrap(), "0.0.0.0:4000");
        assert_eq!(
            serve.get_one::<String>("database_url").unwrap(),
            "sqlite://top.db"
        );
        assert!(serve.get_flag("quiet"));
        let m = parse(file, &["mcp-fleet", "gateway", "--listen", "127.0.0.1:1"]).expect("parse");
        let gateway = sub(&m, &["gateway"]);
        assert_eq!(gateway.get_one::<String>("listen").unwrap(), "127.0.0.1:1");
        let tags: Vec<&String> = gateway.get_many("tags").unwrap().collect();
        assert_eq!(tags, ["a", "b"]);
        let m = parse(file, &["mcp-fleet", "token", "ls"]).expect("parse");
        let ls = sub(&m, &["token", "ls"]);
        assert_eq!(
            ls.get_one::<String>("database_url").unwrap(),
            "sqlite://token.db"
        );
        // Without the file: the built-in defaults.
        let m = parse("", &["mcp-fleet", "serve"]).expect("parse");
        assert_eq!(
            sub(&m, &["serve"]).get_one::<String>("listen").unwrap(),
            "127.0.0.1:4000"
        );
    }

    #[test]
    fn bad_keys_and_values_are_named() {
        let error = |file: &str| format!("{:#}", parse(file, &["mcp-fleet"]).expect_err(file));
        let e = error("registy = 'x'");
        assert!(e.contains("unknown key `registy` at the top"), "{e}");
        let e = error("[serve]\nport = 1");
        assert!(e.contains("unknown key `port` in [serve]"), "{e}");
        assert!(e.contains("mcp-fleet serve"), "{e}");
        let e = error("[serv]\nlisten = '1'");
        assert!(e.contains("[serv]: `serv` is not a subcommand"), "{e}");
        let e = error("[gateway]\nport = 'eighty'");
        assert!(
            e.contains("`port` in [gateway]") && e.contains("eighty"),
            "{e}"
        );
        let e = error("[serve]\nlisten = ['a', 'b']");
        assert!(e.contains("not an array"), "{e}");
        let e = error("[serve]\nquiet = 'yes'");
        assert!(e.contains("true or false"), "{e}");
        let e = error("[serve]\nhelp = true");
        assert!(e.contains("unknown key `help` in [serve]"), "{e}");
        let e = error("config = 'other.toml'");
        assert!(e.contains("cannot name another config file"), "{e}");
    }

    #[test]
    fn the_flag_wins_over_the_environment_and_the_files() {
        let args = |a: &[&str]| a.iter().map(OsString::from).collect::<Vec<_>>();
        assert_eq!(
            flag_value(&args(&["mcp-fleet", "ls", "--config", "a.toml"])),
            Some("a.toml".into())
        );
        assert_eq!(
            flag_value(&args(&["mcp-fleet", "--config=b.toml", "ls"])),
            Some("b.toml".into())
        );
        assert_eq!(
            flag_value(&args(&["mcp-fleet", "call", "--", "--config", "c.toml"])),
            None
        );
        let env = |name: &str| (name == "MCP_FLEET_CONFIG").then(|| OsString::from("env.toml"));
        assert_eq!(
            locate(&args(&["mcp-fleet", "--config", "a.toml"]), env),
            Some(("a.toml".into(), true))
        );
        assert_eq!(
            locate(&args(&["mcp-fleet"]), env),
            Some(("env.toml".into(), true))
        );
        let dir = tempfile::tempdir().expect("tempdir");
        let user = dir.path().join("mcp-fleet");
        std::fs::create_dir_all(&user).expect("mkdir");
        std::fs::write(user.join("config.toml"), "").expect("write");
        let xdg =
            |name: &str| (name == "XDG_CONFIG_HOME").then(|| dir.path().as_os_str().to_owned());
        assert_eq!(
            locate(&args(&["mcp-fleet"]), xdg),
            Some((user.join("config.toml"), false))
        );
        let home = |name: &str| (name == "HOME").then(|| OsString::from("/nonexistent-home"));
        assert_eq!(locate(&args(&["mcp-fleet"]), home), None);
    }
}
