//! Early stopping with the semantics of HF's `EarlyStoppingCallback`.
//!
//! Order of operations in the HF Trainer after an evaluation:
//! 1. `EarlyStoppingCallback.on_evaluate` compares the new value with
//!    `state.best_metric` as it was *before* this evaluation
//!    ([`EarlyStopping::on_evaluate`]);
//! 2. `_determine_best_metric` then updates `best_metric`
//!    ([`TrainerState::update_best_metric`](crate::TrainerState::update_best_metric)).
//!
//! A value counts as an improvement when `best_metric` is unset, or it is
//! better (strictly) and differs from the best by more than the threshold.
//! Otherwise the patience counter grows; training stops once it reaches
//! `early_stopping_patience`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::best_metric::BestMetricConfig;
use crate::error::{Result, TrainError};

/// Name under which the state is kept in `TrainerState.stateful_callbacks`.
pub const EARLY_STOPPING_CALLBACK: &str = "EarlyStoppingCallback";

/// HF `EarlyStoppingCallback` (patience counter included).
#[derive(Clone, Debug, PartialEq)]
pub struct EarlyStopping {
    pub early_stopping_patience: u32,
    pub early_stopping_threshold: f64,
    /// Number of consecutive evaluations without improvement.
    pub early_stopping_patience_counter: u32,
}

#[derive(Serialize, Deserialize)]
struct Args {
    early_stopping_patience: u32,
    early_stopping_threshold: f64,
}

#[derive(Serialize, Deserialize)]
struct Attributes {
    early_stopping_patience_counter: u32,
}

#[derive(Serialize, Deserialize)]
struct ExportedState {
    args: Args,
    attributes: Attributes,
}

impl EarlyStopping {
    /// `early_stopping_patience >= 1`, `early_stopping_threshold >= 0`
    /// (HF's default threshold is 0.0).
    pub fn new(early_stopping_patience: u32, early_stopping_threshold: f64) -> Result<Self> {
        if early_stopping_patience == 0 {
            return Err(TrainError::invalid("early_stopping_patience must be >= 1"));
        }
        if early_stopping_threshold.is_nan() || early_stopping_threshold < 0.0 {
            return Err(TrainError::invalid(format!(
                "early_stopping_threshold must be >= 0, got {early_stopping_threshold}"
            )));
        }
        Ok(EarlyStopping {
            early_stopping_patience,
            early_stopping_threshold,
            early_stopping_patience_counter: 0,
        })
    }

    /// HF `check_metric_value`: `best_metric` is the best *before* this value.
    pub fn check_metric_value(
        &mut self,
        metric_value: f64,
        best_metric: Option<f64>,
        greater_is_better: bool,
    ) {
        let improved = match best_metric {
            None => true,
            Some(best) => {
                let better = if greater_is_better {
                    metric_value > best
                } else {
                    metric_value < best
                };
                better && (metric_value - best).abs() > self.early_stopping_threshold
            }
        };
        if improved {
            self.early_stopping_patience_counter = 0;
        } else {
            self.early_stopping_patience_counter += 1;
        }
    }

    /// True once the patience is exhausted (`should_training_stop`).
    pub fn should_stop(&self) -> bool {
        self.early_stopping_patience_counter >= self.early_stopping_patience
    }

    /// HF `on_evaluate`: returns `should_training_stop`. If the metric is
    /// missing from `metrics`, HF only warns and does nothing; so does this
    /// (returns `false`, counter unchanged).
    pub fn on_evaluate(
        &mut self,
        metrics: &BTreeMap<String, f64>,
        config: &BestMetricConfig,
        best_metric: Option<f64>,
    ) -> bool {
        let Some(value) = config.value_in(metrics) else {
            return false;
        };
        self.check_metric_value(value, best_metric, config.greater_is_better);
        self.should_stop()
    }

    /// HF `ExportableState.state()`:
    /// `{"args": {...}, "attributes": {"early_stopping_patience_counter": n}}`.
    pub fn state(&self) -> Value {
        serde_json::to_value(ExportedState {
            args: Args {
                early_stopping_patience: self.early_stopping_patience,
                early_stopping_threshold: self.early_stopping_threshold,
            },
            attributes: Attributes {
                early_stopping_patience_counter: self.early_stopping_patience_counter,
            },
        })
        .expect("plain struct serialises")
    }

