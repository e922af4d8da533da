//! `trainer_state.json`: the HF `TrainerState` fields plus this project's
//! resumption counters (samples seen, data-order RNG state).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::best_metric::BestMetricConfig;
use crate::checkpoints::checkpoint_dir_name;
use crate::error::{Result, TrainError};
use longtail_fs::{read_json, write_json_atomic};

pub use longtail_model::checkpoint::TRAINER_STATE_FILE;

/// One `log_history` entry: `step`, `epoch` and any named values
/// (`loss`, `learning_rate`, `grad_norm`, `eval_macro_f1`, ...).
/// Non-finite numbers are stored as JSON `null` (as serde_json does).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LogEntry {
    pub epoch: f64,
    pub step: u64,
    #[serde(flatten)]
    pub values: Map<String, Value>,
}

impl LogEntry {
    pub fn new(step: u64, epoch: f64) -> Self {
        LogEntry {
            epoch,
            step,
            values: Map::new(),
        }
    }

    /// Adds a numeric value (NaN/inf become `null`).
    pub fn with(mut self, key: impl Into<String>, value: f64) -> Self {
        self.values.insert(key.into(), Value::from(value));
        self
    }

    /// A numeric value, if present and finite.
    pub fn get(&self, key: &str) -> Option<f64> {
        self.values.get(key).and_then(Value::as_f64)
    }
}

/// Seeds and counters needed to replay randomness after a resume.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RngState {
    /// Run seed; epoch `e` shuffles with `seed + e` (see `shuffle`).
    pub seed: u64,
    /// Epoch whose data order is in use.
    pub epoch: u64,
    /// Micro-batches of that epoch already consumed.
    pub batches_seen_in_epoch: u64,
    /// Further named counters (e.g. a dropout-mask stream position).
    #[serde(default)]
    pub counters: BTreeMap<String, u64>,
}

/// HF `TrainerState` (same field names and meaning) plus
/// `num_samples_seen` and `rng_state`. Fields are declared in alphabetical
/// order so the JSON has sorted keys like HF's `save_to_json`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TrainerState {
    pub best_global_step: Option<u64>,
    pub best_metric: Option<f64>,
    pub best_model_checkpoint: Option<String>,
    /// Fractional epoch: `epoch + (step + 1) / steps_in_epoch`.
    pub epoch: f64,
    pub eval_steps: u64,
    /// Optimizer updates done.
    pub global_step: u64,
    pub is_hyper_param_search: bool,
    pub is_local_process_zero: bool,
    pub is_world_process_zero: bool,
    pub log_history: Vec<LogEntry>,
    pub logging_steps: u64,
    pub max_steps: u64,
    pub num_input_tokens_seen: u64,
    /// Training samples consumed (not in HF).
    #[serde(default)]
    pub num_samples_seen: u64,
    pub num_train_epochs: u64,
    /// Not in HF: data-order RNG state.
    #[serde(default)]
    pub rng_state: RngState,
    pub save_steps: u64,
    /// `ExportableState` callbacks by class name (e.g. `EarlyStoppingCallback`).
    #[serde(default)]
    pub stateful_callbacks: BTreeMap<String, Value>,
    pub total_flos: f64,
    pub train_batch_size: Option<u64>,
    pub trial_name: Option<String>,
    pub trial_params: Option<Value>,
}

impl Default for TrainerState {
    /// HF dataclass defaults.
    fn default() -> Self {
        TrainerState {
            best_global_step: None,
            best_metric: None,
            best_model_checkpoint: None,
            epoch: 0.0,
            eval_steps: 500,
            global_step: 0,
            is_hyper_param_search: false,
            is_local_process_zero: true,
            is_world_process_zero: true,
            log_history: Vec::new(),
            logging_steps: 500,
            max_steps: 0,
            num_input_tokens_seen: 0,
            num_samples_seen: 0,
            num_train_epochs: 0,
            rng_state: RngState::default(),
            save_steps: 500,
            stateful_callbacks: BTreeMap::new(),
            total_flos: 0.0,
            train_batch_size: None,
            trial_name: None,
            trial_params: None,
        }
    }
}

impl TrainerState {
    /// Writes `trainer_state.json` atomically.
    pub fn save(&self, path: &Path) -> Result<()> {
        Ok(write_json_atomic(path, self)?)
    }

    /// Reads a `trainer_state.json`.
    pub fn load(path: &Path) -> Result<Self> {
        Ok(read_json(path)?)
    }

