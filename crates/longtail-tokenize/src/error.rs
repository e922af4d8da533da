//! Error type of the crate.

use std::path::PathBuf;

/// Everything that can go wrong while loading a tokenizer or encoding items.
#[derive(Debug, thiserror::Error)]
pub enum TokenizeError {
    #[error("failed to load tokenizer from {path}: {message}")]
    Load { path: PathBuf, message: String },

    /// Errors raised by the `tokenizers` crate while encoding or post-processing.
    #[error("tokenizer error: {0}")]
    Tokenizer(String),

    #[error("invalid field template {template:?}: {reason}")]
    Template { template: String, reason: String },

    #[error("max_len {max_len} leaves no room for content: the post-processor adds {n_special} special tokens")]
    MaxLenTooSmall { max_len: usize, n_special: usize },

    #[error("no padding token: the tokenizer file has no padding config and its vocabulary has none of [PAD], <pad>, <|pad|>; set TokenizeConfig::pad_id")]
    NoPadToken,

    #[error("invalid bucket config: {0}")]
    BucketConfig(String),

    #[error("failed to build the rayon thread pool: {0}")]
    ThreadPool(String),

    #[error("batch index {index} out of range for {len} encoded rows")]
    IndexOutOfRange { index: usize, len: usize },

    #[error("I/O error on {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl TokenizeError {
    pub(crate) fn tok(err: impl std::fmt::Display) -> Self {
        TokenizeError::Tokenizer(err.to_string())
    }

    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        TokenizeError::Io {
            path: path.into(),
            source,
        }
    }
}

pub type Result<T, E = TokenizeError> = std::result::Result<T, E>;
