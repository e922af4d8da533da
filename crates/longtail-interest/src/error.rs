use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum InterestError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}, line {line}: {reason}")]
    Parse {
        path: PathBuf,
        line: u64,
        reason: String,
    },
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Model(#[from] longtail_model::ModelError),
    #[error(transparent)]
    Train(#[from] longtail_train::TrainError),
    #[error(transparent)]
    Data(#[from] longtail_data::DataError),
    #[error(transparent)]
    Tokenize(#[from] longtail_tokenize::TokenizeError),
    #[error(transparent)]
    Rec(#[from] longtail_rec::RecError),
    #[error(transparent)]
    Fs(#[from] longtail_fs::FsError),
    #[error("tensor op: {0}")]
    Candle(#[from] candle_core::Error),
}

impl InterestError {
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Self::Io {
            path: path.into(),
            source,
        }
    }
    pub fn invalid(msg: impl Into<String>) -> Self {
        Self::Invalid(msg.into())
    }
}

pub type Result<T> = std::result::Result<T, InterestError>;