    /// Inverse of [`state`](Self::state) (HF `from_state`).
    pub fn from_state(state: &Value) -> Result<Self> {
        let s: ExportedState = serde_json::from_value(state.clone()).map_err(|e| {
            TrainError::invalid(format!("bad {EARLY_STOPPING_CALLBACK} state: {e}"))
        })?;
        let mut es = EarlyStopping::new(
            s.args.early_stopping_patience,
            s.args.early_stopping_threshold,
        )?;
        es.early_stopping_patience_counter = s.attributes.early_stopping_patience_counter;
        Ok(es)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Drives evaluations the way the HF Trainer does and returns the step
    /// index at which training stops.
    fn run(values: &[f64], cfg: &BestMetricConfig, mut es: EarlyStopping) -> Option<usize> {
        let mut best: Option<f64> = None;
        for (i, v) in values.iter().enumerate() {
            let metrics: BTreeMap<String, f64> = [(cfg.metric_key(), *v)].into();
            let stop = es.on_evaluate(&metrics, cfg, best);
            // _determine_best_metric (best starts at -inf/+inf)
            let reference = best.unwrap_or(if cfg.greater_is_better {
                f64::NEG_INFINITY
            } else {
                f64::INFINITY
            });
            if cfg.is_better(*v, reference) {
                best = Some(*v);
            }
            if stop {
                return Some(i);
            }
        }
        None
    }

    #[test]
    fn stops_after_patience_evaluations_without_improvement() {
        let cfg = BestMetricConfig::new("macro_f1");
        let es = EarlyStopping::new(2, 0.0).unwrap();
        // 0.5 best, 0.6 best, 0.55 (1), 0.6 equal -> not better (2) -> stop at 3
        assert_eq!(run(&[0.5, 0.6, 0.55, 0.6, 0.9], &cfg, es.clone()), Some(3));
        // improvement resets the counter
        assert_eq!(run(&[0.5, 0.4, 0.6, 0.5, 0.7, 0.6], &cfg, es.clone()), None);
    }

    #[test]
    fn lower_is_better_for_loss() {
        let cfg = BestMetricConfig::new("loss");
        let es = EarlyStopping::new(1, 0.0).unwrap();
        assert_eq!(run(&[1.0, 0.8, 0.7, 0.75], &cfg, es.clone()), Some(3));
        assert_eq!(run(&[1.0, 0.8, 0.7, 0.6], &cfg, es), None);
    }

    #[test]
    fn threshold_requires_margin() {
        let cfg = BestMetricConfig::new("macro_f1");
        let mut es = EarlyStopping::new(3, 0.05).unwrap();
        es.check_metric_value(0.52, Some(0.5), true);
        assert_eq!(es.early_stopping_patience_counter, 1, "0.02 < threshold");
        es.check_metric_value(0.56, Some(0.5), true);
        assert_eq!(es.early_stopping_patience_counter, 0);
        es.check_metric_value(0.1, None, true);
        assert_eq!(es.early_stopping_patience_counter, 0, "no best yet");
        assert!(
            run(
                &[0.5, 0.51, 0.52, 0.53],
                &cfg,
                EarlyStopping::new(3, 0.05).unwrap()
            ) == Some(3)
        );
    }

    #[test]
    fn missing_metric_is_ignored_like_hf() {
        let cfg = BestMetricConfig::new("macro_f1");
        let mut es = EarlyStopping::new(1, 0.0).unwrap();
        let metrics: BTreeMap<String, f64> = [("eval_loss".to_string(), 0.3)].into();
        assert!(!es.on_evaluate(&metrics, &cfg, Some(0.9)));
        assert_eq!(es.early_stopping_patience_counter, 0);
    }

    #[test]
    fn state_round_trips_in_hf_shape() {
        let mut es = EarlyStopping::new(3, 0.0).unwrap();
        es.check_metric_value(0.1, Some(0.5), true);
        let v = es.state();
        assert_eq!(v["args"]["early_stopping_patience"], 3);
        assert_eq!(v["attributes"]["early_stopping_patience_counter"], 1);
        assert_eq!(EarlyStopping::from_state(&v).unwrap(), es);
        assert!(EarlyStopping::from_state(&serde_json::json!({"args": {}})).is_err());
    }

    #[test]
    fn invalid_arguments() {
        assert!(EarlyStopping::new(0, 0.0).is_err());
        assert!(EarlyStopping::new(1, -0.1).is_err());
        assert!(EarlyStopping::new(1, f64::NAN).is_err());
    }
}
