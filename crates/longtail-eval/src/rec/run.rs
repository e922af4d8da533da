//! The baseline half of `longtail eval-rec`: most popular, item-kNN, EASE
//! (λ chosen on validation), and the re-ranking trade-off of the best of them.

use longtail_data::TailRule;

use longtail_rec::ease::LAMBDA_GRID;
use longtail_rec::itemknn::cooccurrence;
use longtail_rec::{Ease, ItemKnn, Knob, MostPopular, RecSplit, Scorer, Stage};

use super::metrics::evaluate;
use super::report::{LambdaSearch, RecReport};
use super::segments::Segments;
use super::tradeoff::default_knobs;
use crate::EvalError;

#[derive(Debug, Clone)]
pub struct RecOptions {
    pub tail_rule: TailRule,
    /// Share of evaluated users counted as tail users (shortest histories).
    pub tail_user_fraction: f64,
    pub lambda_grid: Vec<f64>,
    pub knobs: Vec<Knob>,
}

impl Default for RecOptions {
    fn default() -> Self {
        Self {
            tail_rule: TailRule::default(),
            tail_user_fraction: 0.2,
            lambda_grid: LAMBDA_GRID.to_vec(),
            knobs: default_knobs(),
        }
    }
}

/// Baseline names in the report.
pub const BASELINES: [&str; 3] = ["most_popular", "item_knn", "ease"];

/// EASE fitted on the training split for each λ of `grid`, the one with the best validation
/// NDCG@10 kept (ties: the earlier λ), and the search.
pub fn fit_ease(
    split: &RecSplit,
    segments: &Segments,
    grid: &[f64],
    log: &dyn Fn(&str),
) -> Result<(Ease, LambdaSearch), EvalError> {
    if grid.is_empty() {
        return Err(EvalError::Option("EASE λ grid is empty".into()));
    }
    let gram = cooccurrence(split);
    let n = split.n_items();
    let mut best: Option<(Ease, f64)> = None;
    let mut searched = Vec::new();
    for &lambda in grid {
        let ease = Ease::fit_gram(&gram, n, lambda)?;
        let ndcg = evaluate(split, segments, &ease, Stage::Validation)?
            .overall
            .ndcg_10;
        log(&format!("ease λ={lambda}: validation NDCG@10 {ndcg:.4}"));
        searched.push((lambda, ndcg));
        if best.as_ref().is_none_or(|(_, b)| ndcg > *b) {
            best = Some((ease, ndcg));
        }
    }
    let (ease, _) = best.expect("non-empty grid");
    let search = LambdaSearch {
        chosen: ease.lambda,
        grid: searched,
    };
    Ok((ease, search))
}

/// Fits and evaluates the three baselines; `log` receives progress lines.
/// The trade-off curve is computed for the baseline with the best
/// validation NDCG@10.
pub fn run_baselines(
    split: &RecSplit,
    segments: &Segments,
    opts: &RecOptions,
    log: &dyn Fn(&str),
) -> Result<RecReport, EvalError> {
    if split.stats.evaluated_users == 0 {
        return Err(EvalError::Empty {
            what: "eval-rec: no user has 3 or more distinct items".into(),
        });
    }
    if opts.lambda_grid.is_empty() {
        return Err(EvalError::Option("EASE λ grid is empty".into()));
    }
    let mut report = RecReport::new(split, segments);
    let popular = MostPopular::fit(split);
    report.add_model(split, segments, &popular)?;
    log("most_popular done");
    let knn = ItemKnn::fit(split);
    report.add_model(split, segments, &knn)?;
    log("item_knn done");

    let (ease, search) = fit_ease(split, segments, &opts.lambda_grid, log)?;
    report.ease_lambda = Some(search);
    report.add_model(split, segments, &ease)?;
    log("ease done");

    let scorers: [&dyn Scorer; 3] = [&popular, &knn, &ease];
    let best_name = report
        .best_on_validation(&BASELINES)
        .expect("baselines evaluated");
    let best = scorers
        .iter()
        .find(|s| s.name() == best_name)
        .expect("named baseline");
    report.add_tradeoff(split, segments, *best, &opts.knobs)?;
    log(&format!("re-ranking trade-off on {best_name} done"));
    Ok(report)
}
