//! The baseline half of `longtail eval-rec`: most popular, item-kNN, EASE
//! (λ chosen on validation), and the re-ranking trade-off of the best of them.

use longtail_data::TailRule;
use longtail_progress::Event;

use longtail_rec::ease::LAMBDA_GRID;
use longtail_rec::itemknn::cooccurrence;
use longtail_rec::{Ease, Knob, RecSplit, Scorer, Stage, ID_BASELINES};

use super::metrics::evaluate;
use super::report::{LambdaSearch, RecReport};
use super::segments::Segments;
use super::tradeoff::default_knobs;
use crate::RecEvalError;

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

/// Baseline row names in the report, in order: longtail-rec's list, then EASE.
pub fn baseline_names() -> Vec<&'static str> {
    ID_BASELINES
        .iter()
        .map(|b| b.name)
        .chain(["ease"])
        .collect()
}

/// Values of λ in a row below the best after which the walk up the grid stops: validation
/// NDCG@10 against λ rises to one peak and falls (Office, Beauty and MovieLens all do), and
/// each λ costs a dense inverse (about 20 s at 12k items on 2 cores).
pub const LAMBDA_PATIENCE: usize = 2;

/// EASE fitted on the training split for the values of `grid` in ascending order, the one with
/// the best validation NDCG@10 kept (ties: the smaller λ), and the search. The walk stops after
/// [`LAMBDA_PATIENCE`] values in a row below the best; the search lists what was evaluated.
pub fn fit_ease(
    split: &RecSplit,
    segments: &Segments,
    grid: &[f64],
    log: &dyn Fn(Event<'_>),
) -> Result<(Ease, LambdaSearch), RecEvalError> {
    if grid.is_empty() {
        return Err(RecEvalError::Option("EASE λ grid is empty".into()));
    }
    let gram = cooccurrence(split);
    let n = split.n_items();
    let mut grid = grid.to_vec();
    grid.sort_by(f64::total_cmp);
    grid.dedup();
    let mut best: Option<(Ease, f64)> = None;
    let mut searched = Vec::new();
    let mut below = 0;
    for &lambda in &grid {
        let ease = Ease::fit_gram(&gram, n, lambda)?;
        let ndcg = evaluate(split, segments, &ease, Stage::Validation)?
            .overall
            .ndcg_10;
        log(Event::Message(&format!(
            "ease λ={lambda}: validation NDCG@10 {ndcg:.4}"
        )));
        searched.push((lambda, ndcg));
        if best.as_ref().is_none_or(|(_, b)| ndcg > *b) {
            best = Some((ease, ndcg));
            below = 0;
        } else {
            below += 1;
            if below == LAMBDA_PATIENCE {
                log(Event::Message(&format!(
                    "ease: {LAMBDA_PATIENCE} values of λ in a row below the best; the larger \
                     ones are not tried"
                )));
                break;
            }
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
/// validation NDCG@10. Returns the report and the fitted EASE (the blends reuse it).
pub fn run_baselines(
    split: &RecSplit,
    segments: &Segments,
    opts: &RecOptions,
    log: &dyn Fn(Event<'_>),
) -> Result<(RecReport, Ease), RecEvalError> {
    if split.stats.evaluated_users == 0 {
        return Err(RecEvalError::Empty {
            what: "eval-rec: no user has 3 or more distinct items".into(),
        });
    }
    if opts.lambda_grid.is_empty() {
        return Err(RecEvalError::Option("EASE λ grid is empty".into()));
    }
    let mut report = RecReport::new(split, segments);
    let mut fitted = Vec::new();
    for b in &ID_BASELINES {
        let model = (b.fit)(split);
        report.add_model(split, segments, &model)?;
        log(Event::Message(&format!("{} done", b.name)));
        fitted.push(model);
    }

    let (ease, search) = fit_ease(split, segments, &opts.lambda_grid, log)?;
    report.ease_lambda = Some(search);
    report.add_model(split, segments, &ease)?;
    log(Event::Message("ease done"));

    let mut scorers: Vec<&dyn Scorer> = fitted.iter().map(|f| f as &dyn Scorer).collect();
    scorers.push(&ease);
    let best_name = report
        .best_on_validation(&baseline_names())
        .expect("baselines evaluated");
    let best = scorers
        .iter()
        .find(|s| s.name() == best_name)
        .expect("named baseline");
    report.add_tradeoff(split, segments, *best, &opts.knobs)?;
    log(Event::Message(&format!(
        "re-ranking trade-off on {best_name} done"
    )));
    Ok((report, ease))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan_search::tests::split;

    /// The walk is ascending whatever the order given, keeps the best λ of what it tried, and
    /// stops after LAMBDA_PATIENCE values below the best: the full grid's choice is kept
    /// whenever the curve has one peak.
    #[test]
    fn the_lambda_walk_stops_after_the_peak_and_keeps_the_full_grids_choice() {
        let split = split();
        let segments = Segments::new(&split, &TailRule::default(), 0.2);
        let grid = [5000.0, 1.0, 10.0, 0.1, 100.0, 1000.0, 1.0];
        let (ease, search) = fit_ease(&split, &segments, &grid, &|_| {}).unwrap();
        let tried: Vec<f64> = search.grid.iter().map(|(l, _)| *l).collect();
        let mut sorted = tried.clone();
        sorted.sort_by(f64::total_cmp);
        assert_eq!(tried, sorted, "ascending");
        let best = search.grid.iter().fold(
            (0.0, f64::MIN),
            |b, &(l, n)| if n > b.1 { (l, n) } else { b },
        );
        assert_eq!(search.chosen, best.0);
        assert_eq!(ease.lambda, best.0);
        let after_best = tried.iter().filter(|&&l| l > best.0).count();
        assert!(after_best <= LAMBDA_PATIENCE, "{:?}", search.grid);
        // each λ alone: the walk's choice is the best over the values it tried
        let full: Vec<(f64, f64)> = [0.1, 1.0, 10.0, 100.0, 1000.0, 5000.0]
            .iter()
            .map(|&l| {
                let (_, s) = fit_ease(&split, &segments, &[l], &|_| {}).unwrap();
                s.grid[0]
            })
            .collect();
        for (l, n) in &search.grid {
            let (_, m) = full.iter().find(|(fl, _)| fl == l).unwrap();
            assert_eq!(n, m, "λ={l}");
        }
    }
}
