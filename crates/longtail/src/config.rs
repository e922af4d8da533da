//! Config files plus command-line overrides, in one place.
//!
//! A TOML file has one table per subcommand (`[prepare]`, `[train]`, …) whose keys are the
//! flag names in snake_case (`tail_rule = "pareto:0.8"`). Precedence, highest first:
//! command line, environment variable (`LONGTAIL_*`), config file, built-in default.

use anyhow::{bail, Context, Result};
use clap::parser::ValueSource;
use clap::ArgMatches;
use serde::{de::DeserializeOwned, Serialize};
use std::path::Path;

/// Merges `[section]` of the config file at `path` into `args`, for every key the user did not
/// set on the command line or through the environment.
pub fn merge_config<T>(
    args: T,
    matches: &ArgMatches,
    path: Option<&Path>,
    section: &str,
) -> Result<T>
where
    T: clap::Args + Serialize + DeserializeOwned,
{
    let Some(path) = path else { return Ok(args) };
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read config file {}", path.display()))?;
    let file: toml::Table =
        toml::from_str(&text).with_context(|| format!("{}: not valid TOML", path.display()))?;
    let Some(from_file) = file.get(section) else {
        return Ok(args);
    };
    let from_file = from_file
        .as_table()
        .with_context(|| format!("{}: [{section}] must be a table", path.display()))?;

    let mut merged =
        toml::Table::try_from(&args).context("internal: arguments are not serialisable")?;
    let definition = T::augment_args(clap::Command::new("longtail"));
    let known: Vec<&str> = definition
        .get_arguments()
        .map(|a| a.get_id().as_str())
        .filter(|id| *id != "config")
        .collect();
    for (key, value) in from_file {
        if !known.contains(&key.as_str()) {
            bail!(
                "{}: unknown key `{key}` in [{section}]; known keys: {}",
                path.display(),
                known.join(", ")
            );
        }
        let explicit = matches!(
            matches.value_source(key),
            Some(ValueSource::CommandLine | ValueSource::EnvVariable)
        );
        if !explicit {
            merged.insert(key.clone(), value.clone());
        }
    }
    toml::Value::Table(merged).try_into().with_context(|| {
        format!(
            "{}: a value in [{section}] has the wrong type",
            path.display()
        )
    })
}
