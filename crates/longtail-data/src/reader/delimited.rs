//! CSV rows with a header line (RFC 4180 quoting; a quoted field may span
//! lines, in which case the row is numbered by its first line).

use std::io::BufRead;
use std::path::{Path, PathBuf};

use serde_json::{Map, Value};

use super::lines::{line_text, too_long, BoundedLines, LineStatus};
use super::source::{open_text, ByteCounter};
use super::{ReadOptions, Record, Reject, RejectReason, RowResult};
use crate::DataError;

pub(crate) struct CsvRows {
    path: PathBuf,
    lines: BoundedLines<Box<dyn BufRead>>,
    buf: Vec<u8>,
    fields: Vec<String>,
    counter: ByteCounter,
    max: usize,
    columns: Vec<String>,
}

impl CsvRows {
    pub(crate) fn open(path: &Path, opts: ReadOptions) -> Result<Self, DataError> {
        let (reader, counter) = open_text(path)?;
        let mut rows = Self {
            path: path.to_path_buf(),
            lines: BoundedLines::new(reader, opts.max_line_bytes),
            buf: Vec::new(),
            fields: Vec::new(),
            counter,
            max: opts.max_line_bytes,
            columns: Vec::new(),
        };
        let bad_header = |reason: String| DataError::BadHeader {
            path: path.to_path_buf(),
            reason,
        };
        // the header is line 1, so data rows start at line 2
        match rows.next_record()? {
            None => return Err(bad_header("the file is empty".into())),
            Some(Err(rej)) => return Err(bad_header(rej.to_string())),
            Some(Ok(_)) => {}
        }
        rows.columns = rows.fields.iter().map(|f| f.trim().to_string()).collect();
        Ok(rows)
    }

    pub(crate) fn columns(&self) -> &[String] {
        &self.columns
    }

    pub(crate) fn bytes_read(&self) -> u64 {
        self.counter.get()
    }

    pub(crate) fn next_row(&mut self) -> Result<Option<RowResult>, DataError> {
        let line = match self.next_record()? {
            None => return Ok(None),
            Some(Err(rej)) => return Ok(Some(Err(rej))),
            Some(Ok(line)) => line,
        };
        if self.fields.len() != self.columns.len() {
            return Ok(Some(Err(Reject::new(
                line,
                RejectReason::WrongColumnCount,
                format!(
                    "expected {} fields, found {}",
                    self.columns.len(),
                    self.fields.len()
                ),
            ))));
        }
        let fields: Map<String, Value> = self
            .columns
            .iter()
            .cloned()
            .zip(self.fields.drain(..).map(Value::String))
            .collect();
        Ok(Some(Ok(Record { line, fields })))
    }

    /// Reads one CSV record into `self.fields`, returning its first line
    /// number.
    fn next_record(&mut self) -> Result<Option<Result<u64, Reject>>, DataError> {
        let Some((line, status)) = self.read_line()? else {
            return Ok(None);
        };
        if let LineStatus::TooLong { len } = status {
            return Ok(Some(Err(too_long(line, len, self.max))));
        }
        let text = match line_text(line, &self.buf) {
            Ok(t) => t,
            Err(rej) => return Ok(Some(Err(rej))),
        };
        self.fields.clear();
        if !text.contains('"') {
            self.fields.extend(text.split(',').map(str::to_string));
            return Ok(Some(Ok(line)));
        }
        let mut splitter = FieldSplitter::default();
        splitter.feed(text, &mut self.fields);
        // a quoted field continues on the next physical line; the splitter keeps its state, so
        // a record of many lines costs time linear in its length
        let mut total = text.len() as u64;
        while splitter.finish(&mut self.fields) == Split::OpenQuote {
            let Some((_, status)) = self.read_line()? else {
                let rej = Reject::new(line, RejectReason::InvalidCsv, "unterminated quoted field");
                return Ok(Some(Err(rej)));
            };
            let more_len = match status {
                LineStatus::TooLong { len } => len,
                LineStatus::Complete => self.buf.len() as u64,
            };
            total += 1 + more_len;
            if total > self.max as u64 {
                return Ok(Some(Err(too_long(line, total, self.max))));
            }
            match std::str::from_utf8(&self.buf) {
                Ok(more) => {
                    splitter.feed("\n", &mut self.fields);
                    splitter.feed(more, &mut self.fields);
                }
                Err(e) => {
                    let detail = format!("invalid UTF-8 in a continuation line ({e})");
                    return Ok(Some(Err(Reject::new(
                        line,
                        RejectReason::InvalidUtf8,
                        detail,
                    ))));
                }
            }
        }
        Ok(Some(Ok(line)))
    }

    fn read_line(&mut self) -> Result<Option<(u64, LineStatus)>, DataError> {
        self.lines
            .next_line(&mut self.buf)
            .map_err(DataError::read(&self.path))
    }
}

#[derive(Debug, PartialEq, Eq)]
enum Split {
    Complete,
    /// The text ends inside a quoted field.
    OpenQuote,
}

#[derive(Debug, PartialEq, Eq, Clone, Copy, Default)]
enum State {
    #[default]
    FieldStart,
    Bare,
    Quoted,
    QuoteInQuoted,
}

