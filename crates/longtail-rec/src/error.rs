//! Errors of loading interactions, scoring and fitting.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum RecError {
    #[error("{path}:{line}: {reason}")]
    Input {
        path: PathBuf,
        line: u64,
        reason: String,
    },
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{model}: non-finite score {value} for item {item} of user {user}")]
    NonFiniteScore {
        model: String,
        user: u32,
        item: u32,
        value: f32,
    },
    #[error("matrix is not positive definite (at row {row})")]
    NotPositiveDefinite { row: usize },
    #[error("{0}")]
    Shape(String),
    #[error(transparent)]
    Data(#[from] longtail_data::DataError),
}
