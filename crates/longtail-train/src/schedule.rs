//! Learning-rate schedules identical to `transformers.optimization`.
//!
//! The multipliers mirror `get_linear_schedule_with_warmup`,
//! `get_cosine_schedule_with_warmup` (with `num_cycles = 0.5`) and
//! `get_constant_schedule_with_warmup`, which are `LambdaLR` schedules.
//!
//! Step convention (same as the HF Trainer): `lr_at(step)` is the learning
//! rate used by the optimizer update that follows `step` completed updates.
//! The first update therefore uses `lr_at(0)`, which is 0 whenever there is
//! warmup (exactly as in HF, where `LambdaLR` starts at `lambda(0)` and
//! `scheduler.step()` is called after each `optimizer.step()`).
//! transformers 5.x logs as `learning_rate` the rate used by the update
//! (read before `scheduler.step()`), i.e. `lr_at(global_step - 1)` once
//! `global_step` has been incremented; 4.x logged `get_last_lr()` after the
//! scheduler step, i.e. `lr_at(global_step)`.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::error::{Result, TrainError};

/// `lr_scheduler_type` values supported (HF `SchedulerType` names).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(
    feature = "clap",
    derive(clap::ValueEnum),
    value(rename_all = "snake_case")
)]
pub enum SchedulerType {
    /// `linear`: linear warmup then linear decay to 0 at `num_training_steps`.
    Linear,
    /// `cosine`: linear warmup then half-cosine decay (`num_cycles = 0.5`).
    Cosine,
    /// `constant_with_warmup`: linear warmup then constant 1.0.
    ConstantWithWarmup,
}

impl SchedulerType {
    /// The HF spelling (`"linear"`, `"cosine"`, `"constant_with_warmup"`).
    pub fn as_str(self) -> &'static str {
        match self {
            SchedulerType::Linear => "linear",
            SchedulerType::Cosine => "cosine",
            SchedulerType::ConstantWithWarmup => "constant_with_warmup",
        }
    }
}

impl fmt::Display for SchedulerType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for SchedulerType {
    type Err = TrainError;

    fn from_str(s: &str) -> Result<Self> {
        match s {
            "linear" => Ok(SchedulerType::Linear),
            "cosine" => Ok(SchedulerType::Cosine),
            "constant_with_warmup" => Ok(SchedulerType::ConstantWithWarmup),
            other => Err(TrainError::invalid(format!(
                "unsupported lr_scheduler_type {other:?} (expected linear, cosine or constant_with_warmup)"
            ))),
        }
    }
}

/// Number of warmup steps exactly as `TrainingArguments.get_warmup_steps`:
/// `warmup_steps` if it is > 0, else `ceil(num_training_steps * warmup_ratio)`
/// computed in f64 like Python (so `0.07 * 100` gives 8, as in HF).
pub fn resolve_warmup_steps(
    num_training_steps: u64,
    warmup_steps: u64,
    warmup_ratio: f64,
) -> Result<u64> {
    if !(0.0..=1.0).contains(&warmup_ratio) {
        return Err(TrainError::invalid(format!(
            "warmup_ratio must lie in [0, 1], got {warmup_ratio}"
        )));
    }
    if warmup_steps > 0 {
        Ok(warmup_steps)
    } else {
        Ok((num_training_steps as f64 * warmup_ratio).ceil() as u64)
    }
}

/// transformers 5.x `get_warmup_steps`, where `warmup_steps` is a float:
/// `int(warmup_steps)` if it is >= 1, else a ratio of the training steps
/// (`ceil(num_training_steps * warmup_steps)`).
pub fn resolve_warmup_steps_v5(num_training_steps: u64, warmup_steps: f64) -> Result<u64> {
    if !warmup_steps.is_finite() || warmup_steps < 0.0 {
        return Err(TrainError::invalid(format!(
            "warmup_steps must be finite and >= 0, got {warmup_steps}"
        )));
    }
    if warmup_steps >= 1.0 {
        Ok(warmup_steps.trunc() as u64)
    } else {
        Ok((num_training_steps as f64 * warmup_steps).ceil() as u64)
    }
}

/// HF `_get_linear_schedule_with_warmup_lr_lambda`.
pub fn linear_lambda(step: u64, num_warmup_steps: u64, num_training_steps: u64) -> f64 {
    if step < num_warmup_steps {
        return step as f64 / num_warmup_steps.max(1) as f64;
    }
    let remaining = num_training_steps as f64 - step as f64;
    let span = (num_training_steps as i128 - num_warmup_steps as i128).max(1) as f64;
    (remaining / span).max(0.0)
}

