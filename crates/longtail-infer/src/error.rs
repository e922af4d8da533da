//! Errors of the inference crate.

use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum InferError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("checkpoint {path}: {message}")]
    Checkpoint { path: PathBuf, message: String },
    #[error(transparent)]
    Model(#[from] longtail_model::ModelError),
    #[error(transparent)]
    Tensor(#[from] candle_core::Error),
    #[error(transparent)]
    Tokenize(#[from] longtail_tokenize::TokenizeError),
    #[error(transparent)]
    Data(#[from] longtail_data::DataError),
    #[error("cannot resume: {0}")]
    Resume(String),
    #[error("{0}")]
    Invalid(String),
    /// Another live process writes this output (its lock is held): retry later. The binary
    /// exits with status 75 (EX_TEMPFAIL) for it, so a driver can tell it from a failure.
    #[error("{0}")]
    Busy(String),
    #[error("writing parquet {path}: {message}")]
    Parquet { path: PathBuf, message: String },
}

impl From<longtail_fs::FsError> for InferError {
    fn from(e: longtail_fs::FsError) -> Self {
        match e {
            longtail_fs::FsError::Io { path, source } => Self::Io { path, source },
            locked @ longtail_fs::FsError::Locked { .. } => Self::Busy(locked.to_string()),
            other => Self::Invalid(other.to_string()),
        }
    }
}

impl InferError {
    pub fn io(path: impl AsRef<Path>, source: std::io::Error) -> Self {
        Self::Io {
            path: path.as_ref().to_path_buf(),
            source,
        }
    }

    pub fn checkpoint(path: impl AsRef<Path>, message: impl Into<String>) -> Self {
        Self::Checkpoint {
            path: path.as_ref().to_path_buf(),
            message: message.into(),
        }
    }
}

pub type Result<T, E = InferError> = std::result::Result<T, E>;
