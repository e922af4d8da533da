//! longtail-metrics: binary classification metrics for tail prediction, matching scikit-learn
//! (ROC-AUC, average precision, F1 and accuracy at a validation-chosen threshold, per-class
//! numbers, the confusion matrix, expected calibration error, ROC curves). Small on purpose:
//! the trainer needs it, and nothing of the evaluation reports or baselines.
//!
//! The positive class is `tail`: a score is the predicted probability that an
//! item is tail. [`evaluate_scores`] picks the decision threshold on the
//! validation split and reports the test split at that threshold.

#![forbid(unsafe_code)]

mod calibration;
mod error;
mod ranking;
mod threshold;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

mod precision;
pub use calibration::{expected_calibration_error, ECE_BINS};
pub use error::MetricsError;
pub use precision::{compare_precision, PrecisionDiff};
pub use ranking::{average_precision, roc_auc, roc_curve, RocCurve};
pub use threshold::{select_threshold, ClassMetrics, Counts};

/// Class names used in reports: index 0 is the negative class.
pub const CLASS_NAMES: [&str; 2] = ["head", "tail"];

/// A confusion matrix laid out like `sklearn.metrics.confusion_matrix`:
/// rows are true classes, columns predicted classes, in `labels` order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Confusion {
    pub labels: [String; 2],
    pub matrix: [[u64; 2]; 2],
}

impl From<Counts> for Confusion {
    fn from(c: Counts) -> Self {
        Self {
            labels: CLASS_NAMES.map(String::from),
            matrix: [[c.tn, c.fp], [c.fn_, c.tp]],
        }
    }
}

/// Everything measured on one evaluation split.
#[derive(Debug, Clone, PartialEq)]
pub struct Metrics {
    pub auc: f64,
    /// Average precision of the tail class.
    pub pr_auc: f64,
    pub macro_f1: f64,
    pub accuracy: f64,
    /// Top-label ECE with [`ECE_BINS`] bins (independent of `threshold`).
    pub ece: f64,
    /// Decision threshold chosen on the validation split (tail iff score >= it).
    pub threshold: f64,
    /// Keyed by [`CLASS_NAMES`].
    pub per_class: BTreeMap<String, ClassMetrics>,
    pub confusion: Confusion,
    pub n: usize,
    pub roc: RocCurve,
}

/// Scores and labels split into parallel vectors, checked: non-empty, every
/// score a finite probability, both classes present.
struct Checked {
    scores: Vec<f64>,
    labels: Vec<bool>,
}

fn check<S: Into<f64> + Copy>(what: &str, pairs: &[(S, bool)]) -> Result<Checked, MetricsError> {
    if pairs.is_empty() {
        return Err(MetricsError::Empty { what: what.into() });
    }
    let mut scores = Vec::with_capacity(pairs.len());
    let mut labels = Vec::with_capacity(pairs.len());
    for (index, &(s, l)) in pairs.iter().enumerate() {
        let value: f64 = s.into();
        // also rejects NaN: the comparison is false
        if !(0.0..=1.0).contains(&value) {
            return Err(MetricsError::BadScore {
                what: what.into(),
                index,
                value,
            });
        }
        scores.push(value);
        labels.push(l);
    }
    let positives = labels.iter().filter(|&&l| l).count();
    if positives == 0 || positives == labels.len() {
        return Err(MetricsError::OneClass {
            what: what.into(),
            positives,
            n: labels.len(),
        });
    }
    Ok(Checked { scores, labels })
}

/// Chooses the threshold maximising macro-F1 on `validation`, then measures
/// `test` (scores are tail probabilities, labels `true` for tail).
///
/// Errors when a split is empty, has a score outside `[0, 1]` (or NaN), or
/// has only one class.
pub fn evaluate_scores<S: Into<f64> + Copy>(
    validation: &[(S, bool)],
    test: &[(S, bool)],
) -> Result<Metrics, MetricsError> {
    let val = check("validation scores", validation)?;
    let threshold = select_threshold(&val.scores, &val.labels);
    evaluate_at(test, threshold)
}

/// Measures `test` at a fixed `threshold` (e.g. one chosen earlier).
pub fn evaluate_at<S: Into<f64> + Copy>(
    test: &[(S, bool)],
    threshold: f64,
) -> Result<Metrics, MetricsError> {
    let Checked { scores, labels } = check("test scores", test)?;
    let counts = Counts::at(&scores, &labels, threshold);
    let per_class = CLASS_NAMES
        .iter()
        .zip(counts.per_class())
        .map(|(name, m)| (name.to_string(), m))
        .collect();
    Ok(Metrics {
        auc: roc_auc(&scores, &labels),
        pr_auc: average_precision(&scores, &labels),
        macro_f1: counts.macro_f1(),
        accuracy: counts.accuracy(),
        ece: expected_calibration_error(&scores, &labels, ECE_BINS),
        threshold,
        per_class,
        confusion: counts.into(),
        n: scores.len(),
        roc: roc_curve(&scores, &labels),
    })
}

