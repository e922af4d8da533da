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
//!   [`TrainerState`] (`trainer_state.json`), atomic file writes;
//! * deterministic data order per epoch ([`DataOrder`]);
//! * [`EarlyStopping`] and `save_total_limit` checkpoint rotation.
//!
//! Intended use in a trainer loop (one optimizer update):
//!
//! ```text
//! acc.begin_window(window_len)?;
//! for batch in window { acc.backward(&model.loss(batch)?)?; }
//! let mut grads = acc.take();
//! let grad_norm = clip_grad_norm(&mut grads, &opt.trainable_vars(), max_grad_norm)?;
//! opt.set_learning_rate(schedule.lr_at(state.global_step));
//! opt.step(&grads)?;
//! state.global_step += 1;
//! ```

#![forbid(unsafe_code)]

pub mod accumulate;
pub mod adamw;
mod adamw_inplace;
pub mod atomic;
pub mod best_metric;
pub mod checkpoints;
pub mod class_weights;
pub mod clip;
pub mod early_stopping;
pub mod error;
pub mod optim_state;
pub mod param_groups;
pub mod schedule;
pub mod shuffle;
pub mod trainer;
pub mod trainer_state;

pub use accumulate::{accumulation_windows, num_update_steps_per_epoch, GradAccumulator};
pub use adamw::{AdamW, AdamWConfig, GroupInfo};
pub use atomic::{read_json, write_atomic, write_atomic_with, write_dir_atomic, write_json_atomic};
pub use best_metric::{metric_key, BestMetricConfig};
pub use checkpoints::{
    checkpoint_dir_name, checkpoints_to_delete, last_checkpoint, rotate_checkpoints,
    sorted_checkpoints, PREFIX_CHECKPOINT_DIR,
};
pub use class_weights::class_weights_inverse_frequency;
pub use clip::{clip_grad_norm, global_grad_norm};
pub use early_stopping::{EarlyStopping, EARLY_STOPPING_CALLBACK};
pub use error::{Result, TrainError};
pub use longtail_model::named_vars;
pub use optim_state::{OptimizerStateMeta, OPTIMIZER_JSON_FILE, OPTIMIZER_TENSORS_FILE};
pub use param_groups::{is_no_decay_param, ParamGroup, ParamGroupSpec, Partition};
pub use schedule::{resolve_warmup_steps, resolve_warmup_steps_v5, LrSchedule, SchedulerType};
pub use shuffle::{epoch_permutation, DataOrder};
pub use trainer_state::{
    resume_position, LogEntry, ResumePosition, RngState, TrainerState, TRAINER_STATE_FILE,
};
