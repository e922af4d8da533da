//! Baselines a text model has to beat, trained on the train split and
//! evaluated exactly like the model (threshold from validation, metrics on
//! test): the majority class, and TF-IDF + logistic regression.

use std::collections::BTreeMap;

use rayon::prelude::*;

use crate::lbfgs::LbfgsOptions;
use crate::logreg::LogisticRegression;
use crate::metrics::{evaluate_scores, roc_auc, Metrics};
use crate::text::{TfidfOptions, TfidfVectorizer};
use crate::EvalError;

pub const MAJORITY: &str = "majority";
pub const TFIDF_LOGREG: &str = "tfidf_logreg";

/// Texts with binary labels (`true` = tail).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LabelledTexts {
    pub texts: Vec<String>,
    pub labels: Vec<bool>,
}

/// The three splits of a prepared dataset.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TextSplits {
    pub train: LabelledTexts,
    pub validation: LabelledTexts,
    pub test: LabelledTexts,
}

#[derive(Debug, Clone, PartialEq)]
pub struct BaselineOptions {
    /// Inverse regularisation strengths tried; the best validation ROC-AUC
    /// wins (ties: the smaller C).
    pub c_grid: Vec<f64>,
    pub tfidf: TfidfOptions,
    pub solver: LbfgsOptions,
}

impl Default for BaselineOptions {
    fn default() -> Self {
        Self {
            c_grid: vec![0.25, 1.0, 4.0, 16.0],
            tfidf: TfidfOptions::default(),
            solver: LbfgsOptions::default(),
        }
    }
}

