//! longtail-infer: score catalogue rows with a fine-tuned checkpoint.
//!
//! - [`Scorer`]: load a `longtail train` output (model, tokenizer, and the template and
//!   `max_len` it was trained with) and turn texts or records into tail probabilities (and
//!   pooled embeddings), batching by a padded-token budget with length sorting.
//! - [`score_file`]: stream a JSONL / CSV / Parquet dump (gzip or not) through a `Scorer` in
//!   bounded memory, writing output rows in input order in durable chunks, bad rows to a
//!   rejects file, with resume after a crash and contiguous row-block sharding.
//!
//! ```no_run
//! let scorer = longtail_infer::Scorer::from_checkpoint("runs/office-model")?;
//! let p = scorer.score(&["HP 12C Financial Calculator | HP | Calculators"])?;
//! assert!((0.0..=1.0).contains(&p[0]));
//! # Ok::<(), longtail_infer::InferError>(())
//! ```

#![forbid(unsafe_code)]

pub mod error;
pub mod rows;
pub mod scorer;
pub mod stream;

pub use error::{InferError, Result};
/// The precision and the device a [`Scorer`] runs in (`ScorerOptions::precision`, `::device`).
pub use longtail_model::{Device, Precision};
pub use rows::RowFields;
pub use scorer::{default_max_batch_tokens, ForwardStats, Scorer, ScorerOptions, Scores};
pub use stream::{
    merge_parts, score_file, MergeSummary, MergedPart, OutputFormat, Shard, StreamOptions,
    StreamSummary, SUCCESS_FILE,
};
