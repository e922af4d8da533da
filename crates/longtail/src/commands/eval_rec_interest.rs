//! The interest-model half of `longtail eval-rec --checkpoint`: loads the checkpoint as a
//! `Scorer` (`longtail`) and hands it to longtail-eval's [`add_blended_models`], which adds the
//! model, its EASE blend (`longtail+ease`), the blend re-ranked with a tail weight chosen on
//! validation (`longtail+ease+tail`) and their trade-off curves.

use std::path::Path;

use anyhow::{Context, Result};
use longtail_data::PreparedDataset;
use longtail_eval::rec::{add_blended_models, RecOptions, RecReport, Segments};
use longtail_interest::scorer::InterestScorer;
use longtail_interest::InterestIndex;
use longtail_rec::RecSplit;

pub fn add_interest_models(
    data: &Path,
    ckpt: &Path,
    split: &RecSplit,
    segments: &Segments,
    opts: &RecOptions,
    report: &mut RecReport,
) -> Result<()> {
    let dataset = PreparedDataset::load(data)
        .with_context(|| format!("cannot load prepared dataset {}", data.display()))?;
    let (index, status) = InterestIndex::load(ckpt, &dataset.items, None, 64)
        .with_context(|| format!("cannot load interest checkpoint {}", ckpt.display()))?;
    eprintln!(
        "  interest checkpoint {}: item embeddings {status:?}",
        ckpt.display()
    );
    let interest = InterestScorer {
        index: &index,
        name: "longtail".into(),
    };
    add_blended_models(split, segments, opts, &interest, report, &|line| {
        eprintln!("  {line}")
    })?;
    Ok(())
}
