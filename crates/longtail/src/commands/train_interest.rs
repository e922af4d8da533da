//! `longtail train-interest`: the library's `TrainInterestConfig` as the command line, an
//! optional `--tune` search, then the trainer of longtail-interest with a progress bar.

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Args;
use longtail_interest::tune::{self, TuneOptions, TuneSpace};
use longtail_interest::{
    train_interest, Architecture, ItemFeatures, TrainInterestConfig, TrainInterestOutcome,
};

#[derive(Args, Debug)]
pub struct TrainInterestArgs {
    /// TOML file whose [train-interest] table supplies defaults (see configs/interest.toml).
    #[arg(long)]
    pub config: Option<PathBuf>,

    /// The library's `TrainInterestConfig` is the command line: one definition of each flag.
    #[command(flatten)]
    pub train: TrainInterestConfig,

    /// Search the sequence recipe on your validation split first: N trials by successive
    /// halving (trial 0 is the recipe, the others drawn with --seed from the space in
    /// docs/interest.md: ID threshold, learning rate, dropout, temperature, layers, width);
    /// --out gets the winner, with tune.json and tune.md (the trials table). 0: train the
    /// recipe as given.
    #[arg(long, default_value_t = 0, help_heading = "Tuning")]
    pub tune: usize,
    /// Stop starting exploration trials after this many minutes (the last rung, the winner
    /// and the recipe at full --max-steps, always runs).
    #[arg(long, help_heading = "Tuning")]
    pub tune_minutes: Option<f64>,
    /// A trial replaces the recipe only if its validation NDCG@10 beats the recipe's by this
    /// many standard errors (validation noise is not evidence; 0: any gain).
    #[arg(long, default_value_t = 1.0, help_heading = "Tuning")]
    pub tune_margin: f64,
    /// Each rung keeps the best 1/ETA of its trials for ETA times the steps.
    #[arg(long, default_value_t = 3, help_heading = "Tuning")]
    pub tune_eta: usize,
    /// Trials directory (default: OUT.tune beside --out); rerunning the same search resumes
    /// it, skipping finished trials.
    #[arg(long, help_heading = "Tuning")]
    pub tune_dir: Option<PathBuf>,
}

/// The library config of the parsed arguments (the tuning flags are not part of it).
fn config(a: TrainInterestArgs) -> Result<TrainInterestConfig> {
    let cfg = a.train;
    // SASRec (`--item-features id`) reads no text, so it needs no encoder.
    let needs_model = cfg.resume_from.is_none()
        && !(cfg.architecture == Architecture::Sequence && cfg.item_features == ItemFeatures::Id);
    if needs_model && cfg.model.is_empty() {
        anyhow::bail!(
            "--model is required unless --resume-from is given or --item-features is id (on \
             the command line, in the environment or in the config file)"
        );
    }
    Ok(cfg)
}

/// One training run with its progress bar.
fn train_once(cfg: &TrainInterestConfig, label: &'static str) -> Result<TrainInterestOutcome> {
    let unit = match cfg.architecture {
        Architecture::Sequence => "seq",
        Architecture::BiEncoder => "pairs",
    };
    let mut bar = crate::progress::ProgressDisplay::new(label, unit);
    let outcome = train_interest(cfg, &mut |e| bar.on_event(e))?;
    bar.finish();
    Ok(outcome)
}

pub fn run(a: TrainInterestArgs) -> Result<()> {
    let tune = TuneArgs {
        trials: a.tune,
        minutes: a.tune_minutes,
        eta: a.tune_eta,
        margin: a.tune_margin,
        dir: a.tune_dir.clone(),
    };
    let cfg = config(a)?;
    let outcome = if tune.trials > 0 {
        tune_then_train(&cfg, &tune)?
    } else {
        train_once(&cfg, "train-interest")?
    };
    if outcome.train_pairs > 0 {
        println!(
            "trained {} steps on {} next-item pairs in {:.1}s",
            outcome.steps, outcome.train_pairs, outcome.seconds
        );
    } else {
        println!(
            "the chosen trial was trained by an earlier run of this search ({} steps, {:.1}s)",
            outcome.steps, outcome.seconds
        );
    }
    if let Some(times) = outcome.phase_times {
        println!("phase times: {}", times.per_update());
    }
    if let (Some(a), Some(b)) = (&outcome.initial, &outcome.last) {
        if b.ndcg_at_10 > 0.0 {
            println!(
                "validation NDCG@10 {:.4} -> {:.4} (best), Recall@10 {:.4} -> {:.4}",
                a.ndcg_at_10, b.ndcg_at_10, a.recall_at_10, b.recall_at_10
            );
        }
        println!(
            "validation Recall@10 {:.4} -> {:.4}, tail {:.4} -> {:.4} ({} users)",
            a.recall_at_10, b.recall_at_10, a.tail_recall_at_10, b.tail_recall_at_10, b.users
        );
    }
    match outcome.calibration {
        Some(p) => println!(
            "calibration: P(interest) = sigmoid({:.3} * cos + {:.3})",
            p.a, p.b
        ),
        None => println!("calibration: not fitted (no validation pairs)"),
    }
    println!("checkpoint: {}", outcome.out.display());
    Ok(())
}