/// HF `_get_cosine_schedule_with_warmup_lr_lambda`.
pub fn cosine_lambda(
    step: u64,
    num_warmup_steps: u64,
    num_training_steps: u64,
    num_cycles: f64,
) -> f64 {
    if step < num_warmup_steps {
        return step as f64 / num_warmup_steps.max(1) as f64;
    }
    let span = (num_training_steps as i128 - num_warmup_steps as i128).max(1) as f64;
    let progress = (step - num_warmup_steps) as f64 / span;
    (0.5 * (1.0 + (std::f64::consts::PI * num_cycles * 2.0 * progress).cos())).max(0.0)
}

/// HF `_get_constant_schedule_with_warmup_lr_lambda`.
pub fn constant_with_warmup_lambda(step: u64, num_warmup_steps: u64) -> f64 {
    if step < num_warmup_steps {
        return step as f64 / num_warmup_steps.max(1) as f64;
    }
    1.0
}

/// A learning-rate schedule: `base_lr * lambda(step)`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LrSchedule {
    pub lr_scheduler_type: SchedulerType,
    /// `learning_rate` of the run.
    pub base_lr: f64,
    pub num_warmup_steps: u64,
    pub num_training_steps: u64,
    /// Only used by `cosine`; HF's default is 0.5 (half a cosine wave).
    pub num_cycles: f64,
}

impl LrSchedule {
    /// Builds a schedule with an explicit number of warmup steps.
    pub fn new(
        lr_scheduler_type: SchedulerType,
        base_lr: f64,
        num_warmup_steps: u64,
        num_training_steps: u64,
    ) -> Self {
        LrSchedule {
            lr_scheduler_type,
            base_lr,
            num_warmup_steps,
            num_training_steps,
            num_cycles: 0.5,
        }
    }

    /// Builds a schedule from TrainingArguments-style fields
    /// (`warmup_steps` wins when > 0, else `warmup_ratio`).
    pub fn from_args(
        lr_scheduler_type: SchedulerType,
        learning_rate: f64,
        num_training_steps: u64,
        warmup_steps: u64,
        warmup_ratio: f64,
    ) -> Result<Self> {
        let warmup = resolve_warmup_steps(num_training_steps, warmup_steps, warmup_ratio)?;
        Ok(LrSchedule::new(
            lr_scheduler_type,
            learning_rate,
            warmup,
            num_training_steps,
        ))
    }

    /// The multiplier applied to `base_lr` after `step` completed updates.
    pub fn lambda(&self, step: u64) -> f64 {
        match self.lr_scheduler_type {
            SchedulerType::Linear => {
                linear_lambda(step, self.num_warmup_steps, self.num_training_steps)
            }
            SchedulerType::Cosine => cosine_lambda(
                step,
                self.num_warmup_steps,
                self.num_training_steps,
                self.num_cycles,
            ),
            SchedulerType::ConstantWithWarmup => {
                constant_with_warmup_lambda(step, self.num_warmup_steps)
            }
        }
    }

    /// The learning rate after `step` completed updates.
    pub fn lr_at(&self, step: u64) -> f64 {
        self.base_lr * self.lambda(step)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64) {
        assert!((a - b).abs() < 1e-12, "{a} != {b}");
    }

    #[test]
    fn scheduler_type_parses_hf_names_and_rejects_others() {
        for t in [
            SchedulerType::Linear,
            SchedulerType::Cosine,
            SchedulerType::ConstantWithWarmup,
        ] {
            assert_eq!(t.as_str().parse::<SchedulerType>().unwrap(), t);
            let json = serde_json::to_string(&t).unwrap();
            assert_eq!(json, format!("\"{}\"", t.as_str()));
        }
        assert!("polynomial".parse::<SchedulerType>().is_err());
        assert!("Linear".parse::<SchedulerType>().is_err());
    }