    /// HF `_determine_best_metric`: reads the metric from `metrics` (error
    /// if missing), compares with `best_metric` (initially -inf/+inf) and on
    /// improvement records it and `best_global_step = global_step`.
    /// Returns whether this is a new best.
    pub fn update_best_metric(
        &mut self,
        metrics: &BTreeMap<String, f64>,
        config: &BestMetricConfig,
    ) -> Result<bool> {
        let value = config.require_value(metrics)?;
        let reference = self.best_metric.unwrap_or(if config.greater_is_better {
            f64::NEG_INFINITY
        } else {
            f64::INFINITY
        });
        if self.best_metric.is_none() {
            self.best_metric = Some(reference);
        }
        if config.is_better(value, reference) {
            self.best_metric = Some(value);
            self.best_global_step = Some(self.global_step);
            Ok(true)
        } else {
            Ok(false)
        }
    }

    /// HF `_save_checkpoint` bookkeeping, to call while saving the
    /// checkpoint of `global_step` (before writing `trainer_state.json`):
    /// if the checkpoint of `best_global_step` exists under `run_dir`, or is
    /// the one being saved now (it may still be in a temporary directory),
    /// record it as `best_model_checkpoint`. Returns the recorded path.
    pub fn record_best_checkpoint(&mut self, run_dir: &Path) -> Option<PathBuf> {
        let step = self.best_global_step?;
        let dir = run_dir.join(checkpoint_dir_name(step));
        if step == self.global_step || dir.is_dir() {
            self.best_model_checkpoint = Some(dir.to_string_lossy().into_owned());
            Some(dir)
        } else {
            None
        }
    }

    /// Appends a `log_history` entry.
    pub fn log(&mut self, entry: LogEntry) {
        self.log_history.push(entry);
    }
}

/// Where a resumed run restarts, as the HF Trainer computes it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ResumePosition {
    /// Completed epochs (`global_step // num_update_steps_per_epoch`).
    pub epochs_trained: u64,
    /// Micro-batches of the current epoch to skip
    /// (`global_step % num_update_steps_per_epoch * gradient_accumulation_steps`).
    pub batches_to_skip: u64,
}

