//! Fatal errors. Row-level problems are never errors: they become rejects.

use std::path::PathBuf;

/// Errors that stop `prepare` (the binary exits non-zero). Every variant that
/// concerns an input names the file.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    #[error("cannot open {path}: {source}")]
    Open {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("error reading {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "unknown file format for {path}: expected .jsonl, .json, .ndjson or .csv \
         (optionally .gz), or .parquet"
    )]
    UnknownFormat { path: PathBuf },
    #[error("{path}: required column `{column}` not found (columns: {found})")]
    MissingColumn {
        path: PathBuf,
        column: String,
        found: String,
    },
    #[error("{path}: cannot read the CSV header: {reason}")]
    BadHeader { path: PathBuf, reason: String },
    #[error("{path}: no usable rows (every row was rejected; see rejects.jsonl)")]
    NoUsableRows { path: PathBuf },
    #[error("error reading parquet file {path}: {source}")]
    Parquet {
        path: PathBuf,
        #[source]
        source: parquet::errors::ParquetError,
    },
    #[error("cannot write {path}: {source}")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("invalid {what} `{value}`: {reason}")]
    InvalidOption {
        what: &'static str,
        value: String,
        reason: String,
    },
    #[error("{path}: malformed prepared data at line {line}: {reason}")]
    Prepared {
        path: PathBuf,
        line: u64,
        reason: String,
    },
    /// A directory, glob or manifest input that names no usable list of files.
    #[error("input {spec}: {reason}")]
    Inputs { spec: String, reason: String },
    #[error(transparent)]
    Plot(#[from] longtail_plot::PlotError),
}

/// The durable writes of longtail-fs fail like any other write: `cannot write PATH: ...`.
impl From<longtail_fs::FsError> for DataError {
    fn from(e: longtail_fs::FsError) -> Self {
        use longtail_fs::FsError;
        match e {
            FsError::Io { path, source } => DataError::Write { path, source },
            FsError::Json { path, source } => DataError::Write {
                path,
                source: source.into(),
            },
            FsError::NoFileName(path) => DataError::Write {
                path,
                source: std::io::Error::new(std::io::ErrorKind::InvalidInput, "no file name"),
            },
            locked @ FsError::Locked { .. } => DataError::Write {
                path: locked.path().to_path_buf(),
                source: std::io::Error::new(std::io::ErrorKind::WouldBlock, locked.to_string()),
            },
        }
    }
}

impl DataError {
    pub(crate) fn write(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> Self {
        let path = path.into();
        move |source| DataError::Write { path, source }
    }

    pub(crate) fn read(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> Self {
        let path = path.into();
        move |source| DataError::Read { path, source }
    }
}
