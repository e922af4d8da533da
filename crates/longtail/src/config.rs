//! Settings from four sources, validated in one place. Precedence, highest first:
//!
//! 1. the command line,
//! 2. the environment (`LONGTAIL_<COMMAND>_<FLAG>`, see [`crate::cli::env_var_name`]),
//! 3. the `[<command>]` table of the TOML file given by `--config` (keys are the flag names in
//!    snake_case: `tail_rule = "pareto:0.8"`; `model fetch` reads `[model.fetch]`),
//! 4. the built-in default (shown by `--help`).
//!
//! The config file does not get a parser of its own: each of its values becomes the default of
//! the matching clap argument, after being checked by that argument's own value parser. So a
//! value in a file is validated exactly like the same value on the command line (types, allowed
//! values, ranges), clap applies the precedence, and an error names the file and the key.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use clap::error::ErrorKind;
use clap::{Arg, ArgAction, Command};

/// Why the arguments could not become settings.
pub enum SettingsError {
    /// A command-line or environment error, or `--help` / `--version`: clap prints it.
    Clap(clap::Error),
    /// The config file is unreadable or invalid.
    Config(anyhow::Error),
}

/// Parses `argv` (program name first) against `command`, with the config file (if the chosen
/// subcommand has `--config` and it is set on the command line or in the environment) merged in
/// as defaults.
pub fn parse_args<I, T>(command: Command, argv: I) -> Result<clap::ArgMatches, SettingsError>
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    let argv: Vec<OsString> = argv.into_iter().map(Into::into).collect();
    let path = subcommand_path(&command, &argv);
    let command = match config_file(&command, &path, &argv) {
        Some(file) => apply_config_file(command, &path, &file).map_err(SettingsError::Config)?,
        None => command,
    };
    command
        .try_get_matches_from(argv)
        .map_err(SettingsError::Clap)
}

/// The subcommand names on the command line, outermost first (`["model", "fetch"]`).
fn subcommand_path(command: &Command, argv: &[OsString]) -> Vec<String> {
    let mut path = Vec::new();
    let mut current = command;
    for token in argv.iter().skip(1) {
        let Some(token) = token.to_str() else { break };
        if token.starts_with('-') {
            continue;
        }
        match current.find_subcommand(token) {
            Some(sub) => {
                path.push(sub.get_name().to_string());
                current = sub;
            }
            None => break,
        }
    }
    path
}

fn find_subcommand<'a>(command: &'a Command, path: &[String]) -> Option<&'a Command> {
    path.iter()
        .try_fold(command, |cmd, name| cmd.find_subcommand(name))
}

/// The `--config` path: from the command line, else from the subcommand's environment variable.
fn config_file(command: &Command, path: &[String], argv: &[OsString]) -> Option<PathBuf> {
    let sub = find_subcommand(command, path)?;
    let arg = sub.get_arguments().find(|a| a.get_id() == "config")?;
    let mut tokens = argv.iter().skip(1).filter_map(|t| t.to_str());
    while let Some(token) = tokens.next() {
        if token == "--config" {
            return tokens.next().map(PathBuf::from);
        }
        if let Some(value) = token.strip_prefix("--config=") {
            return Some(PathBuf::from(value));
        }
    }
    let var = arg.get_env()?;
    std::env::var_os(var)
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
}

/// The config keys a subcommand accepts: its arguments' ids (the flag names in snake_case).
fn config_keys(sub: &Command) -> Vec<String> {
    sub.get_arguments()
        .map(|a| a.get_id().to_string())
        .filter(|id| id != "config")
        .collect()
}

/// Turns a TOML value into the strings clap would receive on a command line.
fn toml_to_strings(value: &toml::Value) -> Option<Vec<String>> {
    let scalar = |v: &toml::Value| match v {
        toml::Value::String(s) => Some(s.clone()),
        toml::Value::Integer(i) => Some(i.to_string()),
        // Debug keeps the point (`1.0`), so a float never passes for an integer.
        toml::Value::Float(f) => Some(format!("{f:?}")),
        toml::Value::Boolean(b) => Some(b.to_string()),
        toml::Value::Datetime(_) | toml::Value::Array(_) | toml::Value::Table(_) => None,
    };
    match value {
        toml::Value::Array(items) => items.iter().map(scalar).collect(),
        other => scalar(other).map(|s| vec![s]),
    }
}

fn takes_many(arg: &Arg) -> bool {
    arg.get_value_delimiter().is_some()
        || matches!(arg.get_action(), ArgAction::Append)
        || arg.get_num_args().is_some_and(|n| n.max_values() > 1)
}

