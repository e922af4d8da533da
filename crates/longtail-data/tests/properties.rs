//! Property tests of the input readers, the text cleaner and `prepare`: arbitrary bytes never
//! panic (a bad file is an error, a bad row a reject), and every row written comes back once,
//! either kept (unchanged) or rejected, at its own line. Case counts are small so the suite
//! stays fast; `PROPTEST_CASES=1000 cargo test --release -p longtail-data --test properties`
//! runs a longer search.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use arrow_array::{ArrayRef, Int64Array, RecordBatch, StringArray};
use longtail_data::{
    clean_text, prepare, PrepareOptions, ReadOptions, RecordReader, RejectReason, RowResult,
};
use proptest::prelude::*;
use serde_json::{Map, Value};

const MAX_LINE: usize = 1024;

fn config(cases: u32) -> ProptestConfig {
    ProptestConfig {
        cases: std::env::var("PROPTEST_CASES")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(cases),
        // a failure is reported, not stored as a regression file in the source tree
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

/// Every row of `path`, or the fatal error that stopped the reader.
fn read_all(path: &Path, max_line_bytes: usize) -> Result<Vec<RowResult>, String> {
    let opts = ReadOptions { max_line_bytes };
    let reader = RecordReader::open(path, opts).map_err(|e| e.to_string())?;
    reader.map(|row| row.map_err(|e| e.to_string())).collect()
}

fn write(dir: &Path, name: &str, bytes: &[u8]) -> std::path::PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, bytes).unwrap();
    path
}

/// Physical lines as the readers count them: split at `\n`, an empty remainder after the last
/// newline is not a line.
fn physical_lines(bytes: &[u8]) -> usize {
    let n = bytes.iter().filter(|&&b| b == b'\n').count();
    n + usize::from(!bytes.is_empty() && bytes.last() != Some(&b'\n'))
}

/// Short text that exercises escaping: quotes, commas, braces, tabs, newlines, non-ASCII. No
/// `\r`: the readers strip a line's trailing `\r` (CRLF files), also inside a quoted CSV field.
fn text() -> impl Strategy<Value = String> {
    let alphabet = prop_oneof![
        4 => proptest::char::range('a', 'z'),
        1 => Just(' '),
        1 => Just('"'),
        1 => Just(','),
        1 => Just('\n'),
        1 => Just('\t'),
        1 => Just('{'),
        1 => Just('é'),
        1 => Just('得'),
        1 => Just('\u{2028}'),
        1 => Just('\u{0}'),
    ];
    proptest::collection::vec(alphabet, 0..12).prop_map(|cs| cs.into_iter().collect())
}

/// One JSON Lines row: kept (an object) or one of the ways a row is rejected.
#[derive(Debug, Clone)]
enum JsonRow {
    Object(BTreeMap<String, String>),
    NotAnObject(String),
    Truncated(String),
    BadUtf8,
    Blank,
    TooLong,
}

fn json_row() -> impl Strategy<Value = JsonRow> {
    prop_oneof![
        4 => proptest::collection::btree_map(text(), text(), 0..4).prop_map(JsonRow::Object),
        1 => text().prop_map(JsonRow::NotAnObject),
        1 => text().prop_map(JsonRow::Truncated),
        1 => Just(JsonRow::BadUtf8),
        1 => Just(JsonRow::Blank),
        1 => Just(JsonRow::TooLong),
    ]
}

fn json_line(row: &JsonRow) -> Vec<u8> {
    match row {
        JsonRow::Object(map) => serde_json::to_vec(map).unwrap(),
        JsonRow::NotAnObject(s) => serde_json::to_vec(&vec![s]).unwrap(),
        JsonRow::Truncated(s) => format!("{{\"title\": {}", Value::from(s.as_str())).into_bytes(),
        JsonRow::BadUtf8 => b"{\"title\": \"\xff\xfe\"}".to_vec(),
        JsonRow::Blank => b"  ".to_vec(),
        JsonRow::TooLong => format!("{{\"title\": \"{}\"}}", "x".repeat(MAX_LINE)).into_bytes(),
    }
}

fn expected_reason(row: &JsonRow) -> Option<RejectReason> {
    match row {
        JsonRow::Object(_) => None,
        JsonRow::NotAnObject(_) => Some(RejectReason::NotAnObject),
        JsonRow::Truncated(_) => Some(RejectReason::InvalidJson),
        JsonRow::BadUtf8 => Some(RejectReason::InvalidUtf8),
        JsonRow::Blank => Some(RejectReason::EmptyLine),
        JsonRow::TooLong => Some(RejectReason::LineTooLong),
    }
}

