//! Model-independent training machinery for longtail, mirroring the
//! semantics and vocabulary of the Hugging Face `transformers` Trainer:
//!
//! * [`AdamW`] over named `candle_core::Var`s with HF parameter groups
//!   (no decay for biases / LayerNorm weights), frozen parameters and
//!   per-group learning-rate multipliers; numerically checked against
//!   `torch.optim.AdamW` (see `tests/torch_parity.rs`);
//! * [`LrSchedule`]: `linear`, `cosine`, `constant_with_warmup`;
//! * [`clip_grad_norm`] (global L2 norm, as `clip_grad_norm_`);
//! * [`GradAccumulator`] for `gradient_accumulation_steps`;
//! * [`class_weights_inverse_frequency`] (sklearn "balanced");
//! * resumable state: optimizer moments ([`AdamW::save_state`]),
//!   [`TrainerState`] (`trainer_state.json`), written atomically through `longtail-fs`;
//! * deterministic data order per epoch ([`DataOrder`]);
//! * [`EarlyStopping`] and `save_total_limit` checkpoint rotation.
//!
//! One optimizer update, as every trainer runs it ([`StepDriver`]):
//!
//! ```text
//! let mut driver = StepDriver::new(optimizer, schedule, max_grad_norm);
//! for w in remaining_updates(driver.global_step(), num_batches, gas, num_epochs)? {
//!     let report = driver.step(w.batches.len(), |i| model.loss(&batches[w.batches.start + i]))?;
//! }
//! ```
//!
//! The loop around it, the same for every trainer, is [`Learner::fit`]: a model plugs in as
//! an [`Objective`] (batches, loss, evaluation, checkpoint files) and reports through one
//! [`Event`] type.
//!
//! Model-specific trainers live elsewhere (`longtail-classify`, `longtail-interest`).

#![forbid(unsafe_code)]

pub mod accumulate;
pub mod adamw;
mod adamw_inplace;
pub mod best_metric;
pub mod checkpoints;
pub mod class_weights;
pub mod clip;
pub mod early_stopping;
pub mod error;
pub mod learner;
pub mod optim_state;
pub mod param_groups;
pub mod schedule;
pub mod shuffle;
pub mod step;
pub mod trainer_state;

pub use accumulate::{accumulation_windows, num_update_steps_per_epoch, GradAccumulator};
pub use adamw::{AdamW, AdamWConfig, GroupInfo};
pub use best_metric::{metric_key, BestMetricConfig};
pub use checkpoints::{
    checkpoint_dir_name, checkpoints_to_delete, last_checkpoint, rotate_checkpoints,
    sorted_checkpoints, PREFIX_CHECKPOINT_DIR,
};
pub use class_weights::class_weights_inverse_frequency;
pub use clip::{clip_grad_norm, global_grad_norm};
pub use early_stopping::{EarlyStopping, EARLY_STOPPING_CALLBACK};
pub use error::{Result, TrainError};
pub use learner::{EvalCadence, FitOutcome, FitSettings, Learner, Objective, SavePolicy};
pub use longtail_model::named_vars;
pub use longtail_progress::{Event, StepInfo};
pub use optim_state::{OptimizerStateMeta, OPTIMIZER_JSON_FILE, OPTIMIZER_TENSORS_FILE};
pub use param_groups::{encoder_layer, is_no_decay_param, ParamGroup, ParamGroupSpec, Partition};
pub use schedule::{resolve_warmup_steps, resolve_warmup_steps_v5, LrSchedule, SchedulerType};
pub use shuffle::{epoch_permutation, DataOrder};
pub use step::{remaining_updates, PhaseTimes, StepDriver, StepReport, UpdateWindow};
pub use trainer_state::{
    resume_position, LogEntry, ResumePosition, RngState, TrainerState, TRAINER_STATE_FILE,
};
