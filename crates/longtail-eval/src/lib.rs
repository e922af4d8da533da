//! longtail-eval: how well do scores tell tail items from head items?
//!
//! * [`metrics`]: ROC-AUC, average precision, macro-F1/accuracy at a
//!   threshold chosen on validation, per-class numbers, confusion matrix,
//!   expected calibration error and ROC curves, matching scikit-learn
//!   ([`evaluate_scores`]).
//! * [`baselines`]: the majority class and TF-IDF + logistic regression on the
//!   items' text, trained on train and evaluated like the model
//!   ([`baselines::run`]).
//! * [`report`]: [`ClassificationReport`] (JSON), its Markdown table and PNG
//!   plots ([`report::write`]).
//!
//! The positive class is always `tail`.

#![forbid(unsafe_code)]

pub mod baselines;
pub mod data;
mod error;
pub mod lbfgs;
pub mod logreg;
pub mod report;
pub mod sparse;
pub mod text;

pub use baselines::{BaselineOptions, BaselineResults, LabelledTexts, TextSplits};
pub use data::{load_text_splits, text_splits};
pub use error::EvalError;
/// The classification metrics live in their own small crate (the trainer needs them alone).
pub use longtail_metrics as metrics;
pub use longtail_metrics::{
    compare_precision, evaluate_at, evaluate_scores, Metrics, PrecisionDiff, RocCurve,
};
pub use longtail_plot::Series;
pub use report::{ClassificationReport, Summary};
