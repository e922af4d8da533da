//! `longtail eval-rec`: leave-last-out top-K evaluation of the ID baselines (and, once
//! longtail-interest provides a scorer, of an interest checkpoint) with head/tail segments.

use crate::cli::EvalRecArgs;
use anyhow::{ensure, Context, Result};
use longtail_eval::rec::{self, RecOptions, Segments};
use longtail_rec::RecSplit;
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
        .map(|c| ("--compare", "interest.json", c)))
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
        Some(ckpt) => ensure!(
            ckpt.join("interest.json").is_file(),
            "cannot load interest checkpoint {}: no interest.json (pass the --out of \
             `longtail train-interest`)",
            ckpt.display()
        ),
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
        rec::run_baselines(&split, &segments, &opts, &|line| eprintln!("  {line}"))?;
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
