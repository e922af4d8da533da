//! Typed errors of the model crate.

use std::path::PathBuf;

/// Everything that can go wrong while building, loading, running or saving a model.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    #[error(transparent)]
    Candle(#[from] candle_core::Error),

    #[error(transparent)]
    Device(#[from] crate::device::DeviceError),

    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    #[error("{path}: invalid JSON: {source}")]
    Json {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },

    #[error("invalid model config: {0}")]
    Config(String),

    #[error("{0}")]
    Hub(String),

    #[error("{path}: {message}")]
    Checkpoint { path: PathBuf, message: String },

    #[error("invalid input: {0}")]
    Input(String),

    #[error(transparent)]
    Tokenize(#[from] longtail_tokenize::TokenizeError),
}

impl From<longtail_fs::FsError> for ModelError {
    fn from(e: longtail_fs::FsError) -> Self {
        match e {
            longtail_fs::FsError::Io { path, source } => Self::Io { path, source },
            longtail_fs::FsError::Json { path, source } => Self::Json { path, source },
            other => Self::checkpoint(other.path().to_path_buf(), other.to_string()),
        }
    }
}

pub type Result<T, E = ModelError> = std::result::Result<T, E>;

impl ModelError {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Self::Io {
            path: path.into(),
            source,
        }
    }

    pub(crate) fn checkpoint(path: impl Into<PathBuf>, message: impl Into<String>) -> Self {
        Self::Checkpoint {
            path: path.into(),
            message: message.into(),
        }
    }
}
