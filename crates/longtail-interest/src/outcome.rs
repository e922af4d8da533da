//! What a `train-interest` run reports: validation ranking metrics and the run's outcome.

use std::collections::BTreeMap;
use std::path::PathBuf;

use longtail_train::PhaseTimes;
use serde::Serialize;

use crate::calibrate::Platt;

/// Validation ranking of one evaluation (full ranking, training items excluded).
#[derive(Debug, Clone, Default, Serialize)]
pub struct ValMetrics {
    pub users: usize,
    pub recall_at_10: f64,
    pub tail_recall_at_10: f64,
    pub tail_targets: usize,
    /// Measured by the sequence trainer only (0 for the bi-encoder).
    pub ndcg_at_10: f64,
    pub head_recall_at_10: f64,
}

#[derive(Debug, Clone)]
pub struct TrainInterestOutcome {
    pub steps: u64,
    pub seconds: f64,
    pub train_pairs: usize,
    pub initial: Option<ValMetrics>,
    pub last: Option<ValMetrics>,
    pub calibration: Option<Platt>,
    pub out: PathBuf,
    /// Per-phase wall time of this run's updates, with `phase_times` on.
    pub phase_times: Option<PhaseTimes>,
}

impl ValMetrics {
    /// The metrics as the training loop logs them (`eval_` keys); the sequence trainer's
    /// NDCG@10 and head recall only when measured.
    pub fn to_eval_map(&self, ranked: bool) -> BTreeMap<String, f64> {
        let mut m: BTreeMap<String, f64> = [
            ("eval_recall_at_10".to_string(), self.recall_at_10),
            ("eval_tail_recall_at_10".to_string(), self.tail_recall_at_10),
        ]
        .into();
        if ranked {
            m.insert("eval_ndcg_at_10".into(), self.ndcg_at_10);
            m.insert("eval_head_recall_at_10".into(), self.head_recall_at_10);
        }
        m
    }
}