struct TuneArgs {
    trials: usize,
    minutes: Option<f64>,
    eta: usize,
    margin: f64,
    dir: Option<PathBuf>,
}

/// `--tune N`: the search in the trials directory, then the winner's checkpoint copied to
/// --out with the search's record (one atomic directory write).
fn tune_then_train(cfg: &TrainInterestConfig, t: &TuneArgs) -> Result<TrainInterestOutcome> {
    anyhow::ensure!(
        cfg.architecture == Architecture::Sequence && cfg.resume_from.is_none(),
        "--tune searches the sequence recipe from scratch: it takes --architecture sequence \
         and no --resume-from"
    );
    anyhow::ensure!(t.eta >= 2, "--tune-eta must be at least 2, got {}", t.eta);
    if let Some(m) = t.minutes {
        anyhow::ensure!(
            m.is_finite() && m >= 0.0,
            "--tune-minutes must be a number of minutes >= 0, got {m}"
        );
    }
    let _lock = longtail_fs::OutputLock::acquire(&cfg.out)?;
    let dir = t
        .dir
        .clone()
        .unwrap_or_else(|| PathBuf::from(format!("{}.tune", cfg.out.display())));
    let mut base = cfg.clone();
    // every trial embeds the same catalogue text: once, into the trials directory
    base.embedding_cache
        .get_or_insert_with(|| dir.join("text-embeddings.safetensors"));
    let opts = TuneOptions {
        trials: t.trials,
        eta: t.eta,
        seed: cfg.seed,
        space: TuneSpace::default(),
        time_budget: t
            .minutes
            .map(|m| std::time::Duration::from_secs_f64(m * 60.0)),
        dir: dir.clone(),
        margin_se: t.margin,
    };
    let mut outcomes: Vec<(PathBuf, TrainInterestOutcome)> = Vec::new();
    let state = tune::successive_halving(
        &base,
        &opts,
        &mut |line| eprintln!("tune: {line}"),
        &mut |settings, out, steps| {
            let mut c = settings.apply(&base, steps);
            c.out = out.to_path_buf();
            let o = train_once(&c, "trial")
                .map_err(|e| longtail_interest::InterestError::invalid(format!("{e:#}")))?;
            let m = o.last.clone().unwrap_or_default();
            let r = tune::RunMetrics {
                steps: o.steps,
                ndcg_10: m.ndcg_at_10,
                tail_recall_10: m.tail_recall_at_10,
                users: m.users,
            };
            outcomes.push((out.to_path_buf(), o));
            Ok(r)
        },
    )?;
    let (winner, rung) = state
        .winner
        .zip(state.winner_rung)
        .context("the search finished without a winner")?;
    let src = tune::trial_dir(&dir, winner, rung);
    let table = tune::trials_table(&state);
    eprintln!("{table}");
    longtail_fs::write_dir_atomic(&cfg.out, |tmp| -> Result<()> {
        for entry in
            std::fs::read_dir(&src).with_context(|| format!("reading {}", src.display()))?
        {
            let entry = entry?;
            if entry.file_type()?.is_file() {
                std::fs::copy(entry.path(), tmp.join(entry.file_name()))
                    .with_context(|| format!("copying {}", entry.path().display()))?;
            }
        }
        longtail_fs::write_json_atomic(&tmp.join(tune::TUNE_FILE), &state)?;
        std::fs::write(tmp.join(tune::TUNE_TABLE_FILE), &table)?;
        Ok(())
    })?;
    let r = state
        .results
        .iter()
        .find(|r| r.trial == winner && r.rung == rung)
        .context("the winner's result")?;
    eprintln!(
        "tune: trial {winner} ({}) at {} steps chosen: validation NDCG@10 {:.4}; checkpoint {}",
        state.trials[winner].describe(),
        r.max_steps,
        r.ndcg_10,
        cfg.out.display()
    );
    // The outcome printed below: the winner's own run when this process trained it.
    match outcomes.into_iter().rev().find(|(dir, _)| *dir == src) {
        Some((_, mut o)) => {
            o.out = cfg.out.clone();
            Ok(o)
        }
        None => Ok(TrainInterestOutcome {
            steps: r.steps,
            seconds: r.seconds,
            train_pairs: 0,
            initial: None,
            last: None,
            calibration: None,
            out: cfg.out.clone(),
            phase_times: None,
        }),
    }
}
