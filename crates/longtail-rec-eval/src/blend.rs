//! A model next to the baselines, as `eval-rec --checkpoint` reports it: the model itself, its
//! z-scored blend with EASE (`NAME+ease`, weight chosen on validation NDCG@10), the blend
//! re-ranked with a tail weight chosen on validation (`NAME+ease+tail`), and the re-ranking
//! trade-off curves of the model and the blend. Test targets never choose anything.

use longtail_progress::Event;
use longtail_rec::{Ease, RecSplit, Scorer, ZBlend};

use super::plan_search::{CandidateTable, SearchOptions};
use super::report::{BlendSearch, RecReport};
use super::run::{baseline_names, RecOptions};
use super::segments::Segments;
use super::tradeoff::selection_grid;
use crate::RecEvalError;

/// Blend weights of the model (`w`; EASE gets `1 - w`) tried on validation.
pub const BLEND_GRID: [f64; 5] = [0.5, 0.6, 0.7, 0.8, 0.9];

/// The blend weight with the best validation NDCG@10 over `grid` (ties: the first). The
/// users' candidates (each component's top 100 plus the target, z-scored over the whole
/// catalogue) are scored once and every weight is ranked on them, as `longtail plan` does: one
/// pass over the catalogue instead of one per weight. A rank the candidates cannot prove exact
/// (rare) is counted and logged; the chosen blend's row is then measured on the full catalogue.
pub fn search_blend_weight(
    split: &RecSplit,
    blend_name: &str,
    model: &dyn Scorer,
    ease: &dyn Scorer,
    grid: &[f64],
    log: &dyn Fn(Event<'_>),
) -> Result<BlendSearch, RecEvalError> {
    let table = CandidateTable::build(split, &[model, ease], SearchOptions::default().top_m)?;
    let mut searched = Vec::with_capacity(grid.len());
    for &w in grid {
        let (ndcg, unsure) = table.ndcg_10(&[w, 1.0 - w]);
        log(Event::Message(&format!(
            "{blend_name} w={w}: validation NDCG@10 {ndcg:.4} ({unsure} of {} users' ranks \
             bounded, not exact)",
            table.users()
        )));
        searched.push((w, ndcg));
    }
    let chosen = searched
        .iter()
        .fold(None, |best: Option<(f64, f64)>, &(w, n)| match best {
            Some((_, b)) if b >= n => best,
            _ => Some((w, n)),
        })
        .map(|(w, _)| w)
        .ok_or_else(|| RecEvalError::Option("empty blend grid".into()))?;
    Ok(BlendSearch {
        model: blend_name.into(),
        chosen,
        grid: searched,
    })
}

/// Adds `model`, `NAME+ease` and `NAME+ease+tail` (when a tail weight meets the floor) to a
/// report that already holds the baselines (`ease`: the one they fitted, at the λ they chose),
/// plus the trade-off curves of `model` and the blend over `opts.knobs`. `log` receives
/// progress lines.
pub fn add_blended_models(
    split: &RecSplit,
    segments: &Segments,
    opts: &RecOptions,
    model: &dyn Scorer,
    ease: &Ease,
    report: &mut RecReport,
    log: &dyn Fn(Event<'_>),
) -> Result<(), RecEvalError> {
    let name = model.name();
    report.add_model(split, segments, model)?;
    log(Event::Message(&format!("{name} done")));

    let blend_name = format!("{name}+ease");
    let search = search_blend_weight(split, &blend_name, model, ease, &BLEND_GRID, log)?;
    let blend = ZBlend::pair(blend_name.clone(), model, ease, search.chosen as f32);
    report.add_model(split, segments, &blend)?;
    log(Event::Message(&format!(
        "{blend_name} (w={}) done",
        search.chosen
    )));
    report.blend = Some(search);

    let tail_name = format!("{blend_name}+tail");
    let chosen = report.add_tail_weighted(
        split,
        segments,
        &blend,
        &tail_name,
        &selection_grid(),
        &baseline_names(),
    )?;
    log(Event::Message(&format!(
        "{tail_name}: tail weight chosen on validation {chosen:?}"
    )));
    report.add_tradeoff(split, segments, model, &opts.knobs)?;
    report.add_tradeoff(split, segments, &blend, &opts.knobs)?;
    log(Event::Message(&format!(
        "re-ranking trade-offs on {name} and {blend_name} done"
    )));
    Ok(())
}