/// How the TF-IDF baseline was fitted, for the record.
#[derive(Debug, Clone, PartialEq)]
pub struct TfidfLogregFit {
    pub c: f64,
    /// `(C, validation ROC-AUC)` for every C tried.
    pub validation_auc_by_c: Vec<(f64, f64)>,
    pub n_features: usize,
    pub iterations: usize,
    pub converged: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub struct BaselineResults {
    /// Test metrics keyed by [`MAJORITY`] and [`TFIDF_LOGREG`].
    pub metrics: BTreeMap<String, Metrics>,
    pub tfidf_logreg: TfidfLogregFit,
}

fn pairs(scores: &[f64], labels: &[bool]) -> Vec<(f64, bool)> {
    scores.iter().copied().zip(labels.iter().copied()).collect()
}

fn check_lengths(what: &str, split: &LabelledTexts) -> Result<(), EvalError> {
    if split.texts.len() != split.labels.len() {
        return Err(EvalError::LengthMismatch {
            what: what.into(),
            scores: split.texts.len(),
            labels: split.labels.len(),
        });
    }
    if split.texts.is_empty() {
        return Err(EvalError::Empty { what: what.into() });
    }
    Ok(())
}

/// Scores every item with the train tail rate: ROC-AUC 0.5 by construction,
/// and the validation-chosen threshold predicts a single class.
pub fn majority(
    train_labels: &[bool],
    validation_labels: &[bool],
    test_labels: &[bool],
) -> Result<Metrics, EvalError> {
    if train_labels.is_empty() {
        return Err(EvalError::Empty {
            what: "train labels".into(),
        });
    }
    let prior = train_labels.iter().filter(|&&l| l).count() as f64 / train_labels.len() as f64;
    let constant = |labels: &[bool]| labels.iter().map(|&l| (prior, l)).collect::<Vec<_>>();
    Ok(evaluate_scores(
        &constant(validation_labels),
        &constant(test_labels),
    )?)
}

/// TF-IDF on `text` fitted on train, logistic regression for each C in the
/// grid (in parallel), the C with the best validation ROC-AUC kept.
pub fn tfidf_logreg(
    splits: &TextSplits,
    opts: &BaselineOptions,
) -> Result<(Metrics, TfidfLogregFit), EvalError> {
    check_lengths("train split", &splits.train)?;
    check_lengths("validation split", &splits.validation)?;
    check_lengths("test split", &splits.test)?;
    if opts.c_grid.is_empty() {
        return Err(EvalError::Option("empty C grid".into()));
    }
    let vectorizer = TfidfVectorizer::fit(&splits.train.texts, opts.tfidf.clone())?;
    let x_train = vectorizer.transform(&splits.train.texts);
    let x_val = vectorizer.transform(&splits.validation.texts);
    let val_labels = &splits.validation.labels;
    let val_positives = val_labels.iter().filter(|&&l| l).count();
    if val_positives == 0 || val_positives == val_labels.len() {
        return Err(EvalError::OneClass {
            what: "validation split".into(),
            positives: val_positives,
            n: val_labels.len(),
        });
    }
    let fits = opts
        .c_grid
        .par_iter()
        .map(|&c| {
            let model = LogisticRegression::fit(&x_train, &splits.train.labels, c, &opts.solver)?;
            let val_scores = model.predict_proba(&x_val);
            let auc = roc_auc(&val_scores, val_labels);
            Ok((model, val_scores, auc))
        })
        .collect::<Result<Vec<_>, EvalError>>()?;
    let validation_auc_by_c = fits.iter().map(|(m, _, auc)| (m.c, *auc)).collect();
    let (model, val_scores, _) = fits
        .into_iter()
        .reduce(|best, next| {
            let better = next.2 > best.2 || (next.2 == best.2 && next.0.c < best.0.c);
            if better {
                next
            } else {
                best
            }
        })
        .expect("non-empty grid");
    let test_scores = model.predict_proba(&vectorizer.transform(&splits.test.texts));
    let metrics = evaluate_scores(
        &pairs(&val_scores, val_labels),
        &pairs(&test_scores, &splits.test.labels),
    )?;
    let fit = TfidfLogregFit {
        c: model.c,
        validation_auc_by_c,
        n_features: vectorizer.n_features(),
        iterations: model.iterations,
        converged: model.converged,
    };
    Ok((metrics, fit))
}

/// Both baselines.
pub fn run(splits: &TextSplits, opts: &BaselineOptions) -> Result<BaselineResults, EvalError> {
    let majority = majority(
        &splits.train.labels,
        &splits.validation.labels,
        &splits.test.labels,
    )?;
    let (tfidf, fit) = tfidf_logreg(splits, opts)?;
    let metrics = BTreeMap::from([
        (MAJORITY.to_string(), majority),
        (TFIDF_LOGREG.to_string(), tfidf),
    ]);
    Ok(BaselineResults {
        metrics,
        tfidf_logreg: fit,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(rows: &[(&str, bool)]) -> LabelledTexts {
        LabelledTexts {
            texts: rows.iter().map(|r| r.0.to_string()).collect(),
            labels: rows.iter().map(|r| r.1).collect(),
        }
    }

    /// Tail items mention "refill", head items "printer"; shared filler words.
    fn toy() -> TextSplits {
        let make = |n: usize, offset: usize| {
            let rows: Vec<(String, bool)> = (0..n)
                .map(|i| {
                    let tail = !(i + offset).is_multiple_of(3);
                    let word = if tail { "refill" } else { "printer" };
                    (format!("office {word} item {}", (i + offset) % 5), tail)
                })
                .collect();
            let refs: Vec<(&str, bool)> = rows.iter().map(|(t, l)| (t.as_str(), *l)).collect();
            split(&refs)
        };
        TextSplits {
            train: make(30, 0),
            validation: make(9, 1),
            test: make(12, 2),
        }
    }

    #[test]
    fn majority_scores_the_train_prior() {
        let m = majority(
            &[true, true, true, false],
            &[true, false, true],
            &[false, true, true, true],
        )
        .unwrap();
        assert_eq!(m.auc, 0.5);
        // one tied group: AP = prevalence of the test split
        assert_eq!(m.pr_auc, 0.75);
        // tail is the majority on validation: everything predicted tail
        assert_eq!(m.confusion.matrix, [[0, 1], [0, 3]]);
        assert_eq!(m.accuracy, 0.75);
        assert_eq!(m.threshold, 0.75);
    }

    #[test]
    fn tfidf_logreg_separates_a_toy_problem() {
        let r = run(&toy(), &BaselineOptions::default()).unwrap();
        let tfidf = &r.metrics[TFIDF_LOGREG];
        assert_eq!(tfidf.auc, 1.0);
        assert_eq!(tfidf.accuracy, 1.0);
        assert_eq!(tfidf.n, 12);
        assert_eq!(r.metrics[MAJORITY].auc, 0.5);
        assert!(r.tfidf_logreg.converged);
        assert_eq!(r.tfidf_logreg.validation_auc_by_c.len(), 4);
        // every C separates validation perfectly: the tie goes to the smallest
        assert_eq!(r.tfidf_logreg.c, 0.25);
    }

    #[test]
    fn rejects_bad_splits() {
        let mut s = toy();
        s.validation.labels.pop();
        assert!(matches!(
            tfidf_logreg(&s, &BaselineOptions::default()),
            Err(EvalError::LengthMismatch { .. })
        ));
        let mut s = toy();
        s.validation.labels.iter_mut().for_each(|l| *l = true);
        assert!(matches!(
            tfidf_logreg(&s, &BaselineOptions::default()),
            Err(EvalError::OneClass { .. })
        ));
        let opts = BaselineOptions {
            c_grid: vec![],
            ..Default::default()
        };
        assert!(matches!(
            tfidf_logreg(&toy(), &opts),
            Err(EvalError::Option(_))
        ));
    }
}
