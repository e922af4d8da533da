//! longtail-classify: fine-tunes a BERT sequence classifier to tell tail items from head items
//! (the objective behind `longtail train`), run by longtail-train's [`Learner`] in
//! longtail-model's checkpoint layout.
//!
//! * [`train`]: a prepared dataset and a base model in, `checkpoint-N/` directories (weights,
//!   config with `id2label`, tokenizer, optimizer and trainer state, training arguments),
//!   `metrics.jsonl` and the best model at the top of the output directory out; resumable
//!   bit-identically after `kill -9`.
//! * [`data`]: tokenized splits, length-bucketed batches, [`predict`] for validation.
//!
//! [`Learner`]: longtail_train::Learner

pub mod config;
pub mod data;
pub mod error;
pub mod trainer;

pub use config::{ClassWeights, EvalStrategy, MetricForBestModel, TrainConfig};
pub use data::{label_id, predict, EncodedSplit, LABELS};
pub use error::{ClassifyError, Result};
pub use trainer::{load_model, train, TrainOutcome};
