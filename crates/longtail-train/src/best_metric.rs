//! Which evaluation metric decides the best model, and what counts as better
//! (`metric_for_best_model`, `greater_is_better`), as in the HF Trainer.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::error::{Result, TrainError};

/// `metric_for_best_model` + `greater_is_better`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BestMetricConfig {
    /// E.g. `"macro_f1"` or `"eval_macro_f1"`; HF's default is `"loss"`.
    pub metric_for_best_model: String,
    /// HF's default: `true` unless the metric is `loss`/`eval_loss`.
    pub greater_is_better: bool,
}

impl BestMetricConfig {
    /// Uses HF's default for `greater_is_better` (false only for the loss).
    pub fn new(metric_for_best_model: impl Into<String>) -> Self {
        let metric_for_best_model = metric_for_best_model.into();
        let greater_is_better = !matches!(metric_for_best_model.as_str(), "loss" | "eval_loss");
        BestMetricConfig {
            metric_for_best_model,
            greater_is_better,
        }
    }

    /// The key looked up in evaluation metrics (`eval_` prefix added).
    pub fn metric_key(&self) -> String {
        metric_key(&self.metric_for_best_model)
    }

    /// The metric's value in `metrics`, if present.
    pub fn value_in(&self, metrics: &BTreeMap<String, f64>) -> Option<f64> {
        metrics.get(&self.metric_key()).copied()
    }

    /// Like `value_in`, but a missing metric is an error (as in HF's
    /// `_determine_best_metric`, which raises `KeyError`).
    pub fn require_value(&self, metrics: &BTreeMap<String, f64>) -> Result<f64> {
        self.value_in(metrics).ok_or_else(|| {
            TrainError::invalid(format!(
                "metric_for_best_model {:?} not found in evaluation metrics {:?}",
                self.metric_key(),
                metrics.keys().collect::<Vec<_>>()
            ))
        })
    }

    /// `np.greater(value, reference)` or `np.less(value, reference)`
    /// (false whenever either is NaN).
    pub fn is_better(&self, value: f64, reference: f64) -> bool {
        if self.greater_is_better {
            value > reference
        } else {
            value < reference
        }
    }
}

/// `metric_for_best_model` with the `eval_` prefix HF adds when missing.
pub fn metric_key(metric_for_best_model: &str) -> String {
    if metric_for_best_model.starts_with("eval_") {
        metric_for_best_model.to_string()
    } else {
        format!("eval_{metric_for_best_model}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_gets_eval_prefix_once() {
        assert_eq!(metric_key("macro_f1"), "eval_macro_f1");
        assert_eq!(metric_key("eval_loss"), "eval_loss");
    }

    #[test]
    fn default_direction_follows_hf() {
        assert!(!BestMetricConfig::new("loss").greater_is_better);
        assert!(!BestMetricConfig::new("eval_loss").greater_is_better);
        assert!(BestMetricConfig::new("macro_f1").greater_is_better);
    }

    #[test]
    fn comparison_and_lookup() {
        let f1 = BestMetricConfig::new("macro_f1");
        assert!(f1.is_better(0.6, 0.5));
        assert!(!f1.is_better(0.5, 0.5));
        assert!(!f1.is_better(f64::NAN, 0.5));
        let loss = BestMetricConfig::new("loss");
        assert!(loss.is_better(0.4, 0.5));
        assert!(!loss.is_better(0.6, 0.5));

        let metrics: BTreeMap<String, f64> = [
            ("eval_macro_f1".to_string(), 0.7),
            ("eval_loss".to_string(), 1.2),
        ]
        .into();
        assert_eq!(f1.value_in(&metrics), Some(0.7));
        assert_eq!(loss.require_value(&metrics).unwrap(), 1.2);
        assert!(BestMetricConfig::new("accuracy")
            .require_value(&metrics)
            .is_err());
    }
}
