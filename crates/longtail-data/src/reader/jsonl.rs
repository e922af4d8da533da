//! JSON Lines rows: one JSON object per physical line.

use std::io::BufRead;
use std::path::{Path, PathBuf};

use serde_json::Value;

use super::lines::{line_text, too_long, BoundedLines, LineStatus};
use super::source::{open_text, ByteCounter};
use super::{ReadOptions, Record, Reject, RejectReason, RowResult};
use crate::DataError;

pub(crate) struct JsonlRows {
    path: PathBuf,
    lines: BoundedLines<Box<dyn BufRead>>,
    buf: Vec<u8>,
    counter: ByteCounter,
    max: usize,
}

impl JsonlRows {
    pub(crate) fn open(path: &Path, opts: ReadOptions) -> Result<Self, DataError> {
        let (reader, counter) = open_text(path)?;
        Ok(Self {
            path: path.to_path_buf(),
            lines: BoundedLines::new(reader, opts.max_line_bytes),
            buf: Vec::new(),
            counter,
            max: opts.max_line_bytes,
        })
    }

    pub(crate) fn bytes_read(&self) -> u64 {
        self.counter.get()
    }

    pub(crate) fn next_row(&mut self) -> Result<Option<RowResult>, DataError> {
        let next = self
            .lines
            .next_line(&mut self.buf)
            .map_err(DataError::read(&self.path))?;
        Ok(next.map(|(line, status)| match status {
            LineStatus::TooLong { len } => Err(too_long(line, len, self.max)),
            LineStatus::Complete => parse_object(line, &self.buf),
        }))
    }
}

/// Parses one line as a JSON object.
pub(crate) fn parse_object(line: u64, bytes: &[u8]) -> RowResult {
    let text = line_text(line, bytes)?;
    match serde_json::from_str::<Value>(text) {
        Ok(Value::Object(fields)) => Ok(Record { line, fields }),
        Ok(other) => Err(Reject::new(
            line,
            RejectReason::NotAnObject,
            format!("expected a JSON object, found {}", kind(&other)),
        )),
        Err(e) if e.is_eof() => Err(Reject::new(
            line,
            RejectReason::InvalidJson,
            format!("truncated JSON ({e})"),
        )),
        Err(e) => Err(Reject::new(line, RejectReason::InvalidJson, e.to_string())),
    }
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reason(line: &[u8]) -> RejectReason {
        parse_object(1, line).unwrap_err().reason
    }

    #[test]
    fn parses_objects() {
        let rec = parse_object(4, br#"{"item_id": "A", "n": 3}"#).unwrap();
        assert_eq!(rec.line, 4);
        assert_eq!(rec.fields["item_id"], "A");
        assert_eq!(rec.fields["n"], 3);
    }

    #[test]
    fn rejects_each_malformed_kind() {
        assert_eq!(
            reason(br#"{"item_id": "A", "title": "tru"#),
            RejectReason::InvalidJson
        );
        assert!(parse_object(1, br#"{"a": "#)
            .unwrap_err()
            .detail
            .starts_with("truncated"));
        assert_eq!(reason(b"{not json}"), RejectReason::InvalidJson);
        assert_eq!(reason(br#"{"a": 1} trailing"#), RejectReason::InvalidJson);
        assert_eq!(reason(b"[1, 2]"), RejectReason::NotAnObject);
        assert_eq!(reason(b"\"str\""), RejectReason::NotAnObject);
        assert_eq!(reason(b"null"), RejectReason::NotAnObject);
        assert_eq!(reason(b"{\"a\": \"\xff\"}"), RejectReason::InvalidUtf8);
        assert_eq!(reason(b"   "), RejectReason::EmptyLine);
    }

    #[test]
    fn streams_file_with_line_numbers() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("i.jsonl");
        let long = format!("{{\"item_id\": \"L\", \"t\": \"{}\"}}", "x".repeat(300));
        let body = format!("{{\"item_id\": \"A\"}}\n\n{long}\n{{\"item_id\": \"B\"}}\n");
        std::fs::write(&path, body).unwrap();
        let mut rows = JsonlRows::open(
            &path,
            ReadOptions {
                max_line_bytes: 100,
            },
        )
        .unwrap();
        let mut got = Vec::new();
        while let Some(row) = rows.next_row().unwrap() {
            got.push(match row {
                Ok(r) => (r.line, "ok".to_string()),
                Err(r) => (r.line, r.reason.code().to_string()),
            });
        }
        let want = [
            (1, "ok"),
            (2, "empty-line"),
            (3, "line-too-long"),
            (4, "ok"),
        ];
        let want: Vec<_> = want.iter().map(|(l, s)| (*l, s.to_string())).collect();
        assert_eq!(got, want);
        assert!(rows.bytes_read() > 0);
    }
}
