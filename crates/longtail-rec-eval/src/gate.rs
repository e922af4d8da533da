//! The promotion gate of the re-training cycle: a candidate replaces the model in service
//! only if it is no worse on validation, overall (NDCG@10) and on tail items (Recall@10), up
//! to a tolerance in standard errors of the incumbent's metric (validation noise: one user's
//! hit moves tail Recall@10 by 1/users).
//!
//! Standard error of a mean of per-user values in [0, 1] with mean m over n users: at most
//! `sqrt(m (1 - m) / n)` (exact for Recall, a Bernoulli hit; an upper bound for NDCG, whose
//! per-user value x satisfies x² <= x).

use std::fmt;

use std::collections::BTreeMap;

use super::ModelMetrics;
use crate::RecEvalError;

/// What the gate found.
#[derive(Debug, Clone, PartialEq)]
pub struct GateVerdict {
    pub candidate: String,
    pub incumbent: String,
    /// (candidate, incumbent) validation NDCG@10.
    pub ndcg_10: (f64, f64),
    /// (candidate, incumbent) validation tail-item Recall@10.
    pub tail_recall_10: (f64, f64),
    /// Standard errors of the incumbent's NDCG@10 and tail-item Recall@10.
    pub standard_errors: (f64, f64),
    /// Drops allowed, in standard errors.
    pub tolerance_se: f64,
    pub passed: bool,
}

pub use longtail_rec::standard_error;

impl fmt::Display for GateVerdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "gate {}: {} vs {} on validation: NDCG@10 {:.4} vs {:.4} (SE {:.4}), tail-item \
             Recall@10 {:.4} vs {:.4} (SE {:.4}); a drop within {} standard error(s) passes",
            if self.passed { "PASSED" } else { "FAILED" },
            self.candidate,
            self.incumbent,
            self.ndcg_10.0,
            self.ndcg_10.1,
            self.standard_errors.0,
            self.tail_recall_10.0,
            self.tail_recall_10.1,
            self.standard_errors.1,
            self.tolerance_se
        )
    }
}

/// Compares the rows `candidate` and `incumbent` of a report's `validation` metrics; each
/// metric may drop by `tolerance_se` standard errors of the incumbent's value.
pub fn gate(
    validation: &BTreeMap<String, ModelMetrics>,
    candidate: &str,
    incumbent: &str,
    tolerance_se: f64,
) -> Result<GateVerdict, RecEvalError> {
    if !(tolerance_se.is_finite() && tolerance_se >= 0.0) {
        return Err(RecEvalError::Option(format!(
            "gate tolerance must be a number of standard errors >= 0, got {tolerance_se}"
        )));
    }
    let row = |name: &str| {
        validation.get(name).ok_or_else(|| {
            RecEvalError::Option(format!("the report has no validation row `{name}`"))
        })
    };
    let (c, i) = (row(candidate)?, row(incumbent)?);
    let ndcg_10 = (c.overall.ndcg_10, i.overall.ndcg_10);
    let tail_recall_10 = (c.tail_items.recall_10, i.tail_items.recall_10);
    let se = (
        standard_error(i.overall.ndcg_10, i.overall.users),
        standard_error(i.tail_items.recall_10, i.tail_items.users),
    );
    Ok(GateVerdict {
        candidate: candidate.to_string(),
        incumbent: incumbent.to_string(),
        ndcg_10,
        tail_recall_10,
        standard_errors: se,
        tolerance_se,
        passed: ndcg_10.0 >= ndcg_10.1 - tolerance_se * se.0
            && tail_recall_10.0 >= tail_recall_10.1 - tolerance_se * se.1,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::SegmentMetrics;

    fn metrics(ndcg: f64, tail: f64) -> ModelMetrics {
        ModelMetrics {
            overall: SegmentMetrics {
                ndcg_10: ndcg,
                users: 10_000,
                ..Default::default()
            },
            tail_items: SegmentMetrics {
                recall_10: tail,
                users: 2_000,
                ..Default::default()
            },
            ..Default::default()
        }
    }

    #[test]
    fn passes_only_when_neither_metric_drops() {
        let mut validation = BTreeMap::new();
        validation.insert("old".to_string(), metrics(0.05, 0.04));
        for (ndcg, tail, pass) in [
            (0.05, 0.04, true),
            (0.06, 0.05, true),
            (0.049, 0.09, false),
            (0.09, 0.039, false),
        ] {
            validation.insert("new".to_string(), metrics(ndcg, tail));
            let v = gate(&validation, "new", "old", 0.0).unwrap();
            assert_eq!(v.passed, pass, "{v}");
        }
        assert!(gate(&validation, "new", "missing", 0.0).is_err());
        assert!(gate(&validation, "new", "old", -1.0).is_err());
    }

    #[test]
    fn a_drop_within_the_tolerance_passes_and_a_larger_one_does_not() {
        // The unseen category's refresh: NDCG up, tail recall 0.0505 -> 0.0493 on ~2,000 tail
        // targets: SE of the incumbent's tail recall sqrt(0.0505 * 0.9495 / 2000) = 0.0049.
        let mut validation = BTreeMap::new();
        validation.insert("old".to_string(), metrics(0.0927, 0.0505));
        validation.insert("new".to_string(), metrics(0.0930, 0.0493));
        assert!(!gate(&validation, "new", "old", 0.0).unwrap().passed);
        let v = gate(&validation, "new", "old", 1.0).unwrap();
        assert!(v.passed, "{v}");
        assert!((v.standard_errors.1 - (0.0505f64 * 0.9495 / 2000.0).sqrt()).abs() < 1e-12);
        // Two standard errors below the incumbent fails at a tolerance of one.
        validation.insert(
            "new".to_string(),
            metrics(0.0930, 0.0505 - 2.0 * v.standard_errors.1),
        );
        assert!(!gate(&validation, "new", "old", 1.0).unwrap().passed);
        assert_eq!(standard_error(0.5, 0), 0.0);
    }
}
