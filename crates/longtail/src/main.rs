//! `longtail`: find and recommend long-tail products with a pretrained text encoder.
//!
//! The binary is thin: it parses arguments (`cli`) with a config file merged in (`config`),
//! and calls the library crates. Errors carry the file and line they concern.

mod cli;
mod commands;
mod config;
mod progress;
mod shared_args;

use clap::FromArgMatches;
use cli::{Cli, Command};
use config::SettingsError;

fn main() {
    longtail_model::configure_cpu_runtime();
    // Command line, environment, config file and defaults, validated once (config.rs).
    let matches = match config::parse_args(cli::command(), std::env::args_os()) {
        Ok(m) => m,
        Err(SettingsError::Clap(e)) => e.exit(),
        Err(SettingsError::Config(e)) => {
            eprintln!("error: {e:#}");
            std::process::exit(2);
        }
    };
    let cli = Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
    let result = match cli.command {
        Command::Prepare(args) => commands::prepare::run(args),
        Command::Model(cmd) => commands::model::run(cmd),
        Command::Train(args) => commands::train::run(args),
        Command::Eval(args) => commands::eval::run(args),
        Command::EvalRec(args) => commands::eval_rec::run(args),
        Command::Score(args) => commands::score::run(args),
        Command::TrainInterest(args) => commands::train_interest::run(args),
        Command::Recommend(args) => commands::recommend::run(args),
        Command::Plan(args) => commands::plan::run(args),
        Command::Serve(args) => commands::serve::run(args),
        Command::Events(cmd) => commands::serve::run_events(cmd),
    };
    if let Err(err) = result {
        eprintln!("error: {err:#}");
        std::process::exit(1);
    }
}
