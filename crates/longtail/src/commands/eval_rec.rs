//! `longtail eval-rec`: leave-last-out top-K evaluation of the ID baselines (and, once
//! longtail-interest provides a scorer, of an interest checkpoint) with head/tail segments.

use anyhow::{ensure, Context, Result};
use longtail_rec::RecSplit;
use longtail_rec_eval::{self as rec, RecOptions, Segments};
use std::time::Instant;

pub fn run(args: EvalRecArgs) -> Result<()> {
    let started = Instant::now();
    // Before the baselines run: a device that cannot be had fails at once.
    let device = args.device.resolve()?;
    let tail_rule = args.tail_rule;
    tail_rule.validate(2)?;
    ensure!(
        args.tail_user_fraction > 0.0 && args.tail_user_fraction <= 1.0,
        "--tail-user-fraction must be in (0, 1], got {}",
        args.tail_user_fraction
    );
    ensure!(
        args.ease_lambdas.iter().all(|l| *l > 0.0 && l.is_finite()),
        "--ease-lambdas must be positive numbers"
    );
    anyhow::ensure!(
        args.compare.is_empty() || args.checkpoint.is_some(),
        "--compare needs --checkpoint (the model the others are compared with)"
    );
    if let Some(g) = &args.gate {
        ensure!(
            args.compare
                .iter()
                .chain(&args.compare_plan)
                .any(|c| &c.name == g),
            "--gate {g}: no --compare {g}=DIR or --compare-plan {g}=DIR to gate against"
        );
        ensure!(
            args.checkpoint.is_some() || args.plan.is_some(),
            "--gate needs a candidate: --plan (row `served`) or --checkpoint (row `longtail`)"
        );
    }
    // Fail before minutes of baselines, not after.
    let named = (args
        .compare
        .iter()
        .map(|c| ("--compare", longtail_interest::checkpoint::INTEREST_FILE, c)))
    .chain(
        args.compare_plan
            .iter()
            .map(|c| ("--compare-plan", "plan.json", c)),
    );
    for (flag, file, c) in named {
        ensure!(
            c.dir.join(file).is_file(),
            "{flag} {}={}: no {file} there",
            c.name,
            c.dir.display()
        );
    }
    match &args.checkpoint {
        None => eprintln!(
            "no --checkpoint: evaluating the ID baselines only (most_popular, item_knn, ease)"
        ),
        // Fail before minutes of baselines, not after.
        Some(ckpt) => {
            longtail_interest::InterestCheckpoint::open(ckpt)?;
        }
    }
    if let Some(plan) = &args.plan {
        ensure!(
            plan.join("plan.json").is_file(),
            "--plan {}: no plan.json there (pass the --out of `longtail plan`)",
            plan.display()
        );
    }
    let split = RecSplit::load(&args.data)
        .with_context(|| format!("cannot load prepared dataset {}", args.data.display()))?;
    let segments = Segments::new(&split, &tail_rule, args.tail_user_fraction);
    let s = &split.stats;
    eprintln!(
        "split: {} rows, {} users ({} evaluated, {} with <3 items train only), {} items \
         ({} tail by {tail_rule} on training counts), {} repeated events dropped",
        s.rows,
        s.users,
        s.evaluated_users,
        s.short_users,
        s.items,
        segments.info.tail_items,
        s.duplicates_dropped
    );
    if s.unknown_items > 0 {
        eprintln!(
            "warning: {} interaction rows skipped: item not in {}",
            s.unknown_items,
            args.data.join("items.jsonl").display()
        );
    }
    let opts = RecOptions {
        tail_rule,
        tail_user_fraction: args.tail_user_fraction,
        lambda_grid: args.ease_lambdas.clone(),
        ..RecOptions::default()
    };
    let (mut report, ease) =
        rec::run_baselines(&split, &segments, &opts, &crate::progress::print_messages)?;
    if let Some(ckpt) = &args.checkpoint {
        let models = super::eval_rec_interest::InterestCheckpoints {
            data: &args.data,
            ckpt,
            compare: &args.compare,
            ease: &ease,
            device: &device,
        };
        super::eval_rec_interest::add_interest_models(
            &models,
            &split,
            &segments,
            &opts,
            &mut report,
        )?;
    }
    // `served` (the plan under evaluation, recorded in the report), then the compared plans.
    let plans = (args.plan.iter().map(|dir| ("served", dir, true))).chain(
        args.compare_plan
            .iter()
            .map(|c| (c.name.as_str(), &c.dir, false)),
    );
    for (name, dir, evaluated) in plans {
        let plan = super::eval_rec_interest::add_served_plan(
            dir,
            name,
            &args.data,
            &device,
            &split,
            &segments,
            &mut report,
        )?;
        if evaluated {
            report.plan = Some(plan);
        }
    }
    let files = rec::write_report(&report, &args.report)?;
    print!("{}", rec::report::markdown_table(&report));
    eprintln!(
        "wrote {}, {}, {}, {}{} in {:.1}s",
        files.json.display(),
        files.markdown.display(),
        files.head_tail_png.display(),
        files.frontier_png.display(),
        files
            .tradeoff_png
            .as_ref()
            .map_or(String::new(), |p| format!(", {}", p.display())),
        started.elapsed().as_secs_f64()
    );
    if let Some(g) = &args.gate {
        let candidate = if args.plan.is_some() {
            "served"
        } else {
            "longtail"
        };
        let verdict = rec::gate(&report.validation, candidate, g, args.gate_tolerance)?;
        println!("{verdict}");
        if !verdict.passed {
            std::process::exit(3);
        }
    }
    Ok(())
}

