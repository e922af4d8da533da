//! Field-aware tokenization for longtail.
//!
//! Pipeline, one module per stage:
//! 1. [`template`]: render an item's text from named fields (`{title} | {brand} | ...`);
//! 2. truncation (inside [`ItemTokenizer::encode_item`]): cut to `max_len` by field
//!    priority (description first, title last), then add the file's special tokens;
//! 3. [`bucketing`]: group sequences into length-sorted batches under a token budget;
//! 4. [`padding`]: pad a batch to its longest row;
//! 5. [`parallel`]: encode many items on a rayon pool.
//!
//! ```no_run
//! use longtail_tokenize::{bucket_batches, BucketConfig, ItemTokenizer, TokenizeConfig};
//! let tok = ItemTokenizer::from_file("tokenizer.json", TokenizeConfig::default())?;
//! let items = vec![serde_json::json!({"title": "Stapler", "brand": "deli"})];
//! let encoded = tok.encode_batch_parallel(&items)?;
//! let lengths: Vec<usize> = encoded.iter().map(|e| e.len()).collect();
//! for indices in bucket_batches(&lengths, &BucketConfig::default())? {
//!     let batch = tok.pad_batch(&encoded, &indices)?;
//!     assert_eq!(batch.input_ids.len(), batch.batch_size() * batch.seq_len);
//! }
//! # Ok::<(), longtail_tokenize::TokenizeError>(())
//! ```

#![forbid(unsafe_code)]

pub mod bucketing;
pub mod error;
pub mod fields;
pub mod padding;
pub mod parallel;
pub mod template;
pub mod tokenizer;
mod truncation;

pub use bucketing::{bucket_batches, BucketConfig};
pub use error::{Result, TokenizeError};
pub use fields::{FieldSource, TEXT_FIELD};
pub use padding::{pad_batch, Batch, PadSpec};
pub use template::{FieldTemplate, CATALOGUE_TEMPLATE};
pub use tokenizer::{Encoded, ItemTokenizer, TokenizeConfig};
