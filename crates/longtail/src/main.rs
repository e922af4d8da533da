//! `longtail`: find and recommend long-tail products with a pretrained text encoder.
//!
//! The binary is thin: it parses arguments (`cli`), merges them with a config file (`config`),
//! and calls the library crates. Errors carry the file and line they concern.

mod cli;
mod commands;
mod config;
mod progress;

use clap::{CommandFactory, FromArgMatches};
use cli::{Cli, Command};

fn main() {
    longtail_model::configure_cpu_runtime();
    let matches = Cli::command().get_matches();
    let cli = match Cli::from_arg_matches(&matches) {
        Ok(cli) => cli,
        Err(e) => e.exit(),
    };
    // The subcommand's own matches tell which values came from the command line or the
    // environment, so a config file can fill in only what the user did not set.
    let sub_matches = matches.subcommand().map(|(_, m)| m);
    let result = match cli.command {
        Command::Prepare(args) => commands::prepare::run(args, sub_matches.expect("subcommand")),
        Command::Model(cmd) => commands::model::run(cmd),
        Command::Train(args) => commands::train::run(args, sub_matches.expect("subcommand")),
        Command::Eval(args) => commands::eval::run(args),
        Command::EvalRec(args) => commands::eval_rec::run(args),
        Command::Score(args) => commands::score::run(args),
        Command::TrainInterest(args) => {
            commands::train_interest::run(args, sub_matches.expect("subcommand"))
        }
        Command::Recommend(args) => commands::recommend::run(args),
    };
    if let Err(err) = result {
        eprintln!("error: {err:#}");
        std::process::exit(1);
    }
}