/// Reads, validates and applies `file`'s table for the subcommand at `path` as argument defaults.
pub fn apply_config_file(command: Command, path: &[String], file: &Path) -> Result<Command> {
    let shown = file.display();
    let text = std::fs::read_to_string(file)
        .with_context(|| format!("cannot read config file {shown}"))?;
    let root: toml::Table =
        toml::from_str(&text).with_context(|| format!("{shown}: not valid TOML"))?;
    let table_name = path.join(".");
    let mut table = &root;
    for (depth, name) in path.iter().enumerate() {
        table = match table.get(name) {
            Some(toml::Value::Table(t)) => t,
            Some(_) => bail!("{shown}: [{}] must be a table", path[..=depth].join(".")),
            None => {
                let found: Vec<String> = table.keys().map(|k| format!("[{k}]")).collect();
                bail!(
                    "{shown}: no [{table_name}] table, so this file has no settings for \
                     `longtail {}` (it has: {}). Keys go under a table named after the command.",
                    path.join(" "),
                    if found.is_empty() {
                        "nothing".to_string()
                    } else {
                        found.join(", ")
                    }
                );
            }
        };
    }
    let sub = find_subcommand(&command, path).expect("path was found in this command");
    let known = config_keys(sub);
    let mut defaults: Vec<(String, Vec<String>)> = Vec::new();
    for (key, value) in table {
        let Some(arg) = sub.get_arguments().find(|a| a.get_id() == key.as_str()) else {
            bail!(
                "{shown}: unknown key `{key}` in [{table_name}]; known keys: {}",
                known.join(", ")
            );
        };
        if key == "config" {
            bail!("{shown}: `config` cannot be set inside a config file");
        }
        let values = toml_to_strings(value).with_context(|| {
            format!(
                "{shown}: [{table_name}] {key}: expected a string, number or boolean \
                 (or an array of them), got a {}",
                value.type_str()
            )
        })?;
        if values.len() != 1 && !takes_many(arg) {
            bail!("{shown}: [{table_name}] {key}: expected one value, got an array");
        }
        if let Some(reason) = invalid_value(sub, arg, &values) {
            bail!("{shown}: [{table_name}] {key} = {value}: {reason}");
        }
        defaults.push((key.clone(), values));
    }
    Ok(set_defaults(command, path, defaults))
}

/// Why `values` are not valid for `arg`, checked by the argument's own value parser (by parsing
/// them as `--flag value` against the subcommand), or `None` when they are.
fn invalid_value(sub: &Command, arg: &Arg, values: &[String]) -> Option<String> {
    if matches!(arg.get_action(), ArgAction::SetTrue | ArgAction::SetFalse) {
        return match values {
            [v] if v == "true" || v == "false" => None,
            _ => Some(format!("expected true or false, got {}", values.join(","))),
        };
    }
    // Positional arguments are plain strings here (`model fetch`'s repo id).
    let long = arg.get_long()?;
    let mut argv: Vec<String> = vec![sub.get_name().to_string()];
    for v in values {
        argv.push(format!("--{long}={v}"));
    }
    let probe = sub.clone().mut_args(|a| a.required(false));
    match probe.try_get_matches_from(argv) {
        Ok(_) => None,
        // Only the value itself is judged here; relations between flags (`requires`,
        // `conflicts_with`) are checked when the real command line is parsed.
        Err(e) => matches!(
            e.kind(),
            ErrorKind::InvalidValue
                | ErrorKind::ValueValidation
                | ErrorKind::InvalidUtf8
                | ErrorKind::WrongNumberOfValues
                | ErrorKind::TooManyValues
                | ErrorKind::UnknownArgument
        )
        .then(|| clap_reason(&e)),
    }
}

/// clap's message without its `error:` prefix and usage footer.
fn clap_reason(e: &clap::Error) -> String {
    let text = e.render().to_string();
    let first = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .take_while(|l| !l.starts_with("For more information"))
        .collect::<Vec<_>>()
        .join(" ");
    first.trim_start_matches("error:").trim().to_string()
}

