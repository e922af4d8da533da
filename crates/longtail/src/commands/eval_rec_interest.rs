//! The interest-model half of `longtail eval-rec --checkpoint`: the checkpoint as a `Scorer`
//! (`longtail`), a z-scored blend with EASE (`longtail+ease`, weight chosen on validation
//! NDCG@10), and the re-ranking trade-off curve on `longtail`.

use std::path::Path;

use anyhow::{Context, Result};
use longtail_data::PreparedDataset;
use longtail_eval::rec::{self, Ease, RecOptions, RecReport, RecSplit, Segments, Stage};
use longtail_interest::recommend::Recommender;
use longtail_interest::scorer::{InterestScorer, ZBlend};

/// Blend weights of the interest model tried on validation.
const BLEND_GRID: [f32; 5] = [0.5, 0.6, 0.7, 0.8, 0.9];

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
    let (recommender, status) = Recommender::load(ckpt, &dataset.items, None, 64)
        .with_context(|| format!("cannot load interest checkpoint {}", ckpt.display()))?;
    eprintln!(
        "  interest checkpoint {}: item embeddings {status:?}",
        ckpt.display()
    );
    let interest = InterestScorer {
        rec: &recommender,
        name: "longtail".into(),
    };
    report.add_model(split, segments, &interest)?;
    eprintln!("  longtail done");

    let lambda = report
        .ease_lambda
        .as_ref()
        .map(|l| l.chosen)
        .context("EASE λ missing from the baseline report")?;
    let ease = Ease::fit(split, lambda)?;
    let mut best: Option<(f32, f64)> = None;
    for &w in &BLEND_GRID {
        let blend = ZBlend {
            name: "longtail+ease".into(),
            a: &interest,
            b: &ease,
            w,
        };
        let ndcg = rec::evaluate(split, segments, &blend, Stage::Validation)?
            .overall
            .ndcg_10;
        eprintln!("  longtail+ease w={w}: validation NDCG@10 {ndcg:.4}");
        if best.is_none_or(|(_, b)| ndcg > b) {
            best = Some((w, ndcg));
        }
    }
    let (w, _) = best.expect("non-empty grid");
    let blend = ZBlend {
        name: "longtail+ease".into(),
        a: &interest,
        b: &ease,
        w,
    };
    report.add_model(split, segments, &blend)?;
    eprintln!("  longtail+ease (w={w}) done");
    report.set_tradeoff(split, segments, &interest, &opts.knobs)?;
    eprintln!("  re-ranking trade-off on longtail done");
    Ok(())
}
