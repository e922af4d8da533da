//! The shared row loop: accounting, reject logging and progress for one file.

use std::path::Path;

use longtail_fs::AtomicFile;
use serde::Serialize;

use crate::reader::{Record, RecordReader, Reject};
use crate::stats::FileSummary;
use crate::DataError;
use longtail_progress::{Event, ReadInfo};

/// A power of two, so the check below is a mask (and needs no newer std).
const PROGRESS_EVERY: u64 = 8192;

/// `OUT/rejects.jsonl`, one object per rejected row.
pub(crate) struct RejectLog {
    file: AtomicFile,
}

#[derive(Serialize)]
struct RejectLine<'a> {
    file: &'a str,
    line: u64,
    reason: String,
}

impl RejectLog {
    pub(crate) fn create(path: &Path) -> Result<Self, DataError> {
        Ok(Self {
            file: AtomicFile::create(path)?,
        })
    }

    fn log(&mut self, summary: &mut FileSummary, reject: &Reject) -> Result<(), DataError> {
        summary.count_reject(reject);
        let line = RejectLine {
            file: &summary.path,
            line: reject.line,
            reason: reject.to_string(),
        };
        let path = self.file.path().to_path_buf();
        serde_json::to_writer(&mut self.file, &line)
            .map_err(|e| DataError::write(&path)(e.into()))?;
        std::io::Write::write_all(&mut self.file, b"\n").map_err(DataError::write(path))
    }

    pub(crate) fn commit(self) -> Result<(), DataError> {
        Ok(self.file.commit()?)
    }
}

/// Streams every row of `reader` through `accept`, which either uses the
/// record or rejects it. Rows the reader itself rejects never reach
/// `accept`. Returns the file's balanced accounting.
pub(crate) fn for_each_row(
    mut reader: RecordReader,
    role: &str,
    display_path: &Path,
    rejects: &mut RejectLog,
    progress: &dyn Fn(Event<'_>),
    mut accept: impl FnMut(Record) -> Result<Result<(), Reject>, DataError>,
) -> Result<FileSummary, DataError> {
    let mut summary = FileSummary::new(role, display_path, reader.format());
    let total_bytes = std::fs::metadata(reader.path()).ok().map(|m| m.len());
    progress(Event::ReadStart {
        file: display_path,
        bytes_total: total_bytes,
    });
    let read = |summary: &FileSummary, bytes: u64| ReadInfo {
        file: display_path,
        rows: summary.read,
        rows_total: None,
        bytes,
        bytes_total: total_bytes,
        rejected: summary.rejected,
    };
    while let Some(row) = reader.next_row()? {
        summary.read += 1;
        let outcome = match row {
            Ok(record) => accept(record)?,
            Err(reject) => Err(reject),
        };
        match outcome {
            Ok(()) => summary.kept += 1,
            Err(reject) => rejects.log(&mut summary, &reject)?,
        }
        if summary.read & (PROGRESS_EVERY - 1) == 0 {
            progress(Event::Read(&read(&summary, reader.bytes_read())));
        }
    }
    progress(Event::Read(&read(&summary, reader.bytes_read())));
    progress(Event::ReadDone {
        file: display_path,
        rows: summary.read,
    });
    debug_assert_eq!(summary.read, reader.rows_read());
    summary.assert_balanced();
    if summary.kept == 0 {
        return Err(DataError::NoUsableRows {
            path: display_path.to_path_buf(),
        });
    }
    Ok(summary)
}

/// An id cell as text: trimmed strings and numbers (`42`), anything else
/// (null, empty, arrays, ...) counts as missing.
pub(crate) fn id_text(value: Option<&serde_json::Value>) -> Option<String> {
    match value? {
        serde_json::Value::String(s) => {
            let t = s.trim();
            (!t.is_empty()).then(|| t.to_string())
        }
        serde_json::Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn id_text_accepts_strings_and_numbers_only() {
        assert_eq!(id_text(Some(&json!(" B00X "))), Some("B00X".into()));
        assert_eq!(id_text(Some(&json!(42))), Some("42".into()));
        assert_eq!(id_text(Some(&json!(""))), None);
        assert_eq!(id_text(Some(&json!("  "))), None);
        assert_eq!(id_text(Some(&json!(null))), None);
        assert_eq!(id_text(Some(&json!(["a"]))), None);
        assert_eq!(id_text(None), None);
    }
}
