//! The training loop every longtail trainer runs, in the spirit of burn-train's `Learner`:
//! the model side is an [`Objective`] (its batches, its loss, its evaluation, its checkpoint
//! files) and [`Learner::fit`] owns the rest: the data position of a resumed run, gradient
//! accumulation, clipping and the schedule (through [`StepDriver`]), the evaluation cadence,
//! the best model, early stopping, when checkpoints are written, the stop on a NaN, progress
//! events and the metrics log.
//!
//! The loop, per update (the HF Trainer's order):
//!
//! ```text
//! micro-batches of the window -> StepDriver::step (forward, backward, clip, lr, AdamW)
//! -> counters and Objective::after_update -> progress, log line every `logging_steps`
//! -> evaluate (cadence) -> early stopping (against the best before this evaluation)
//! -> best metric -> save (policy) -> stop?
//! ```

use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use candle_core::Tensor;

use crate::accumulate::num_update_steps_per_epoch;
use crate::best_metric::BestMetricConfig;
use crate::early_stopping::{EarlyStopping, EARLY_STOPPING_CALLBACK};
use crate::error::{Result, TrainError};
use crate::step::{remaining_updates, StepDriver, StepReport, UpdateWindow};
use crate::trainer_state::{LogEntry, TrainerState};
use longtail_progress::{Event, StepInfo};

/// The model side of a training run.
pub trait Objective {
    /// What one micro-batch is (usually the indices of its examples).
    type Batch;
    type Error: From<TrainError>;

    /// Micro-batches per epoch; the same every epoch.
    fn num_batches(&self) -> usize;

    /// The micro-batches of `epoch`, in the order the updates take them. A function of the
    /// seed and `epoch` only, so that a resumed run picks up the same batches.
    fn epoch_batches(&mut self, epoch: u64) -> Result<Vec<Self::Batch>, Self::Error>;

    /// The forward pass of one micro-batch up to its loss (dropout on).
    fn loss(&mut self, batch: &Self::Batch) -> Result<Tensor, Self::Error>;

    /// Examples and input tokens in a micro-batch, for the counters of the trainer state.
    fn count(&self, batch: &Self::Batch) -> (u64, u64);

    /// Called after every update, before evaluation: caches to refresh, RNG counters to
    /// record in `state`. `last`: the run's final update.
    fn after_update(&mut self, _state: &mut TrainerState, _last: bool) -> Result<(), Self::Error> {
        Ok(())
    }

    /// Validation metrics of the weights after update `state.global_step`, keyed with the
    /// `eval_` prefix; `None` when there is nothing to evaluate on.
    fn evaluate(
        &mut self,
        state: &TrainerState,
    ) -> Result<Option<BTreeMap<String, f64>>, Self::Error>;

    /// Writes a checkpoint of the current weights with the optimizer state (`driver`) and
    /// `state`; returns its directory.
    fn save(
        &mut self,
        driver: &StepDriver,
        state: &mut TrainerState,
    ) -> Result<PathBuf, Self::Error>;
}

/// When the loop evaluates (HF `eval_strategy`). `Steps(n)` counts updates from the start of
/// training, a resumed checkpoint's included; the final update is always evaluated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EvalCadence {
    No,
    Epoch,
    Steps(u64),
}

/// When the loop writes a checkpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SavePolicy {
    /// The HF Trainer's: at every evaluation (at the end of every epoch when nothing is
    /// evaluated), and the final state when it was not just saved.
    EveryEvaluation,
    /// The best model only: at every improvement of the best-model metric, and the final state
    /// when no evaluation of this invocation improved.
    Best,
    /// Once, after the last update.
    End,
}

/// How [`Learner::fit`] runs.
#[derive(Debug, Clone)]
pub struct FitSettings {
    /// The update at which training ends (a resumed checkpoint's updates included).
    pub max_steps: u64,
    pub gradient_accumulation_steps: usize,
    /// Updates between log lines (mean loss since the last line, learning rate, norm).
    pub logging_steps: u64,
    pub eval: EvalCadence,
    pub save: SavePolicy,
    /// The metric that picks the best model (needed by early stopping and [`SavePolicy::Best`]).
    pub best_metric: Option<BestMetricConfig>,
    pub early_stopping: Option<EarlyStopping>,
    /// Testing aid: stop as if killed after this many updates of this invocation (no final
    /// save); 0 = never.
    pub stop_after_steps: u64,
    /// Every log line is also appended to this JSON-lines file (rewritten from the state's
    /// history at the start and the end, so that a resumed run's file has no duplicates).
    pub metrics_file: Option<PathBuf>,
}

