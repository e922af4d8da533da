//! The promotion gate of the re-training cycle: a candidate replaces the model in service
//! only if it is no worse on validation, overall (NDCG@10) and on tail items (Recall@10).

use std::fmt;

use std::collections::BTreeMap;

use super::ModelMetrics;
use crate::EvalError;

/// What the gate found.
#[derive(Debug, Clone, PartialEq)]
pub struct GateVerdict {
    pub candidate: String,
    pub incumbent: String,
    /// (candidate, incumbent) validation NDCG@10.
    pub ndcg_10: (f64, f64),
    /// (candidate, incumbent) validation tail-item Recall@10.
    pub tail_recall_10: (f64, f64),
    pub passed: bool,
}

impl fmt::Display for GateVerdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "gate {}: {} vs {} on validation: NDCG@10 {:.4} vs {:.4}, tail-item Recall@10 \
             {:.4} vs {:.4}",
            if self.passed { "PASSED" } else { "FAILED" },
            self.candidate,
            self.incumbent,
            self.ndcg_10.0,
            self.ndcg_10.1,
            self.tail_recall_10.0,
            self.tail_recall_10.1
        )
    }
}

/// Compares the rows `candidate` and `incumbent` of a report's `validation` metrics.
pub fn gate(
    validation: &BTreeMap<String, ModelMetrics>,
    candidate: &str,
    incumbent: &str,
) -> Result<GateVerdict, EvalError> {
    let row = |name: &str| {
        validation
            .get(name)
            .ok_or_else(|| EvalError::Option(format!("the report has no validation row `{name}`")))
    };
    let (c, i) = (row(candidate)?, row(incumbent)?);
    let ndcg_10 = (c.overall.ndcg_10, i.overall.ndcg_10);
    let tail_recall_10 = (c.tail_items.recall_10, i.tail_items.recall_10);
    Ok(GateVerdict {
        candidate: candidate.to_string(),
        incumbent: incumbent.to_string(),
        ndcg_10,
        tail_recall_10,
        passed: ndcg_10.0 >= ndcg_10.1 && tail_recall_10.0 >= tail_recall_10.1,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rec::SegmentMetrics;

    fn metrics(ndcg: f64, tail: f64) -> ModelMetrics {
        ModelMetrics {
            overall: SegmentMetrics {
                ndcg_10: ndcg,
                ..Default::default()
            },
            tail_items: SegmentMetrics {
                recall_10: tail,
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
            let v = gate(&validation, "new", "old").unwrap();
            assert_eq!(v.passed, pass, "{v}");
        }
        assert!(gate(&validation, "new", "missing").is_err());
    }
}
