//! Errors of a recommendation evaluation or plan search.

use std::path::PathBuf;

/// Everything that can stop `eval-rec` or the plan search.
#[derive(Debug, thiserror::Error)]
pub enum RecEvalError {
    #[error("{what}: no examples")]
    Empty { what: String },
    #[error("invalid option: {0}")]
    Option(String),
    #[error("writing {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("serialising the report: {0}")]
    Json(#[from] serde_json::Error),
    #[error(transparent)]
    Plot(#[from] longtail_plot::PlotError),
    #[error(transparent)]
    Data(#[from] longtail_data::DataError),
    #[error(transparent)]
    Rec(#[from] longtail_rec::RecError),
    #[error(transparent)]
    Fs(#[from] longtail_fs::FsError),
}

impl RecEvalError {
    pub(crate) fn io(path: &std::path::Path) -> impl FnOnce(std::io::Error) -> Self + '_ {
        move |source| RecEvalError::Io {
            path: path.to_path_buf(),
            source,
        }
    }
}