impl Default for FitSettings {
    fn default() -> Self {
        Self {
            max_steps: 0,
            gradient_accumulation_steps: 1,
            logging_steps: 1,
            eval: EvalCadence::No,
            save: SavePolicy::End,
            best_metric: None,
            early_stopping: None,
            stop_after_steps: 0,
            metrics_file: None,
        }
    }
}

/// What one [`Learner::fit`] did.
#[derive(Debug, Clone, Default)]
pub struct FitOutcome {
    pub start_step: u64,
    /// Updates of this invocation.
    pub updates: u64,
    /// Training examples of this invocation.
    pub samples: u64,
    /// Time spent in updates (evaluation and checkpoint writes left out).
    pub loop_time: Duration,
    /// The whole of `fit`.
    pub time: Duration,
    pub early_stopped: bool,
    /// Stopped by `stop_after_steps`.
    pub interrupted: bool,
    /// The newest checkpoint written (or the one the run resumed from, if none) and its step.
    pub last_checkpoint: Option<(u64, PathBuf)>,
    /// The latest evaluation's metrics.
    pub last_metrics: Option<BTreeMap<String, f64>>,
}

impl FitOutcome {
    /// Examples per second of update time.
    pub fn loop_samples_per_second(&self) -> f64 {
        self.samples as f64 / self.loop_time.as_secs_f64().max(1e-9)
    }
}

/// The loop's state: the optimizer side ([`StepDriver`]) and the [`TrainerState`].
#[derive(Debug)]
pub struct Learner {
    driver: StepDriver,
    state: TrainerState,
    settings: FitSettings,
    /// The checkpoint `state` was loaded from, if the run resumed.
    resumed_from: Option<PathBuf>,
}

/// A failure inside an update: the driver's, or the objective's.
enum StepFailure<E> {
    Train(TrainError),
    Objective(E),
}

impl<E> From<TrainError> for StepFailure<E> {
    fn from(e: TrainError) -> Self {
        StepFailure::Train(e)
    }
}

impl Learner {
    /// `driver` and `state` at the same update (0, or a resumed checkpoint's).
    pub fn new(driver: StepDriver, state: TrainerState, settings: FitSettings) -> Result<Self> {
        if driver.global_step() != state.global_step {
            return Err(TrainError::invalid(format!(
                "the optimizer is at update {} but the trainer state at {}",
                driver.global_step(),
                state.global_step
            )));
        }
        if settings.logging_steps == 0 {
            return Err(TrainError::invalid("logging_steps must be >= 1"));
        }
        if settings.eval == EvalCadence::Steps(0) {
            return Err(TrainError::invalid(
                "eval_steps must be >= 1 with eval_strategy steps",
            ));
        }
        let needs_best = settings.early_stopping.is_some() || settings.save == SavePolicy::Best;
        if needs_best && settings.best_metric.is_none() {
            return Err(TrainError::invalid(
                "early stopping and saving the best model need a metric_for_best_model",
            ));
        }
        Ok(Self {
            driver,
            state,
            settings,
            resumed_from: None,
        })
    }

    /// Records the checkpoint the state was loaded from: the last good checkpoint until this
    /// run writes one.
    pub fn resumed_from(mut self, checkpoint: PathBuf) -> Self {
        self.resumed_from = Some(checkpoint);
        self
    }

    pub fn driver(&self) -> &StepDriver {
        &self.driver
    }

    pub fn state(&self) -> &TrainerState {
        &self.state
    }

    pub fn state_mut(&mut self) -> &mut TrainerState {
        &mut self.state
    }

    pub fn into_parts(self) -> (StepDriver, TrainerState) {
        (self.driver, self.state)
    }