/// `rows[i]` was written at line `i + first_line`: each comes back once, kept rows unchanged,
/// rejected rows with the expected reason.
fn assert_rows_accounted<T>(
    got: &[RowResult],
    rows: &[T],
    lines: &[u64],
    expect: impl Fn(&T, &Map<String, Value>) -> Result<(), TestCaseError>,
    reason: impl Fn(&T) -> Option<RejectReason>,
) -> Result<(), TestCaseError> {
    prop_assert_eq!(got.len(), rows.len(), "rows in != kept + rejected");
    let (mut kept, mut rejected) = (0, 0);
    for ((result, row), &line) in got.iter().zip(rows).zip(lines) {
        match (result, reason(row)) {
            (Ok(rec), None) => {
                prop_assert_eq!(rec.line, line);
                expect(row, &rec.fields)?;
                kept += 1;
            }
            (Err(rej), Some(want)) => {
                prop_assert_eq!(rej.line, line);
                prop_assert_eq!(rej.reason, want, "{}", rej.detail);
                rejected += 1;
            }
            (other, want) => prop_assert!(false, "line {line}: got {other:?}, expected {want:?}"),
        }
    }
    prop_assert_eq!(kept + rejected, rows.len());
    Ok(())
}

proptest! {
    #![proptest_config(config(64))]

    #[test]
    fn jsonl_and_csv_readers_never_panic_on_arbitrary_bytes(
        bytes in proptest::collection::vec(any::<u8>(), 0..600),
        gzip_magic in any::<bool>(),
        max_line in prop_oneof![Just(16usize), Just(MAX_LINE)],
    ) {
        let dir = tempfile::tempdir().unwrap();
        let mut bytes = bytes;
        if gzip_magic {
            // a (mostly broken) gzip stream: the decoder's errors must surface as errors
            bytes.splice(0..0, [0x1f, 0x8b]);
        }
        for name in ["a.jsonl", "a.csv"] {
            let path = write(dir.path(), name, &bytes);
            if let Ok(rows) = read_all(&path, max_line) {
                let lines = physical_lines(&bytes);
                // CSV: the header is not a row; a quoted field may join lines
                prop_assert!(rows.len() <= lines, "{name}: {} rows from {lines} lines", rows.len());
                if name.ends_with(".jsonl") && !gzip_magic {
                    prop_assert_eq!(rows.len(), lines);
                }
            }
        }
    }

    #[test]
    fn jsonl_rows_in_equal_rows_kept_plus_rows_rejected(
        rows in proptest::collection::vec(json_row(), 0..40),
        crlf in any::<bool>(),
        final_newline in any::<bool>(),
    ) {
        let mut bytes = Vec::new();
        for (i, row) in rows.iter().enumerate() {
            bytes.extend(json_line(row));
            if i + 1 < rows.len() || final_newline {
                bytes.extend_from_slice(if crlf { b"\r\n" } else { b"\n" });
            }
        }
        let dir = tempfile::tempdir().unwrap();
        let got = read_all(&write(dir.path(), "items.jsonl", &bytes), MAX_LINE).unwrap();
        let lines: Vec<u64> = (1..=rows.len() as u64).collect();
        assert_rows_accounted(&got, &rows, &lines, |row, fields| {
            let JsonRow::Object(map) = row else { unreachable!() };
            let want: Map<String, Value> =
                map.iter().map(|(k, v)| (k.clone(), Value::from(v.as_str()))).collect();
            prop_assert_eq!(fields, &want);
            Ok(())
        }, expected_reason)?;
    }

    #[test]
    fn csv_rows_in_equal_rows_kept_plus_rows_rejected(
        rows in proptest::collection::vec(csv_row(), 0..40),
    ) {
        // The writer quotes what needs quoting; a quoted field may span physical lines, and
        // the row is numbered by its first line.
        let mut bytes = b"user_id,item_id,timestamp\n".to_vec();
        let mut lines = Vec::new();
        let mut line = 2u64;
        for row in &rows {
            lines.push(line);
            let record = csv_line(row);
            line += 1 + record.iter().filter(|&&b| b == b'\n').count() as u64;
            bytes.extend(record);
            bytes.push(b'\n');
        }
        let dir = tempfile::tempdir().unwrap();
        let got = read_all(&write(dir.path(), "interactions.csv", &bytes), MAX_LINE).unwrap();
        assert_rows_accounted(&got, &rows, &lines, |row, fields| {
            let CsvRow::Record(values) = row else { unreachable!() };
            let got: Vec<&str> = ["user_id", "item_id", "timestamp"]
                .iter()
                .map(|c| fields[*c].as_str().unwrap())
                .collect();
            prop_assert_eq!(got, values.iter().map(String::as_str).collect::<Vec<_>>());
            Ok(())
        }, |row| match row {
            // a blank first line is rejected as blank, whatever the header
            _ if String::from_utf8_lossy(&csv_line(row)).lines().next().unwrap_or("").trim().is_empty() => {
                Some(RejectReason::EmptyLine)
            }
            CsvRow::Record(_) => None,
            CsvRow::WrongCount(_) | CsvRow::Blank => Some(RejectReason::WrongColumnCount),
            CsvRow::BadUtf8 => Some(RejectReason::InvalidUtf8),
            CsvRow::TooLong => Some(RejectReason::LineTooLong),
        })?;
    }
}

