//! Streaming readers for catalogue and interaction files.
//!
//! Every reader yields one [`RowResult`] per data row: a [`Record`] (field
//! name -> JSON value) or a [`Reject`] saying why the row is unusable. Fatal
//! problems (unreadable file, missing header column) are [`DataError`]s.
//! The same readers serve `prepare` and any later command that streams raw
//! catalogue rows.

mod columnar;
mod delimited;
mod format;
mod input_set;
mod jsonl;
mod lines;
mod reject;
mod source;

use std::path::{Path, PathBuf};

use serde_json::{Map, Value};

use crate::DataError;

pub use columnar::{ParquetLayout, RowGroupSpan};
pub use format::Format;
pub use input_set::{InputFile, InputKind, InputSet};
pub(crate) use reject::excerpt;
pub use reject::{Reject, RejectReason};

/// Default limit for one physical line: 1 MiB.
pub const DEFAULT_MAX_LINE_BYTES: usize = 1 << 20;

/// One usable input row.
#[derive(Debug, Clone, PartialEq)]
pub struct Record {
    /// 1-based line number (CSV counts the header as line 1; parquet rows are
    /// numbered from 1).
    pub line: u64,
    pub fields: Map<String, Value>,
}

/// A row is either usable or rejected with a reason.
pub type RowResult = Result<Record, Reject>;

/// Per-row limits shared by the text readers.
#[derive(Debug, Clone, Copy)]
pub struct ReadOptions {
    /// Lines longer than this (excluding the newline) are rejected without
    /// being held in memory.
    pub max_line_bytes: usize,
}

impl Default for ReadOptions {
    fn default() -> Self {
        Self {
            max_line_bytes: DEFAULT_MAX_LINE_BYTES,
        }
    }
}

enum Inner {
    Jsonl(jsonl::JsonlRows),
    Csv(delimited::CsvRows),
    Parquet(columnar::ParquetRows),
}

/// Streams rows from one file, whichever its format.
///
/// Iterating yields `Result<RowResult, DataError>`: the outer error is fatal
/// (stop reading), the inner `Err(Reject)` is a bad row (keep going).
pub struct RecordReader {
    path: PathBuf,
    format: Format,
    inner: Inner,
    rows: u64,
}

impl RecordReader {
    /// Opens `path`, choosing the format from its extension and detecting
    /// gzip compression from the magic bytes.
    pub fn open(path: &Path, opts: ReadOptions) -> Result<Self, DataError> {
        let format = Format::from_path(path)?;
        let inner = match format {
            Format::Jsonl => Inner::Jsonl(jsonl::JsonlRows::open(path, opts)?),
            Format::Csv => Inner::Csv(delimited::CsvRows::open(path, opts)?),
            Format::Parquet => Inner::Parquet(columnar::ParquetRows::open(path)?),
        };
        Ok(Self {
            path: path.to_path_buf(),
            format,
            inner,
            rows: 0,
        })
    }

    /// The rows of one row group of a parquet file whose footer `layout` has read, numbered
    /// as in the whole file. [`Self::bytes_read`] counts the group's bytes only.
    pub fn open_row_group(layout: &ParquetLayout, group: usize) -> Result<Self, DataError> {
        Ok(Self {
            path: layout.path().to_path_buf(),
            format: Format::Parquet,
            inner: Inner::Parquet(columnar::ParquetRows::row_group(layout, group)?),
            rows: 0,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn format(&self) -> Format {
        self.format
    }

    /// Column names when the format declares them up front (CSV header,
    /// parquet schema); `None` for JSON Lines.
    pub fn columns(&self) -> Option<&[String]> {
        match &self.inner {
            Inner::Jsonl(_) => None,
            Inner::Csv(r) => Some(r.columns()),
            Inner::Parquet(r) => Some(r.columns()),
        }
    }

    /// Fails with [`DataError::MissingColumn`] if the file declares its
    /// columns and `column` is not among them. JSON Lines rows are checked
    /// one by one instead, by the caller.
    pub fn require_column(&self, column: &str) -> Result<(), DataError> {
        match self.columns() {
            Some(cols) if !cols.iter().any(|c| c == column) => Err(DataError::MissingColumn {
                path: self.path.clone(),
                column: column.to_string(),
                found: cols.join(", "),
            }),
            _ => Ok(()),
        }
    }

    /// Rows (records plus rejects) yielded so far.
    pub fn rows_read(&self) -> u64 {
        self.rows
    }

    /// Compressed on-disk bytes consumed so far (parquet: the footer and the column chunks
    /// its decoder consumed).
    pub fn bytes_read(&self) -> u64 {
        match &self.inner {
            Inner::Jsonl(r) => r.bytes_read(),
            Inner::Csv(r) => r.bytes_read(),
            Inner::Parquet(r) => r.bytes_read(),
        }
    }

    /// The next row, `Ok(None)` at the end of the file.
    pub fn next_row(&mut self) -> Result<Option<RowResult>, DataError> {
        let row = match &mut self.inner {
            Inner::Jsonl(r) => r.next_row(),
            Inner::Csv(r) => r.next_row(),
            Inner::Parquet(r) => r.next_row(),
        }?;
        if row.is_some() {
            self.rows += 1;
        }
        Ok(row)
    }
}

impl Iterator for RecordReader {
    type Item = Result<RowResult, DataError>;

    fn next(&mut self) -> Option<Self::Item> {
        self.next_row().transpose()
    }
}

impl std::fmt::Debug for RecordReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RecordReader")
            .field("path", &self.path)
            .field("format", &self.format)
            .field("rows", &self.rows)
            .finish()
    }
}
