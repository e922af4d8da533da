//! The public options and results of [`score_file`](super::score_file): output format,
//! [`StreamOptions`] and its derived paths, and [`StreamSummary`].

use std::path::{Path, PathBuf};

use longtail_data::ReadOptions;

use super::Shard;
use crate::error::{InferError, Result};

/// Output file format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(
    feature = "clap",
    derive(clap::ValueEnum),
    value(rename_all = "snake_case")
)]
pub enum OutputFormat {
    #[cfg_attr(feature = "clap", value(alias = "json"))]
    Jsonl,
    Csv,
    Parquet,
}

impl OutputFormat {
    pub fn parse(s: &str) -> Result<Self> {
        match s {
            "jsonl" | "json" => Ok(Self::Jsonl),
            "csv" => Ok(Self::Csv),
            "parquet" => Ok(Self::Parquet),
            other => Err(InferError::Invalid(format!(
                "format {other:?}: expected jsonl, csv or parquet"
            ))),
        }
    }

    /// From the output file's extension; JSON Lines when unknown.
    pub fn from_path(path: &Path) -> Self {
        let name = path.to_string_lossy().to_ascii_lowercase();
        if name.ends_with(".csv") {
            Self::Csv
        } else if name.ends_with(".parquet") {
            Self::Parquet
        } else {
            Self::Jsonl
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::Jsonl => "jsonl",
            Self::Csv => "csv",
            Self::Parquet => "parquet",
        }
    }
}

/// What [`score_file`](super::score_file) does.
#[derive(Debug, Clone)]
pub struct StreamOptions {
    pub input: PathBuf,
    pub output: PathBuf,
    pub format: OutputFormat,
    /// Default: `OUT.rejects.jsonl`.
    pub rejects: Option<PathBuf>,
    pub resume: bool,
    /// Replace an existing output; without it (or `resume`) an existing output is an error,
    /// so one mistaken rerun cannot wipe hours of scoring.
    pub overwrite: bool,
    pub shard: Shard,
    /// Rows per durable chunk (also the length-sorting window and the shard block size).
    pub chunk_rows: usize,
    pub embeddings: bool,
    /// `label` is the tail label when `p_tail >= threshold`.
    pub threshold: f32,
    /// Column holding the item id.
    pub id_field: String,
    pub read: ReadOptions,
}

impl StreamOptions {
    pub fn new(input: impl Into<PathBuf>, output: impl Into<PathBuf>) -> Self {
        let output = output.into();
        Self {
            input: input.into(),
            format: OutputFormat::from_path(&output),
            output,
            rejects: None,
            resume: false,
            overwrite: false,
            shard: Shard::default(),
            chunk_rows: 4096,
            embeddings: false,
            threshold: 0.5,
            id_field: "item_id".into(),
            read: ReadOptions::default(),
        }
    }

    pub fn rejects_path(&self) -> PathBuf {
        self.rejects
            .clone()
            .unwrap_or_else(|| suffixed(&self.output, ".rejects.jsonl"))
    }

    pub fn progress_path(&self) -> PathBuf {
        suffixed(&self.output, ".progress.json")
    }

    /// Where rows are appended: the output itself, or a JSONL spool for parquet (whose footer
    /// cannot be appended to), converted at the end.
    pub(super) fn data_path(&self) -> PathBuf {
        match self.format {
            OutputFormat::Parquet => suffixed(&self.output, ".spool.jsonl"),
            _ => self.output.clone(),
        }
    }
}

pub(super) fn suffixed(path: &Path, suffix: &str) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(suffix);
    PathBuf::from(s)
}

/// The end of a run.
#[derive(Debug, Clone)]
pub struct StreamSummary {
    /// Rows of this shard: `scored + rejected`.
    pub rows: u64,
    pub scored: u64,
    pub rejected: u64,
    /// Rows that an earlier, interrupted run had already done.
    pub resumed_rows: u64,
    pub seconds: f64,
    pub output: PathBuf,
    pub rejects: PathBuf,
    /// Input bytes read for this output over all its attempts (a sharded single file's
    /// counting pass and skipped rows included).
    pub bytes_read: u64,
    /// Parquet footers read to plan the shard (over all attempts).
    pub footer_bytes: u64,
    /// Bytes of the whole input (every file of a many-file input).
    pub input_bytes: u64,
}

impl StreamSummary {
    /// Rows per second done by this invocation.
    pub fn rows_per_second(&self) -> f64 {
        (self.rows - self.resumed_rows) as f64 / self.seconds.max(1e-9)
    }
}
