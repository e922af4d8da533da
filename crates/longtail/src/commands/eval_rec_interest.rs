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
use longtail_eval::rec::{add_blended_models, RecOptions, RecReport, Segments};
use longtail_interest::scorer::InterestScorer;
use longtail_interest::InterestIndex;
use longtail_model::Device;
use longtail_rec::{ItemIdx, RecSplit, Stage};

use crate::cli::NamedCheckpoint;

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
            add_blended_models(split, segments, opts, &text, report, &log)?;
        }
    } else {
        add_blended_models(split, segments, opts, &interest, report, &log)?;
    }
    for c in compare {
        let other = load(&dataset, &c.dir, device)?;
        let scorer = InterestScorer::new(&other, c.name.clone()).precompute(&histories)?;
        report.add_model(split, segments, &scorer)?;
        log(&format!("{} ({}) done", c.name, c.dir.display()));
    }
    Ok(())
}
