//! longtail-data: ingest, clean, label and split item catalogues and
//! interaction logs for long-tail prediction.
//!
//! Entry points:
//! * [`prepare()`] runs the `longtail prepare` pipeline;
//! * [`PreparedDataset::load`] reads its output back;
//! * [`RecordReader`] streams raw JSONL / CSV / parquet rows (gzip-aware);
//! * [`clean_text`] is the text normaliser applied to every field.
//!
//! Label and split definitions are documented in [`label`] and [`split`].

#![forbid(unsafe_code)]

mod clean;
mod dataset;
mod error;
pub mod label;
mod options;
mod prepare;
pub mod reader;
pub mod split;
mod stats;
mod timestamp;

pub use clean::{clean_text, render_value};
pub use dataset::{PreparedDataset, PreparedItem};
pub use error::DataError;
pub use label::{Label, TailRule};
pub use options::PrepareOptions;
pub use prepare::{
    listing_text, prepare, PrepareMeta, INTERACTIONS_FILE, ITEMS_FILE, META_FILE, POPULARITY_FILE,
    REJECTS_FILE, STATS_FILE,
};
pub use reader::{
    Format, InputFile, InputKind, InputSet, ParquetLayout, ReadOptions, Record, RecordReader,
    Reject, RejectReason, RowGroupSpan, RowResult,
};
pub use split::{Split, SplitSpec};
pub use stats::{gini, FileSummary, LabelStats, PrepareSummary, RuleSummary};
pub use timestamp::{parse_date, parse_timestamp};