fn set_defaults(
    command: Command,
    path: &[String],
    defaults: Vec<(String, Vec<String>)>,
) -> Command {
    match path.split_first() {
        None => defaults.into_iter().fold(command, |cmd, (key, values)| {
            // A value from the file satisfies a required flag; the command line and the
            // environment still win over it.
            cmd.mut_arg(key, |a| a.default_values(values).required(false))
        }),
        Some((name, rest)) => {
            let name = name.clone();
            command.mut_subcommand(name, |sub| set_defaults(sub, rest, defaults))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn test_command() -> Command {
        Command::new("t").subcommand(
            Command::new("run")
                .arg(Arg::new("config").long("config"))
                .arg(
                    Arg::new("max_len")
                        .long("max-len")
                        .value_parser(clap::value_parser!(u32))
                        .default_value("128"),
                )
                .arg(
                    Arg::new("pooling")
                        .long("pooling")
                        .value_parser(["cls", "mean"])
                        .default_value("cls"),
                )
                .arg(Arg::new("fields").long("fields").value_delimiter(','))
                .arg(Arg::new("flag").long("flag").action(ArgAction::SetTrue)),
        )
    }

    fn write(dir: &Path, text: &str) -> PathBuf {
        let p = dir.join("c.toml");
        std::fs::write(&p, text).unwrap();
        p
    }

    fn apply(text: &str) -> Result<clap::ArgMatches> {
        let dir = tempfile::tempdir().unwrap();
        let file = write(dir.path(), text);
        let cmd = apply_config_file(test_command(), &["run".into()], &file)?;
        let m = cmd.try_get_matches_from(["t", "run"])?;
        Ok(m.subcommand_matches("run").unwrap().clone())
    }

    #[test]
    fn file_values_become_defaults_of_every_kind() {
        let m = apply(
            "[run]\nmax_len = 64\npooling = \"mean\"\nfields = [\"a\", \"b\"]\nflag = true\n",
        )
        .unwrap();
        assert_eq!(m.get_one::<u32>("max_len"), Some(&64));
        assert_eq!(m.get_one::<String>("pooling").unwrap(), "mean");
        let fields: Vec<&String> = m.get_many::<String>("fields").unwrap().collect();
        assert_eq!(fields, ["a", "b"]);
        assert!(m.get_flag("flag"));
    }

    #[test]
    fn errors_name_the_file_and_the_key() {
        for (text, needle) in [
            ("[run]\nmax_lenn = 1\n", "unknown key `max_lenn`"),
            ("[run]\nmax_len = \"long\"\n", "max_len"),
            ("[run]\nmax_len = true\n", "max_len"),
            ("[run]\npooling = \"max\"\n", "pooling"),
            ("[run]\nmax_len = [1, 2]\n", "expected one value"),
            ("[run]\nflag = \"yes\"\n", "flag"),
            ("[other]\nmax_len = 1\n", "no [run] table"),
            ("max_len = 1\n", "no [run] table"),
            ("[run\n", "not valid TOML"),
        ] {
            let err = format!("{:#}", apply(text).unwrap_err());
            assert!(err.contains("c.toml"), "{text:?}: {err}");
            assert!(err.contains(needle), "{text:?}: {err}");
        }
    }

    #[test]
    fn subcommand_path_skips_flags() {
        let cmd =
            Command::new("t").subcommand(Command::new("model").subcommand(Command::new("fetch")));
        let argv: Vec<OsString> = ["t", "model", "fetch", "x"].map(OsString::from).to_vec();
        assert_eq!(subcommand_path(&cmd, &argv), ["model", "fetch"]);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        /// Whatever bytes a config file holds, applying it returns Ok or an error that names
        /// the file; it never panics.
        #[test]
        fn arbitrary_config_files_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let dir = tempfile::tempdir().unwrap();
            let p = dir.path().join("c.toml");
            std::fs::write(&p, &bytes).unwrap();
            if let Err(e) = apply_config_file(test_command(), &["run".into()], &p) {
                let msg = format!("{e:#}");
                prop_assert!(msg.contains("c.toml"), "{}", msg);
            }
        }

        /// Arbitrary key/value tables under [run]: accepted exactly when every key is known
        /// and its value valid, and then the parsed value is the file's.
        #[test]
        fn arbitrary_tables_are_accepted_only_when_valid(
            key in prop_oneof![Just("max_len".to_string()), "[a-z_]{1,10}"],
            value in prop_oneof![
                any::<u32>().prop_map(|n| n.to_string()),
                any::<i64>().prop_map(|n| n.to_string()),
                "\"[a-z0-9]{0,6}\"",
                Just("true".to_string()),
                any::<f64>().prop_filter("finite", |f| f.is_finite()).prop_map(|f| format!("{f:?}")),
            ],
        ) {
            let text = format!("[run]\n{key} = {value}\n");
            let result = apply(&text);
            let want: Option<u32> = (key == "max_len")
                .then(|| value.trim_matches('"').parse().ok())
                .flatten();
            match (result, key.as_str()) {
                (Ok(m), "max_len") => prop_assert_eq!(m.get_one::<u32>("max_len").copied(), want),
                (Ok(_), k) => prop_assert!(["pooling", "fields", "flag"].contains(&k), "{k} accepted"),
                (Err(e), _) => {
                    let msg = format!("{e:#}");
                    prop_assert!(msg.contains("c.toml") && msg.contains(key.as_str()), "{}", msg);
                    if key == "max_len" { prop_assert!(want.is_none()); }
                }
            }
        }
    }
}