/// Splits one record on commas, fed one physical line at a time. Quotes open a quoted field
/// only at the start of a field (so a stray `"` inside a bare value is kept literally, like most
/// CSV readers do); `""` inside quotes is an escaped quote.
#[derive(Default)]
struct FieldSplitter {
    state: State,
    field: String,
}

impl FieldSplitter {
    fn feed(&mut self, text: &str, out: &mut Vec<String>) {
        for c in text.chars() {
            self.state = match (self.state, c) {
                (State::FieldStart | State::Bare | State::QuoteInQuoted, ',') => {
                    out.push(std::mem::take(&mut self.field));
                    State::FieldStart
                }
                (State::FieldStart, '"') => State::Quoted,
                (State::Quoted, '"') => State::QuoteInQuoted,
                (State::QuoteInQuoted, '"') => {
                    self.field.push('"');
                    State::Quoted
                }
                (State::Quoted, c) => {
                    self.field.push(c);
                    State::Quoted
                }
                // text after a closing quote is kept, leniently
                (_, c) => {
                    self.field.push(c);
                    State::Bare
                }
            };
        }
    }

    /// Ends the record unless the text fed so far ends inside a quoted field (then more lines
    /// may be fed).
    fn finish(&mut self, out: &mut Vec<String>) -> Split {
        if self.state == State::Quoted {
            return Split::OpenQuote;
        }
        out.push(std::mem::take(&mut self.field));
        self.state = State::FieldStart;
        Split::Complete
    }
}

#[cfg(test)]
fn split_fields(text: &str, out: &mut Vec<String>) -> Split {
    out.clear();
    let mut splitter = FieldSplitter::default();
    splitter.feed(text, out);
    splitter.finish(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(s: &str) -> (Split, Vec<String>) {
        let mut v = Vec::new();
        let r = split_fields(s, &mut v);
        (r, v)
    }

    #[test]
    fn splits_plain_and_quoted_fields() {
        assert_eq!(split("a,b,,c").1, ["a", "b", "", "c"]);
        assert_eq!(
            split(r#""a,1","say ""hi""",x"#).1,
            ["a,1", r#"say "hi""#, "x"]
        );
        assert_eq!(split(r#"ab"c,d"#).1, [r#"ab"c"#, "d"]);
        assert_eq!(split(r#""q"tail,z"#).1, ["qtail", "z"]);
        assert_eq!(split("").1, [""]);
        assert_eq!(split(r#"a,"open"#).0, Split::OpenQuote);
    }

    fn read_all(body: &[u8], max: usize) -> (Vec<String>, Vec<(u64, String)>) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.csv");
        std::fs::write(&path, body).unwrap();
        let mut rows = CsvRows::open(
            &path,
            ReadOptions {
                max_line_bytes: max,
            },
        )
        .unwrap();
        let mut out = Vec::new();
        while let Some(row) = rows.next_row().unwrap() {
            out.push(match row {
                Ok(r) => (
                    r.line,
                    format!(
                        "{}|{}",
                        r.fields["u"].as_str().unwrap(),
                        r.fields["t"].as_str().unwrap()
                    ),
                ),
                Err(r) => (r.line, r.reason.code().to_string()),
            });
        }
        (rows.columns().to_vec(), out)
    }

    #[test]
    fn numbers_rows_from_two_and_rejects_bad_rows() {
        let mut body = b"\xEF\xBB\xBFu, i ,t\r\nU1,A,10\r\nU2,B\n\nU3,C,\xff\n".to_vec();
        body.extend(format!("U4,D,{}\n", "9".repeat(200)).as_bytes());
        body.extend(b"\"U5\nstill U5\",E,20\nU6,F,30,extra\nU7,G,40");
        let (cols, rows) = read_all(&body, 100);
        assert_eq!(cols, ["u", "i", "t"]);
        let want: Vec<(u64, String)> = [
            (2, "U1|10"),
            (3, "wrong-column-count"),
            (4, "empty-line"),
            (5, "invalid-utf8"),
            (6, "line-too-long"),
            (7, "U5\nstill U5|20"),
            (9, "wrong-column-count"),
            (10, "U7|40"),
        ]
        .iter()
        .map(|(l, s)| (*l, s.to_string()))
        .collect();
        assert_eq!(rows, want);
    }

    #[test]
    fn unterminated_quote_is_rejected_at_its_first_line() {
        let (_, rows) = read_all(b"u,i,t\nU1,A,1\n\"U2,B,2\nU3,C,3\n", 100);
        assert_eq!(
            rows,
            vec![(2, "U1|1".to_string()), (3, "invalid-csv".to_string())]
        );
    }

    #[test]
    fn empty_or_broken_header_is_fatal() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.csv");
        std::fs::write(&path, b"").unwrap();
        let err = CsvRows::open(&path, ReadOptions::default()).err().unwrap();
        assert!(matches!(err, DataError::BadHeader { .. }), "{err}");
        std::fs::write(&path, b"a,\xff\n1,2\n").unwrap();
        let err = CsvRows::open(&path, ReadOptions::default()).err().unwrap();
        assert!(err.to_string().contains("x.csv"), "{err}");
    }
}