    #[test]
    fn warmup_steps_follow_hf_precedence_and_ceil() {
        // explicit warmup_steps win
        assert_eq!(resolve_warmup_steps(1000, 7, 0.5).unwrap(), 7);
        // ceil(ratio * total)
        assert_eq!(resolve_warmup_steps(1000, 0, 0.1).unwrap(), 100);
        assert_eq!(resolve_warmup_steps(7, 0, 0.3).unwrap(), 3); // 2.1 -> 3
        assert_eq!(resolve_warmup_steps(10, 0, 0.0).unwrap(), 0);
        // Python's float product: 100 * 0.07 == 7.000000000000001 -> 8 in HF.
        assert_eq!(resolve_warmup_steps(100, 0, 0.07).unwrap(), 8);
        assert!(resolve_warmup_steps(10, 0, 1.5).is_err());
        assert!(resolve_warmup_steps(10, 0, -0.1).is_err());
    }

    #[test]
    fn v5_float_warmup_steps() {
        assert_eq!(resolve_warmup_steps_v5(1000, 0.1).unwrap(), 100);
        assert_eq!(resolve_warmup_steps_v5(100, 0.07).unwrap(), 8);
        assert_eq!(resolve_warmup_steps_v5(1000, 7.0).unwrap(), 7);
        assert_eq!(resolve_warmup_steps_v5(1000, 7.9).unwrap(), 7);
        assert_eq!(resolve_warmup_steps_v5(1000, 1.0).unwrap(), 1);
        assert_eq!(resolve_warmup_steps_v5(1000, 0.0).unwrap(), 0);
        assert!(resolve_warmup_steps_v5(1000, -1.0).is_err());
        assert!(resolve_warmup_steps_v5(1000, f64::NAN).is_err());
    }

    #[test]
    fn linear_matches_hand_values() {
        // warmup 2, total 10
        let s = LrSchedule::new(SchedulerType::Linear, 1e-3, 2, 10);
        let expected = [0.0, 0.5, 1.0, 7.0 / 8.0, 6.0 / 8.0, 5.0 / 8.0];
        for (step, e) in expected.iter().enumerate() {
            close(s.lambda(step as u64), *e);
        }
        close(s.lambda(10), 0.0);
        close(s.lambda(12), 0.0); // clamped at 0 past the end
        close(s.lr_at(1), 0.5e-3);
        // no warmup: starts at 1.0
        let s = LrSchedule::new(SchedulerType::Linear, 1.0, 0, 4);
        close(s.lambda(0), 1.0);
        close(s.lambda(1), 0.75);
    }

    #[test]
    fn cosine_matches_hand_values() {
        let s = LrSchedule::new(SchedulerType::Cosine, 2.0, 2, 10);
        close(s.lambda(0), 0.0);
        close(s.lambda(1), 0.5);
        close(s.lambda(2), 1.0);
        // progress 0.25 -> 0.5 * (1 + cos(pi/4))
        close(
            s.lambda(4),
            0.5 * (1.0 + (std::f64::consts::FRAC_PI_4).cos()),
        );
        close(s.lambda(6), 0.5); // progress 0.5
        close(s.lambda(10), 0.0);
        close(s.lr_at(6), 1.0);
        // HF value computed in Python: 0.8535533905932737
        close(s.lambda(4), 0.853_553_390_593_273_7);
    }

    #[test]
    fn constant_with_warmup_matches_hand_values() {
        let s = LrSchedule::new(SchedulerType::ConstantWithWarmup, 3.0, 4, 10);
        close(s.lambda(0), 0.0);
        close(s.lambda(1), 0.25);
        close(s.lambda(3), 0.75);
        close(s.lambda(4), 1.0);
        close(s.lambda(100), 1.0);
        close(s.lr_at(2), 1.5);
    }

    #[test]
    fn degenerate_spans_do_not_divide_by_zero() {
        // warmup == total: HF uses max(1, total - warmup)
        let s = LrSchedule::new(SchedulerType::Linear, 1.0, 5, 5);
        close(s.lambda(5), 0.0);
        let s = LrSchedule::new(SchedulerType::Cosine, 1.0, 5, 5);
        close(s.lambda(5), 1.0);
        // warmup > total (HF allows it): still warmup ramp
        let s = LrSchedule::new(SchedulerType::Linear, 1.0, 8, 4);
        close(s.lambda(4), 0.5);
    }

    #[test]
    fn from_args_uses_ratio() {
        let s = LrSchedule::from_args(SchedulerType::Linear, 5e-5, 100, 0, 0.07).unwrap();
        assert_eq!(s.num_warmup_steps, 8);
        assert_eq!(s.num_cycles, 0.5);
    }
}