#[derive(Debug, Clone)]
enum CsvRow {
    Record(Vec<String>),
    WrongCount(Vec<String>),
    BadUtf8,
    Blank,
    TooLong,
}

fn csv_row() -> impl Strategy<Value = CsvRow> {
    prop_oneof![
        4 => proptest::collection::vec(text(), 3).prop_map(CsvRow::Record),
        1 => prop_oneof![
                proptest::collection::vec(text(), 1..3),
                proptest::collection::vec(text(), 4..6)
            ]
            .prop_map(CsvRow::WrongCount),
        1 => Just(CsvRow::BadUtf8),
        1 => Just(CsvRow::Blank),
        1 => Just(CsvRow::TooLong),
    ]
}

fn csv_line(row: &CsvRow) -> Vec<u8> {
    let fields = match row {
        CsvRow::Record(v) | CsvRow::WrongCount(v) => v,
        CsvRow::BadUtf8 => return b"u1,\xff\xfe,1400000000".to_vec(),
        CsvRow::Blank => return Vec::new(),
        CsvRow::TooLong => return format!("u1,{},1400000000", "x".repeat(MAX_LINE)).into_bytes(),
    };
    let mut w = csv::WriterBuilder::new()
        .terminator(csv::Terminator::Any(b'\n'))
        .from_writer(Vec::new());
    w.write_record(fields).unwrap();
    let mut bytes = w.into_inner().unwrap();
    assert_eq!(bytes.pop(), Some(b'\n'));
    bytes
}

fn parquet_bytes(ids: &[Option<String>], counts: &[Option<i64>]) -> Vec<u8> {
    let batch = RecordBatch::try_from_iter([
        (
            "item_id",
            Arc::new(StringArray::from(ids.to_vec())) as ArrayRef,
        ),
        ("n", Arc::new(Int64Array::from(counts.to_vec())) as ArrayRef),
    ])
    .unwrap();
    let mut out = Vec::new();
    let mut w = parquet::arrow::ArrowWriter::try_new(&mut out, batch.schema(), None).unwrap();
    w.write(&batch).unwrap();
    w.close().unwrap();
    out
}

proptest! {
    #![proptest_config(config(48))]

    #[test]
    fn parquet_rows_in_equal_rows_out(
        rows in proptest::collection::vec(
            (proptest::option::of(text()), proptest::option::of(any::<i64>())), 0..50),
    ) {
        let (ids, counts): (Vec<_>, Vec<_>) = rows.iter().cloned().unzip();
        let dir = tempfile::tempdir().unwrap();
        let path = write(dir.path(), "items.parquet", &parquet_bytes(&ids, &counts));
        let got = read_all(&path, MAX_LINE).unwrap();
        prop_assert_eq!(got.len(), rows.len());
        for (i, (row, (id, n))) in got.iter().zip(&rows).enumerate() {
            let rec = row.as_ref().expect("parquet rows are never rejected by the reader");
            prop_assert_eq!(rec.line, i as u64 + 1);
            prop_assert_eq!(&rec.fields["item_id"], &id.as_deref().map_or(Value::Null, Value::from));
            prop_assert_eq!(&rec.fields["n"], &n.map_or(Value::Null, Value::from));
        }
    }

    #[test]
    fn parquet_reader_never_panics_on_damaged_files(
        rows in 1usize..30,
        damage in proptest::collection::vec((any::<proptest::sample::Index>(), any::<u8>()), 1..6),
        truncate in proptest::option::of(any::<proptest::sample::Index>()),
        garbage in proptest::collection::vec(any::<u8>(), 0..300),
    ) {
        let ids: Vec<Option<String>> = (0..rows).map(|i| Some(format!("item{i}"))).collect();
        let counts: Vec<Option<i64>> = (0..rows as i64).map(Some).collect();
        let mut bytes = parquet_bytes(&ids, &counts);
        for (at, byte) in &damage {
            let i = at.index(bytes.len());
            bytes[i] = *byte;
        }
        if let Some(at) = truncate {
            bytes.truncate(at.index(bytes.len()));
        }
        let dir = tempfile::tempdir().unwrap();
        // Either rows or an error, never a panic; a file read to its end has at most its rows.
        if let Ok(got) = read_all(&write(dir.path(), "damaged.parquet", &bytes), MAX_LINE) {
            prop_assert!(got.len() <= rows, "{} rows from a {rows}-row file", got.len());
        }
        let _ = read_all(&write(dir.path(), "garbage.parquet", &garbage), MAX_LINE);
    }
}