/// HF `_init_training_state` resume arithmetic.
pub fn resume_position(
    global_step: u64,
    num_update_steps_per_epoch: u64,
    gradient_accumulation_steps: u64,
) -> Result<ResumePosition> {
    if num_update_steps_per_epoch == 0 || gradient_accumulation_steps == 0 {
        return Err(TrainError::invalid(
            "num_update_steps_per_epoch and gradient_accumulation_steps must be >= 1",
        ));
    }
    Ok(ResumePosition {
        epochs_trained: global_step / num_update_steps_per_epoch,
        batches_to_skip: (global_step % num_update_steps_per_epoch) * gradient_accumulation_steps,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::early_stopping::{EarlyStopping, EARLY_STOPPING_CALLBACK};

    fn metrics(key: &str, v: f64) -> BTreeMap<String, f64> {
        [(key.to_string(), v)].into()
    }

    #[test]
    fn json_round_trip_with_hf_keys() {
        let mut s = TrainerState {
            global_step: 120,
            epoch: 1.5,
            max_steps: 400,
            num_train_epochs: 5,
            train_batch_size: Some(16),
            num_samples_seen: 1920,
            best_metric: Some(0.71),
            best_global_step: Some(100),
            best_model_checkpoint: Some("out/checkpoint-100".into()),
            rng_state: RngState {
                seed: 42,
                epoch: 1,
                batches_seen_in_epoch: 40,
                counters: [("dropout".to_string(), 7)].into(),
            },
            ..Default::default()
        };
        s.log(
            LogEntry::new(10, 0.125)
                .with("loss", 0.69)
                .with("learning_rate", 2e-5)
                .with("grad_norm", f64::NAN),
        );
        s.stateful_callbacks.insert(
            EARLY_STOPPING_CALLBACK.into(),
            EarlyStopping::new(3, 0.0).unwrap().state(),
        );
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join(TRAINER_STATE_FILE);
        s.save(&p).unwrap();
        let text = std::fs::read_to_string(&p).unwrap();
        for key in [
            "\"global_step\": 120",
            "\"best_model_checkpoint\": \"out/checkpoint-100\"",
            "\"log_history\"",
            "\"grad_norm\": null",
            "\"early_stopping_patience_counter\": 0",
        ] {
            assert!(text.contains(key), "missing {key} in\n{text}");
        }
        // keys are sorted like HF's json.dumps(sort_keys=True)
        let top: Vec<&str> = text
            .lines()
            .filter(|l| l.starts_with("  \""))
            .map(|l| l.trim().split('"').nth(1).unwrap())
            .collect();
        let mut sorted = top.clone();
        sorted.sort();
        assert_eq!(top, sorted);

        let back = TrainerState::load(&p).unwrap();
        assert_eq!(back.log_history[0].get("loss"), Some(0.69));
        assert_eq!(back.log_history[0].get("grad_norm"), None);
        // NaN does not round-trip (null); everything else does
        s.log_history[0]
            .values
            .insert("grad_norm".into(), Value::Null);
        assert_eq!(back, s);
    }

    #[test]
    fn loads_a_plain_hf_trainer_state() {
        let hf = r#"{
          "best_global_step": null, "best_metric": null, "best_model_checkpoint": null,
          "epoch": 3.0, "eval_steps": 500, "global_step": 30,
          "is_hyper_param_search": false, "is_local_process_zero": true,
          "is_world_process_zero": true,
          "log_history": [{"epoch": 1.0, "eval_loss": 0.5, "eval_runtime": 1.2, "step": 10}],
          "logging_steps": 500, "max_steps": 30, "num_input_tokens_seen": 0,
          "num_train_epochs": 3, "save_steps": 500,
          "stateful_callbacks": {"TrainerControl": {"args": {"should_save": true}, "attributes": {}}},
          "total_flos": 1234.0, "train_batch_size": 8, "trial_name": null, "trial_params": null
        }"#;
        let s: TrainerState = serde_json::from_str(hf).unwrap();
        assert_eq!(s.global_step, 30);
        assert_eq!(s.log_history[0].get("eval_loss"), Some(0.5));
        assert_eq!(s.rng_state, RngState::default());
        assert_eq!(s.num_samples_seen, 0);
    }

    #[test]
    fn best_metric_follows_determine_best_metric() {
        let cfg = BestMetricConfig::new("macro_f1");
        let mut s = TrainerState {
            global_step: 10,
            ..Default::default()
        };
        assert!(s
            .update_best_metric(&metrics("eval_macro_f1", 0.4), &cfg)
            .unwrap());
        assert_eq!((s.best_metric, s.best_global_step), (Some(0.4), Some(10)));
        s.global_step = 20;
        assert!(!s
            .update_best_metric(&metrics("eval_macro_f1", 0.4), &cfg)
            .unwrap());
        assert!(!s
            .update_best_metric(&metrics("eval_macro_f1", 0.3), &cfg)
            .unwrap());
        assert_eq!(s.best_global_step, Some(10));
        s.global_step = 30;
        assert!(s
            .update_best_metric(&metrics("eval_macro_f1", 0.5), &cfg)
            .unwrap());
        assert_eq!(s.best_global_step, Some(30));
        assert!(s
            .update_best_metric(&metrics("eval_loss", 0.5), &cfg)
            .is_err());

        let loss = BestMetricConfig::new("loss");
        let mut s = TrainerState::default();
        assert!(s
            .update_best_metric(&metrics("eval_loss", 2.0), &loss)
            .unwrap());
        assert!(s
            .update_best_metric(&metrics("eval_loss", 1.0), &loss)
            .unwrap());
        assert!(!s
            .update_best_metric(&metrics("eval_loss", 1.5), &loss)
            .unwrap());
        assert_eq!(s.best_metric, Some(1.0));
    }

    #[test]
    fn best_checkpoint_recorded_only_when_it_exists() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = TrainerState {
            best_global_step: Some(20),
            global_step: 30,
            ..Default::default()
        };
        assert_eq!(s.record_best_checkpoint(dir.path()), None);
        assert_eq!(s.best_model_checkpoint, None);
        std::fs::create_dir(dir.path().join("checkpoint-20")).unwrap();
        let p = s.record_best_checkpoint(dir.path()).unwrap();
        assert_eq!(p, dir.path().join("checkpoint-20"));
        assert_eq!(s.best_model_checkpoint.as_deref(), p.to_str());
        // the checkpoint being saved right now counts even before it exists
        s.best_global_step = Some(30);
        let p = s.record_best_checkpoint(dir.path()).unwrap();
        assert_eq!(p, dir.path().join("checkpoint-30"));
        assert!(s.record_best_checkpoint(dir.path()).is_some());
        s.best_global_step = None;
        assert_eq!(s.record_best_checkpoint(dir.path()), None);
    }

    #[test]
    fn resume_arithmetic_matches_hf() {
        // 10 batches, gas 4 -> 3 updates per epoch
        let r = resume_position(7, 3, 4).unwrap();
        assert_eq!(
            r,
            ResumePosition {
                epochs_trained: 2,
                batches_to_skip: 4
            }
        );
        assert_eq!(resume_position(6, 3, 4).unwrap().batches_to_skip, 0);
        assert!(resume_position(1, 0, 1).is_err());
        assert!(resume_position(1, 1, 0).is_err());
    }
}
