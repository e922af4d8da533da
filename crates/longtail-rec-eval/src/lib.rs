//! longtail-rec-eval: top-K recommendation evaluation with a head/tail breakdown (`longtail
//! eval-rec`) and the served plan's search on validation (`longtail plan`). The models, the
//! split and the re-ranking knobs are longtail-rec's; this crate measures and chooses them.
//!
//! * [`segments`]: tail items (tail rule on training counts) and tail users.
//! * [`metrics`]: Recall/NDCG@10/20 per segment, coverage, APLT, Gini.
//! * [`tradeoff`]: the re-ranking trade-off curve and the tail-weight selection rule.
//! * [`run`]: the baseline run (most popular, item-kNN, EASE with λ chosen on validation);
//!   [`blend`]: a model, its z-scored blend with EASE (weight chosen on validation) and the
//!   blend re-ranked with a tail weight chosen on validation.
//! * [`plan_search`]: the served plan's choices on validation (blend weights by coordinate
//!   ascent on NDCG@10, then on the served tail recall within a relevance budget).
//! * [`report`]: JSON / Markdown / PNG report.
//!
//! Adding a model: build a [`RecSplit`](longtail_rec::RecSplit) and [`Segments`], implement
//! [`Scorer`](longtail_rec::Scorer), then `report.add_model(&split, &segments, &scorer)`.

#![forbid(unsafe_code)]

pub mod blend;
mod error;
pub mod gate;
pub mod metrics;
pub mod plan_search;
pub mod report;
pub mod run;
pub mod segments;
pub mod tradeoff;

pub use blend::{add_blended_models, search_blend_weight, BLEND_GRID};
pub use error::RecEvalError;
pub use gate::{gate, standard_error, GateVerdict};
pub use metrics::{evaluate, rank_users, ModelMetrics, SegmentMetrics, UserOutcome};
pub use plan_search::{
    choose_tail_by_budget, search_tail, search_weights, tail_points, BlendChoice, CandidateTable,
    SearchOptions, TailChoice,
};
pub use report::{write_report, RecReport, RecReportFiles, TAIL_WEIGHT_RULE};
pub use run::{baseline_names, fit_ease, run_baselines, RecOptions};
pub use segments::Segments;
pub use tradeoff::{
    choose_tail_weight, selection_grid, tradeoff_curve, tradeoff_curve_labelled, TradeoffPoint,
};
