//! The interest-model half of `longtail eval-rec --checkpoint`: the checkpoint as a `Scorer`
//! (`longtail`), a z-scored blend with EASE (`longtail+ease`, weight chosen on validation
//! NDCG@10), the blend re-ranked with a tail weight chosen on validation
//! (`longtail+ease+tail`), and the re-ranking trade-off curves of `longtail` and the blend.

use std::path::Path;

use anyhow::{Context, Result};
use longtail_data::PreparedDataset;
use longtail_eval::rec::report::BlendSearch;
use longtail_eval::rec::rerank::selection_grid;
use longtail_eval::rec::{self, Ease, RecOptions, RecReport, RecSplit, Scorer, Segments, Stage};
use longtail_interest::recommend::Recommender;
use longtail_interest::scorer::{InterestScorer, ZBlend};

/// Blend weights of the interest model tried on validation.
const BLEND_GRID: [f64; 5] = [0.5, 0.6, 0.7, 0.8, 0.9];
const BLEND: &str = "longtail+ease";
const BLEND_TAIL: &str = "longtail+ease+tail";

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
    let search = search_blend_weight(split, segments, &interest, &ease)?;
    let blend = ZBlend {
        name: BLEND.into(),
        a: &interest,
        b: &ease,
        w: search.chosen as f32,
    };
    report.add_model(split, segments, &blend)?;
    eprintln!("  {BLEND} (w={}) done", search.chosen);
    report.blend = Some(search);

    let baselines = rec::BASELINES;
    let chosen = report.add_tail_weighted(
        split,
        segments,
        &blend,
        BLEND_TAIL,
        &selection_grid(),
        &baselines,
    )?;
    eprintln!("  {BLEND_TAIL}: tail weight chosen on validation {chosen:?}");
    report.add_tradeoff(split, segments, &interest, &opts.knobs)?;
    report.add_tradeoff(split, segments, &blend, &opts.knobs)?;
    eprintln!("  re-ranking trade-offs on longtail and {BLEND} done");
    Ok(())
}

/// The blend weight with the best validation NDCG@10 over [`BLEND_GRID`] (ties: the first).
fn search_blend_weight(
    split: &RecSplit,
    segments: &Segments,
    interest: &dyn Scorer,
    ease: &dyn Scorer,
) -> Result<BlendSearch> {
    let mut grid = Vec::with_capacity(BLEND_GRID.len());
    for &w in &BLEND_GRID {
        let blend = ZBlend {
            name: BLEND.into(),
            a: interest,
            b: ease,
            w: w as f32,
        };
        let ndcg = rec::evaluate(split, segments, &blend, Stage::Validation)?
            .overall
            .ndcg_10;
        eprintln!("  {BLEND} w={w}: validation NDCG@10 {ndcg:.4}");
        grid.push((w, ndcg));
    }
    let chosen = grid
        .iter()
        .fold(None, |best: Option<(f64, f64)>, &(w, n)| match best {
            Some((_, b)) if b >= n => best,
            _ => Some((w, n)),
        })
        .map(|(w, _)| w)
        .context("empty blend grid")?;
    Ok(BlendSearch {
        model: BLEND.into(),
        chosen,
        grid,
    })
}