/// The scikit-learn fixtures shared by this module's tests.
#[cfg(test)]
pub(crate) mod fixture {
    use serde::Deserialize;

    #[derive(Debug, Deserialize)]
    pub struct Case {
        pub name: String,
        pub scores: Vec<f64>,
        pub labels: Vec<bool>,
        pub threshold: f64,
        pub auc: f64,
        pub average_precision: f64,
        pub roc_fpr: Vec<f64>,
        pub roc_tpr: Vec<f64>,
        pub accuracy: f64,
        pub macro_f1: f64,
        pub precision: Vec<f64>,
        pub recall: Vec<f64>,
        pub f1: Vec<f64>,
        pub support: Vec<u64>,
        pub confusion: [[u64; 2]; 2],
        pub ece: f64,
    }

    pub fn cases() -> Vec<Case> {
        #[derive(Deserialize)]
        struct File {
            cases: Vec<Case>,
        }
        let text = include_str!("../fixtures/metrics.json");
        let file: File = serde_json::from_str(text).expect("metrics fixture");
        assert!(file.cases.len() >= 5);
        file.cases
    }
}

#[cfg(test)]
mod tests {
    use super::fixture::cases;
    use super::*;

    fn pairs(case: &fixture::Case) -> Vec<(f64, bool)> {
        case.scores
            .iter()
            .copied()
            .zip(case.labels.iter().copied())
            .collect()
    }

    #[test]
    fn evaluate_at_matches_sklearn() {
        for case in cases() {
            let m = evaluate_at(&pairs(&case), case.threshold).unwrap();
            assert!((m.auc - case.auc).abs() < 1e-9, "{}", case.name);
            assert!(
                (m.pr_auc - case.average_precision).abs() < 1e-9,
                "{}",
                case.name
            );
            assert!((m.macro_f1 - case.macro_f1).abs() < 1e-9, "{}", case.name);
            assert!((m.accuracy - case.accuracy).abs() < 1e-9, "{}", case.name);
            assert!((m.ece - case.ece).abs() < 1e-9, "{}", case.name);
            assert_eq!(m.confusion.matrix, case.confusion, "{}", case.name);
            assert_eq!(m.per_class["tail"].support, case.support[1]);
            assert!((m.per_class["head"].f1 - case.f1[0]).abs() < 1e-12);
            assert_eq!(m.n, case.scores.len());
            assert_eq!(m.threshold, case.threshold);
        }
    }

    #[test]
    fn threshold_comes_from_validation() {
        // validation is separable at 0.45; test scored with that threshold
        let val = [(0.1, false), (0.2, false), (0.7, true), (0.9, true)];
        let test = [(0.3, false), (0.5, true), (0.44, true), (0.6, false)];
        let m = evaluate_scores(&val, &test).unwrap();
        assert_eq!(m.threshold, (0.7 + 0.2) / 2.0);
        // predictions: -, +, -, +  -> tn 1, fp 1, fn 1, tp 1
        assert_eq!(m.confusion.matrix, [[1, 1], [1, 1]]);
        assert_eq!(m.accuracy, 0.5);
    }

    #[test]
    fn accepts_f32_scores() {
        let val = [(0.2f32, false), (0.8f32, true)];
        let m = evaluate_scores(&val, &val).unwrap();
        assert_eq!(m.auc, 1.0);
        assert_eq!(m.threshold, (0.2f32 as f64 + 0.8f32 as f64) / 2.0);
    }

    #[test]
    fn rejects_degenerate_input() {
        let ok = [(0.2, false), (0.8, true)];
        let empty: [(f64, bool); 0] = [];
        assert!(matches!(
            evaluate_scores(&empty, &ok),
            Err(MetricsError::Empty { .. })
        ));
        let one_class = [(0.2, true), (0.8, true)];
        let err = evaluate_scores(&ok, &one_class).unwrap_err();
        assert!(
            matches!(
                err,
                MetricsError::OneClass {
                    positives: 2,
                    n: 2,
                    ..
                }
            ),
            "{err}"
        );
        for bad in [f64::NAN, -0.1, 1.5, f64::INFINITY] {
            let scores = [(0.2, false), (bad, true)];
            let err = evaluate_scores(&scores, &ok).unwrap_err();
            assert!(
                matches!(err, MetricsError::BadScore { index: 1, .. }),
                "{err}"
            );
        }
    }
}
