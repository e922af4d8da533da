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

/// `LONGTAIL_PARENT_PID=<pid>`: die (SIGKILL) when that parent dies. An engine's worker that
/// runs `longtail` as a child sets it (scripts/ray_score.py), so a lost worker leaves no
/// orphan writing its output; the retry's `--resume` then takes the output's lock.
fn die_with_parent() {
    let Some(parent) = std::env::var("LONGTAIL_PARENT_PID")
        .ok()
        .and_then(|p| p.trim().parse::<u32>().ok())
    else {
        return;
    };
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: prctl(PR_SET_PDEATHSIG) changes only this process's own death signal.
    unsafe {
        libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
    }
    // The parent may have died before the signal was armed.
    if std::os::unix::process::parent_id() != parent {
        eprintln!("error: parent process {parent} is gone (LONGTAIL_PARENT_PID)");
        std::process::exit(1);
    }
}

fn main() {
    die_with_parent();
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
        // EX_TEMPFAIL: another live attempt holds the output; an engine's retry may succeed.
        let busy = err.chain().any(|e| {
            matches!(
                e.downcast_ref::<longtail_infer::InferError>(),
                Some(longtail_infer::InferError::Busy(_))
            )
        });
        std::process::exit(if busy { 75 } else { 1 });
    }
}