    /// Runs the updates left until `max_steps` (see the module documentation).
    pub fn fit<O: Objective>(
        &mut self,
        objective: &mut O,
        progress: &mut dyn FnMut(Event<'_>),
    ) -> Result<FitOutcome, O::Error> {
        let started = Instant::now();
        let s = self.settings.clone();
        let num_batches = objective.num_batches();
        let gas = s.gradient_accumulation_steps;
        let per_epoch = num_update_steps_per_epoch(num_batches, gas)? as u64;
        let num_epochs = s.max_steps.div_ceil(per_epoch);
        let mut early = s.early_stopping.clone();
        let mut log = MetricsLog::open(s.metrics_file.as_deref(), &self.state.log_history)?;
        let mut out = FitOutcome {
            start_step: self.state.global_step,
            last_checkpoint: self
                .resumed_from
                .clone()
                .map(|p| (self.state.global_step, p)),
            ..Default::default()
        };
        let mut saved_this_run = false;
        progress(Event::TrainStart {
            start_step: out.start_step,
            max_steps: s.max_steps,
        });

        let mut batches: Option<(u64, Vec<O::Batch>)> = None;
        let (mut loss_sum, mut losses) = (0.0f64, 0u64);
        let windows = remaining_updates(self.state.global_step, num_batches, gas, num_epochs)?;
        for window in windows {
            if self.state.global_step >= s.max_steps {
                break;
            }
            let update_started = Instant::now();
            let epoch = window.epoch;
            if batches.as_ref().map(|(e, _)| *e) != Some(epoch) {
                let b = objective.epoch_batches(epoch)?;
                if b.len() != num_batches {
                    return Err(TrainError::invalid(format!(
                        "internal: epoch {epoch} has {} batches, the run was laid out for \
                         {num_batches}",
                        b.len()
                    ))
                    .into());
                }
                batches = Some((epoch, b));
            }
            let micro = &batches.as_ref().expect("set above").1[window.batches.clone()];
            let report = self.update(objective, micro, &window, &mut out)?;
            out.loop_time += update_started.elapsed();
            let last = self.state.global_step >= s.max_steps;
            let info = StepInfo {
                step: self.state.global_step,
                max_steps: s.max_steps,
                start_step: out.start_step,
                epoch: self.state.epoch,
                loss: report.loss,
                learning_rate: report.learning_rate,
                grad_norm: report.grad_norm,
                samples: out.samples,
                samples_per_second: out.loop_samples_per_second(),
            };
            progress(Event::Step(&info));
            loss_sum += report.loss;
            losses += 1;
            if self.state.global_step.is_multiple_of(s.logging_steps) {
                let entry = LogEntry::new(self.state.global_step, self.state.epoch)
                    .with("loss", loss_sum / losses as f64)
                    .with("learning_rate", report.learning_rate)
                    .with("grad_norm", report.grad_norm)
                    .with("samples_per_second", info.samples_per_second);
                log.write(&mut self.state, entry)?;
                (loss_sum, losses) = (0.0, 0);
            }

            let do_eval = match s.eval {
                EvalCadence::No => false,
                EvalCadence::Epoch => window.end_of_epoch || last,
                EvalCadence::Steps(n) => self.state.global_step.is_multiple_of(n) || last,
            };
            let (improved, stop) = if do_eval {
                self.evaluate(objective, &mut early, &mut log, &mut out, progress)?
            } else {
                (false, false)
            };
            let do_save = match s.save {
                SavePolicy::EveryEvaluation => {
                    do_eval || (s.eval == EvalCadence::No && (window.end_of_epoch || last))
                }
                SavePolicy::Best => improved,
                SavePolicy::End => false,
            };
            if do_save {
                let dir = objective.save(&self.driver, &mut self.state)?;
                out.last_checkpoint = Some((self.state.global_step, dir));
                saved_this_run = true;
            }
            if stop {
                out.early_stopped = true;
                let (metric, patience) = match (&s.best_metric, &early) {
                    (Some(b), Some(e)) => (b.metric_key(), e.early_stopping_patience),
                    _ => unreachable!("stop is only set with early stopping and a metric"),
                };
                progress(Event::Message(&format!(
                    "early stopping at step {}: no improvement of {metric} for {patience} \
                     evaluations; best step {}",
                    self.state.global_step,
                    self.state.best_global_step.unwrap_or(0)
                )));
                break;
            }
            if last {
                break;
            }
            if s.stop_after_steps > 0 && out.updates >= s.stop_after_steps {
                out.interrupted = true;
                break;
            }
        }

        let final_save = !out.interrupted
            && match s.save {
                SavePolicy::EveryEvaluation => {
                    out.last_checkpoint.as_ref().map(|(step, _)| *step)
                        != Some(self.state.global_step)
                }
                SavePolicy::Best => !saved_this_run,
                SavePolicy::End => true,
            };
        if final_save {
            let dir = objective.save(&self.driver, &mut self.state)?;
            out.last_checkpoint = Some((self.state.global_step, dir));
        }
        log.rewrite(&self.state.log_history)?;
        out.time = started.elapsed();
        Ok(out)
    }

    /// One optimizer update over `micro`, with the counters of the trainer state and the
    /// objective's `after_update`; a NaN becomes [`TrainError::Diverged`].
    fn update<O: Objective>(
        &mut self,
        objective: &mut O,
        micro: &[O::Batch],
        window: &UpdateWindow,
        out: &mut FitOutcome,
    ) -> Result<StepReport, O::Error> {
        let epoch = window.epoch;
        let stepped = self
            .driver
            .step::<StepFailure<O::Error>, _>(micro.len(), |i| {
                objective.loss(&micro[i]).map_err(StepFailure::Objective)
            });
        let report = match stepped {
            Ok(r) => r,
            Err(StepFailure::Objective(e)) => return Err(e),
            Err(StepFailure::Train(TrainError::NonFinite { what, value, step })) => {
                return Err(TrainError::Diverged {
                    what,
                    value,
                    step,
                    epoch,
                    last_good: out.last_checkpoint.as_ref().map_or_else(
                        || "(none saved yet)".into(),
                        |(_, p)| p.display().to_string(),
                    ),
                }
                .into())
            }
            Err(StepFailure::Train(e)) => return Err(e.into()),
        };
        let st = &mut self.state;
        for b in micro {
            let (examples, tokens) = objective.count(b);
            st.num_samples_seen += examples;
            st.num_input_tokens_seen += tokens;
            out.samples += examples;
        }
        out.updates += 1;
        st.global_step = report.step;
        let num_batches = objective.num_batches();
        st.epoch = epoch as f64 + window.batches.end as f64 / num_batches as f64;
        st.rng_state.epoch = epoch;
        st.rng_state.batches_seen_in_epoch = window.batches.end as u64;
        let last = st.global_step >= self.settings.max_steps;
        objective.after_update(st, last)?;
        Ok(report)
    }

    /// One evaluation: logged, fed to early stopping (against the best before it, as HF's
    /// callback runs first), then to the best metric. Returns (improved, stop).
    fn evaluate<O: Objective>(
        &mut self,
        objective: &mut O,
        early: &mut Option<EarlyStopping>,
        log: &mut MetricsLog,
        out: &mut FitOutcome,
        progress: &mut dyn FnMut(Event<'_>),
    ) -> Result<(bool, bool), O::Error> {
        let Some(metrics) = objective.evaluate(&self.state)? else {
            return Ok((false, false));
        };
        let st = &mut self.state;
        let mut entry = LogEntry::new(st.global_step, st.epoch);
        for (k, v) in &metrics {
            entry = entry.with(k.clone(), *v);
        }
        log.write(st, entry)?;
        let (mut improved, mut stop) = (false, false);
        if let (Some(es), Some(best)) = (early.as_mut(), &self.settings.best_metric) {
            stop = es.on_evaluate(&metrics, best, st.best_metric);
            st.stateful_callbacks
                .insert(EARLY_STOPPING_CALLBACK.into(), es.state());
        }
        if let Some(best) = &self.settings.best_metric {
            improved = st.update_best_metric(&metrics, best)?;
        }
        progress(Event::Eval {
            step: st.global_step,
            metrics: &metrics,
            improved,
        });
        out.last_metrics = Some(metrics);
        Ok((improved, stop))
    }
}

/// The metrics log file: JSON lines of the state's `log_history`.
struct MetricsLog {
    file: Option<(PathBuf, fs::File)>,
}

impl MetricsLog {
    fn open(path: Option<&Path>, history: &[LogEntry]) -> Result<Self> {
        let Some(path) = path else {
            return Ok(Self { file: None });
        };
        write_history(path, history)?;
        let file = fs::OpenOptions::new()
            .append(true)
            .open(path)
            .map_err(|e| TrainError::io(path, e))?;
        Ok(Self {
            file: Some((path.to_path_buf(), file)),
        })
    }

    fn write(&mut self, state: &mut TrainerState, entry: LogEntry) -> Result<()> {
        if let Some((path, file)) = &mut self.file {
            writeln!(file, "{}", line(&entry, path)?).map_err(|e| TrainError::io(&*path, e))?;
        }
        state.log(entry);
        Ok(())
    }

    fn rewrite(&self, history: &[LogEntry]) -> Result<()> {
        match &self.file {
            Some((path, _)) => write_history(path, history),
            None => Ok(()),
        }
    }
}

fn line(entry: &LogEntry, path: &Path) -> Result<String> {
    serde_json::to_string(entry).map_err(|source| TrainError::Json {
        path: path.to_path_buf(),
        source,
    })
}

fn write_history(path: &Path, history: &[LogEntry]) -> Result<()> {
    let mut text = String::new();
    for e in history {
        text.push_str(&line(e, path)?);
        text.push('\n');
    }
    Ok(longtail_fs::write_atomic(path, text.as_bytes())?)
}

#[cfg(test)]
#[path = "learner_tests.rs"]
mod tests;
