//! The interest-model half of `longtail eval-rec --checkpoint`: loads the checkpoint as a
//! `Scorer` (`longtail`) and adds it to the report.
//!
//! * A sequence checkpoint (the served model) is added alone, with its re-ranking trade-off
//!   curve; its text embeddings also give the frozen-text baseline `text-last-item` (the user
//!   is their last item's text embedding), which goes through longtail-eval's
//!   [`add_blended_models`]: `text-last-item+ease` (weight chosen on validation) and
//!   `text-last-item+ease+tail`.
//! * A bi-encoder checkpoint goes through [`add_blended_models`] itself (`longtail`,
//!   `longtail+ease`, `longtail+ease+tail`), as before the sequence model.
//! * `--compare NAME=DIR` checkpoints are plain rows.

use std::path::Path;

use anyhow::{Context, Result};
use longtail_data::PreparedDataset;
use longtail_interest::scorer::InterestScorer;
use longtail_interest::{InterestIndex, Recommender, RecommenderOptions, ServedScorer};
use longtail_model::Device;
use longtail_rec::{ItemIdx, Knob, RecSplit, Stage, TailWeighted};
use longtail_rec_eval::{add_blended_models, RecOptions, RecReport, Segments};

use crate::shared_args::NamedCheckpoint;

/// Every history the evaluation ranks for: each evaluated user at validation and test.
fn histories(split: &RecSplit) -> Vec<Vec<ItemIdx>> {
    split
        .eval_users()
        .into_iter()
        .flat_map(|u| [Stage::Validation, Stage::Test].map(|s| split.history(u, s)))
        .collect()
}

fn load(data: &PreparedDataset, ckpt: &Path, device: &Device) -> Result<InterestIndex> {
    let (index, status) = InterestIndex::load(ckpt, &data.items, None, 64, device)
        .with_context(|| format!("cannot load interest checkpoint {}", ckpt.display()))?;
    eprintln!(
        "  interest checkpoint {} ({}): item embeddings {status:?}",
        ckpt.display(),
        index.meta.architecture
    );
    Ok(index)
}

/// The interest checkpoints of one `eval-rec` run and where they run.
pub struct InterestCheckpoints<'a> {
    /// The prepared dir the checkpoints embed their items from.
    pub data: &'a Path,
    /// `--checkpoint`: the `longtail` row.
    pub ckpt: &'a Path,
    /// `--compare NAME=DIR`: one more row each.
    pub compare: &'a [NamedCheckpoint],
    /// The baselines' EASE (the blends' partner).
    pub ease: &'a longtail_rec::Ease,
    pub device: &'a Device,
}

pub fn add_interest_models(
    models: &InterestCheckpoints<'_>,
    split: &RecSplit,
    segments: &Segments,
    opts: &RecOptions,
    report: &mut RecReport,
) -> Result<()> {
    let InterestCheckpoints {
        data,
        ckpt,
        compare,
        ease,
        device,
    } = *models;
    let dataset = PreparedDataset::load(data)
        .with_context(|| format!("cannot load prepared dataset {}", data.display()))?;
    let log = |line: &str| eprintln!("  {line}");
    let histories = histories(split);
    let index = load(&dataset, ckpt, device)?;
    let interest = InterestScorer::new(&index, "longtail").precompute(&histories)?;
    if index.is_sequence() {
        report.add_model(split, segments, &interest)?;
        report.add_tradeoff(split, segments, &interest, &opts.knobs)?;
        log("longtail (sequence model) and its re-ranking trade-off done");
        if let Some(text) = index.text_last_item() {
            let text = InterestScorer::new(&text, "text-last-item").precompute(&histories)?;
            add_blended_models(
                split,
                segments,
                opts,
                &text,
                ease,
                report,
                &crate::progress::print_messages,
            )?;
        }
    } else {
        add_blended_models(
            split,
            segments,
            opts,
            &interest,
            ease,
            report,
            &crate::progress::print_messages,
        )?;
    }
    for c in compare {
        let other = load(&dataset, &c.dir, device)?;
        let scorer = InterestScorer::new(&other, c.name.clone()).precompute(&histories)?;
        report.add_model(split, segments, &scorer)?;
        log(&format!("{} ({}) done", c.name, c.dir.display()));
    }
    Ok(())
}

/// The row `name` (`served` for `--plan`): the plan in `plan_dir` loaded as `recommend --plan`
/// and `serve --plan` load it, ranked through [`Recommender::ranking_scores`] and re-ranked by
/// the plan's knob on the prepared tail labels (exactly `Recommender::recommend`'s list).
/// Returns the plan.
pub fn add_served_plan(
    plan_dir: &Path,
    name: &str,
    data: &Path,
    device: &Device,
    split: &RecSplit,
    segments: &Segments,
    report: &mut RecReport,
) -> Result<longtail_rec::Plan> {
    let opts = RecommenderOptions {
        batch_size: 64,
        device: device.clone(),
        ..RecommenderOptions::default()
    };
    let (mut rec, _) = Recommender::load_plan(plan_dir, data, &opts)
        .with_context(|| format!("cannot load plan {}", plan_dir.display()))?;
    let h: Vec<Vec<usize>> = histories(split)
        .into_iter()
        .map(|h| h.into_iter().map(|i| i as usize).collect())
        .collect();
    rec.precompute(&h)?;
    let plan = rec.plan().cloned().expect("loaded from a plan");
    let served = ServedScorer {
        rec: &rec,
        name: name.into(),
    };
    match plan.knob {
        None => report.add_model(split, segments, &served)?,
        Some(Knob::TailWeight(weight)) => {
            let reranked = TailWeighted {
                name: name.into(),
                inner: &served,
                is_tail: rec.tail_labels(),
                weight,
            };
            report.add_model(split, segments, &reranked)?;
        }
        Some(Knob::TailShare(_)) => anyhow::bail!(
            "{}: a tail-share knob cannot be measured as a ranking; plans choose tail weights",
            plan_dir.display()
        ),
    }
    eprintln!(
        "  {name} ({}: {}) done",
        plan_dir.display(),
        rec.components()
            .iter()
            .map(|(n, w)| format!("{n} {w:.3}"))
            .collect::<Vec<_>>()
            .join(" + ")
    );
    Ok(plan)
}
