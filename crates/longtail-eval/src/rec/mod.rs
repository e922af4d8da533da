//! Top-K recommendation evaluation with a head/tail breakdown
//! (`longtail eval-rec`).
//!
//! * [`split`]: leave-last-out split of a prepared dir ([`RecSplit`]).
//! * [`segments`]: tail items (tail rule on training counts) and tail users.
//! * [`scorer`]: the [`Scorer`] trait any model implements, full ranking.
//! * [`metrics`]: Recall/NDCG@10/20 per segment, coverage, APLT, Gini.
//! * [`popular`], [`itemknn`], [`ease`] (+ [`linalg`]): ID baselines.
//! * [`rerank`]: head/tail re-ranking knobs and the trade-off curve.
//! * [`report`]: JSON / Markdown / PNG report; [`run`]: the baseline run.
//!
//! Adding a model: build a [`RecSplit`] and [`Segments`], implement
//! [`Scorer`], then `report.add_model(&split, &segments, &scorer)`.

pub mod ease;
pub mod itemknn;
pub mod linalg;
pub mod metrics;
pub mod popular;
pub mod report;
pub mod rerank;
pub mod run;
pub mod scorer;
pub mod segments;
pub mod split;

pub use ease::Ease;
pub use itemknn::ItemKnn;
pub use metrics::{evaluate, rank_users, ModelMetrics, SegmentMetrics, UserOutcome};
pub use popular::MostPopular;
pub use report::{write_report, RecReport, RecReportFiles, TAIL_WEIGHT_RULE};
pub use rerank::{
    choose_tail_weight, rerank, tail_weighted, tradeoff_curve, Knob, TailWeighted, TradeoffPoint,
};
pub use run::{run_baselines, RecOptions, BASELINES};
pub use scorer::Scorer;
pub use segments::Segments;
pub use split::{ItemIdx, RecSplit, Stage, UserIdx};
