//! Errors of the classification trainer.

use std::path::PathBuf;

/// Everything that can stop a training run.
#[derive(Debug, thiserror::Error)]
pub enum ClassifyError {
    /// A training argument is out of range or inconsistent.
    #[error("{0}")]
    InvalidArgument(String),

    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    #[error(transparent)]
    Model(#[from] longtail_model::ModelError),

    /// A model error with what was being done.
    #[error("{context}: {source}")]
    ModelContext {
        context: String,
        #[source]
        source: longtail_model::ModelError,
    },

    #[error(transparent)]
    Train(#[from] longtail_train::TrainError),

    #[error(transparent)]
    Data(#[from] longtail_data::DataError),

    #[error(transparent)]
    Tokenize(#[from] longtail_tokenize::TokenizeError),

    #[error(transparent)]
    Fs(#[from] longtail_fs::FsError),

    #[error(transparent)]
    Tensor(#[from] candle_core::Error),

    #[error("serialising the training arguments: {0}")]
    Toml(#[from] toml::ser::Error),

    #[error("serialising metrics: {0}")]
    Json(#[from] serde_json::Error),
}

impl ClassifyError {
    pub(crate) fn invalid(msg: impl Into<String>) -> Self {
        Self::InvalidArgument(msg.into())
    }

    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Self::Io {
            path: path.into(),
            source,
        }
    }

    /// A model error with what was being done.
    pub(crate) fn model(
        context: impl Into<String>,
    ) -> impl FnOnce(longtail_model::ModelError) -> Self {
        let context = context.into();
        move |source| Self::ModelContext { context, source }
    }
}

/// Returns `Err(ClassifyError::InvalidArgument(msg()))` unless `cond`.
pub(crate) fn ensure(cond: bool, msg: impl FnOnce() -> String) -> Result<()> {
    if cond {
        Ok(())
    } else {
        Err(ClassifyError::InvalidArgument(msg()))
    }
}

pub type Result<T, E = ClassifyError> = std::result::Result<T, E>;
