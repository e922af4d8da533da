//! Errors from evaluation, baselines and report writing.

use std::path::PathBuf;

/// Everything that can stop an evaluation. Degenerate inputs are errors rather
/// than NaN metrics, so a report never silently contains `null`s.
#[derive(Debug, thiserror::Error)]
pub enum EvalError {
    #[error("{what}: no examples")]
    Empty { what: String },
    #[error("{what}: {scores} scores but {labels} labels")]
    LengthMismatch {
        what: String,
        scores: usize,
        labels: usize,
    },
    #[error("{what}: only one class present ({positives} tail of {n}); ROC-AUC is undefined")]
    OneClass {
        what: String,
        positives: usize,
        n: usize,
    },
    #[error("invalid option: {0}")]
    Option(String),
    #[error("no text feature occurs in at least {min_df} training documents")]
    EmptyVocabulary { min_df: usize },
    #[error("writing {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("serialising the report: {0}")]
    Json(#[from] serde_json::Error),
    #[error(transparent)]
    Metrics(#[from] longtail_metrics::MetricsError),
    #[error(transparent)]
    Plot(#[from] longtail_plot::PlotError),
    #[error(transparent)]
    Data(#[from] longtail_data::DataError),
    #[error(transparent)]
    Fs(#[from] longtail_fs::FsError),
}

impl EvalError {
    pub(crate) fn io(path: &std::path::Path) -> impl FnOnce(std::io::Error) -> Self + '_ {
        move |source| EvalError::Io {
            path: path.to_path_buf(),
            source,
        }
    }
}
