//! Progress reporting without tying this crate to a terminal library.

use std::path::Path;

/// Receives progress while `prepare` streams its inputs. All methods default
/// to doing nothing so implementors override only what they display.
pub trait ProgressSink {
    /// A file is about to be read; `total_bytes` is its size on disk if known.
    fn start(&self, _file: &Path, _total_bytes: Option<u64>) {}
    /// Cumulative rows and on-disk bytes consumed so far (bytes are 0 for
    /// parquet, which is not read as a byte stream).
    fn rows(&self, _file: &Path, _rows: u64, _bytes: u64) {}
    /// The file has been read completely.
    fn finish(&self, _file: &Path, _rows: u64) {}
}

/// A [`ProgressSink`] that ignores everything.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoProgress;

impl ProgressSink for NoProgress {}
