//! What a training run reports while it runs: one event type for every trainer, so that one
//! progress display (a bar, a log line) serves `train` and `train-interest` alike.

use std::collections::BTreeMap;

/// One optimizer update, as the loop reports it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StepInfo {
    /// Updates done, this one and a resumed checkpoint's included.
    pub step: u64,
    /// The update at which the run ends.
    pub max_steps: u64,
    /// The update this invocation started from (0, or a resumed checkpoint's step).
    pub start_step: u64,
    /// Epochs done, fractional.
    pub epoch: f64,
    /// Mean loss of the update's micro-batches.
    pub loss: f64,
    pub learning_rate: f64,
    /// Global L2 norm of the gradients before clipping.
    pub grad_norm: f64,
    /// Training examples this invocation has consumed.
    pub samples: u64,
    /// `samples` over the time spent in updates (evaluation and checkpoint writes left out).
    pub samples_per_second: f64,
}

/// A training run's progress.
#[derive(Debug, Clone, Copy)]
pub enum Event<'a> {
    /// The loop is about to run updates `start_step + 1 ..= max_steps`.
    Start {
        start_step: u64,
        max_steps: u64,
    },
    Step(&'a StepInfo),
    /// An evaluation; `improved` when it is the best so far by the run's best-model metric.
    Eval {
        step: u64,
        metrics: &'a BTreeMap<String, f64>,
        improved: bool,
    },
    /// Anything worth a line: the data read, a resume, early stopping.
    Message(&'a str),
}
