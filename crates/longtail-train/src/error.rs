//! Error type shared by every module of this crate.

use std::path::PathBuf;

/// Errors produced by the training machinery.
#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    /// A tensor operation failed inside candle.
    #[error("tensor operation failed: {0}")]
    Candle(#[from] candle_core::Error),

    /// A file-system operation failed.
    #[error("I/O error on {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// A JSON document could not be written or parsed.
    #[error("JSON error in {path}: {source}")]
    Json {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },

    /// A caller-supplied argument is out of its valid range.
    #[error("invalid argument: {0}")]
    InvalidArgument(String),

    /// Saved optimizer state does not match the optimizer it is loaded into.
    #[error("optimizer state mismatch: {0}")]
    StateMismatch(String),

    /// The training loss or the gradient norm of an update is NaN or infinite; the update
    /// was not applied.
    #[error("{what} is {value} at step {step}")]
    NonFinite {
        /// `training loss` or `gradient norm`.
        what: &'static str,
        value: f64,
        /// The update that failed (1-based: `global_step + 1`).
        step: u64,
    },

    /// A [`NonFinite`](Self::NonFinite) update inside [`Learner::fit`](crate::Learner::fit),
    /// with where the run can be picked up again.
    #[error(
        "{what} is {value} at step {step} (epoch {epoch}); stopping without applying it. The \
         last good checkpoint is {last_good}. Try a lower --learning-rate or --max-grad-norm."
    )]
    Diverged {
        what: &'static str,
        value: f64,
        step: u64,
        epoch: u64,
        /// The newest checkpoint written before, or `(none saved yet)`.
        last_good: String,
    },
}

impl From<longtail_fs::FsError> for TrainError {
    fn from(e: longtail_fs::FsError) -> Self {
        match e {
            longtail_fs::FsError::Io { path, source } => TrainError::Io { path, source },
            longtail_fs::FsError::Json { path, source } => TrainError::Json { path, source },
            other => TrainError::InvalidArgument(other.to_string()),
        }
    }
}

impl TrainError {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        TrainError::Io {
            path: path.into(),
            source,
        }
    }

    pub(crate) fn invalid(msg: impl Into<String>) -> Self {
        TrainError::InvalidArgument(msg.into())
    }
}

/// Result alias for this crate.
pub type Result<T, E = TrainError> = std::result::Result<T, E>;