// The command's arguments (raw flags -> typed values; defaults from the library).
use clap::Args;
use longtail_data::TailRule;
use std::path::PathBuf;

use crate::shared_args::{defaults, DeviceArg, NamedCheckpoint};

#[derive(Args, Debug)]
pub struct EvalRecArgs {
    /// Prepared dataset directory (items.jsonl, interactions.csv, stats.json).
    #[arg(long)]
    pub data: PathBuf,

    /// Report path (FILE.json); FILE.md and the PNGs go beside it.
    #[arg(long)]
    pub report: PathBuf,

    /// TOML file whose [eval-rec] table supplies defaults for any flag.
    #[arg(long)]
    pub config: Option<PathBuf>,

    /// Interest checkpoint to evaluate next to the baselines (row `longtail`). A sequence
    /// checkpoint also adds the frozen-text rows of its text embeddings: `text-last-item` (the
    /// user is their last item's text embedding) and its EASE blend.
    #[arg(long)]
    pub checkpoint: Option<PathBuf>,

    /// More interest checkpoints as plain rows, `NAME=DIR` (repeatable), e.g.
    /// `--compare sasrec=runs/sasrec` for `train-interest --item-features id`.
    #[arg(long, value_name = "NAME=DIR")]
    pub compare: Vec<NamedCheckpoint>,

    /// A served plan (the --out of `longtail plan`): adds the row `served`, ranked through the
    /// same code as `recommend --plan` and `serve --plan` (blend, knob, exclusions), and the
    /// plan's components and validation numbers to the report.
    #[arg(long)]
    pub plan: Option<PathBuf>,

    /// More served plans as rows, `NAME=DIR` (repeatable), each ranked as `serve --plan DIR`
    /// ranks, e.g. `--compare-plan serving=runs/office-plan` for the plan in service.
    #[arg(long, value_name = "NAME=DIR")]
    pub compare_plan: Vec<NamedCheckpoint>,

    /// Promotion gate: exit with status 3 unless the candidate (`served` with --plan, else
    /// --checkpoint's `longtail`) keeps validation NDCG@10 and tail-item Recall@10 within
    /// --gate-tolerance standard errors of the row NAME (a --compare or --compare-plan row: the
    /// model in service). The re-training cycle (docs/serve.md) reloads only what passes.
    #[arg(long, value_name = "NAME")]
    pub gate: Option<String>,

    /// How far below the incumbent the gate lets each validation metric fall, in standard
    /// errors of the incumbent's value (sqrt(m (1 - m) / users)); 0 = no drop at all.
    #[arg(long, default_value_t = 1.0)]
    pub gate_tolerance: f64,

    /// Head/tail rule applied to training interaction counts (pareto:S, quantile:Q, min-count:N).
    #[arg(long, default_value_t = defaults::eval_rec().tail_rule)]
    pub tail_rule: TailRule,

    /// Share of evaluated users, shortest training histories first, counted as tail users.
    #[arg(long, default_value_t = defaults::eval_rec().tail_user_fraction)]
    pub tail_user_fraction: f64,

    /// EASE lambda grid searched on validation.
    #[arg(long, value_delimiter = ',', default_values_t = defaults::eval_rec().lambda_grid)]
    pub ease_lambdas: Vec<f64>,

    #[command(flatten)]
    pub device: DeviceArg,
}