proptest! {
    #![proptest_config(config(256))]

    #[test]
    fn clean_text_never_panics_and_leaves_clean_text(raw in any::<String>()) {
        let out = clean_text(&raw);
        prop_assert_eq!(out.trim(), out.as_str());
        prop_assert!(!out.contains("  "), "{out:?}");
        prop_assert!(!out.chars().any(|c| c.is_control()), "{out:?}");
    }

    #[test]
    fn clean_text_never_panics_on_markup_like_text(
        parts in proptest::collection::vec(prop_oneof![
            Just("<".to_string()), Just(">".to_string()), Just("</".to_string()),
            Just("<!--".to_string()), Just("-->".to_string()), Just("&amp;".to_string()),
            Just("&#".to_string()), Just("&#x".to_string()), Just(";".to_string()),
            Just("br".to_string()), Just("p class=\"x\"".to_string()), text(),
        ], 0..16),
    ) {
        let raw: String = parts.concat();
        let out = clean_text(&raw);
        prop_assert_eq!(out.trim(), out.as_str());
        prop_assert!(!out.contains("  "), "{out:?}");
    }
}

/// One catalogue row for `prepare`: the kinds of rows a real file has.
fn item_line(kind: u8, id: usize) -> Vec<u8> {
    match kind % 6 {
        0 | 1 => format!("{{\"item_id\": \"I{id}\", \"title\": \"t{id} &amp; <b>x</b>\"}}"),
        2 => format!("{{\"item_id\": \"I{}\", \"title\": \"duplicate\"}}", id / 2),
        3 => "{\"title\": \"no id\"}".to_string(),
        4 => "{\"item_id\": \"I".to_string(),
        _ => String::new(),
    }
    .into_bytes()
}

fn interaction_line(kind: u8, i: usize, n_items: usize) -> Vec<u8> {
    match kind % 5 {
        0..=2 => format!("u{},I{},{}", i % 7, i % n_items.max(1), 1_400_000_000 + i),
        3 => format!("u{i},unknown{i},1400000000"),
        _ => format!("u{i},I0,not-a-time"),
    }
    .into_bytes()
}

proptest! {
    #![proptest_config(config(12))]

    /// `prepare` accounts for every input row: per file, rows read = lines in the file =
    /// kept + rejected, and rejects.jsonl has one line per rejected row.
    #[test]
    fn prepare_rows_in_equal_rows_kept_plus_rows_rejected(
        items in proptest::collection::vec(any::<u8>(), 1..40),
        interactions in proptest::collection::vec(any::<u8>(), 1..80),
    ) {
        let dir = tempfile::tempdir().unwrap();
        let mut item_bytes = Vec::new();
        for (i, kind) in items.iter().enumerate() {
            item_bytes.extend(item_line(*kind, i));
            item_bytes.push(b'\n');
        }
        let mut inter_bytes = b"user_id,item_id,timestamp\n".to_vec();
        for (i, kind) in interactions.iter().enumerate() {
            inter_bytes.extend(interaction_line(*kind, i, items.len()));
            inter_bytes.push(b'\n');
        }
        let items_path = write(dir.path(), "items.jsonl", &item_bytes);
        let inter_path = write(dir.path(), "interactions.csv", &inter_bytes);
        let out = dir.path().join("out");
        let Ok(summary) = prepare(&PrepareOptions::new(&items_path, &inter_path, &out), &longtail_progress::ignore)
        else {
            // e.g. no usable rows: an error, not a panic
            return Ok(());
        };
        let expected_rows = [items.len() as u64, interactions.len() as u64];
        let mut rejected = 0;
        for (file, want) in summary.files.iter().zip(expected_rows) {
            prop_assert_eq!(file.read, want, "{}", file.role);
            prop_assert_eq!(file.read, file.kept + file.rejected, "{}", file.role);
            prop_assert_eq!(file.rejects_by_reason.values().sum::<u64>(), file.rejected);
            rejected += file.rejected;
        }
        let reject_lines = std::fs::read_to_string(out.join("rejects.jsonl")).unwrap().lines().count();
        prop_assert_eq!(reject_lines as u64, rejected);
        let item_lines = std::fs::read_to_string(out.join("items.jsonl")).unwrap().lines().count();
        prop_assert_eq!(item_lines as u64, summary.files[0].kept);
        prop_assert_eq!(summary.n_items, summary.files[0].kept);
    }
}
