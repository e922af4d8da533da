//! Parquet rows, read batch by batch; column values are looked up by name.

use std::fs::File;
use std::io::{BufReader, Read, Seek, SeekFrom};
use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::types::{
    Date32Type, Date64Type, Float32Type, Float64Type, Int16Type, Int32Type, Int64Type, Int8Type,
    TimestampMicrosecondType, TimestampMillisecondType, TimestampNanosecondType,
    TimestampSecondType, UInt16Type, UInt32Type, UInt64Type, UInt8Type,
};
use arrow_array::{Array, RecordBatch};
use arrow_schema::{DataType, TimeUnit};
use parquet::arrow::arrow_reader::{
    ArrowReaderMetadata, ArrowReaderOptions, ParquetRecordBatchReader,
    ParquetRecordBatchReaderBuilder,
};
use parquet::errors::ParquetError;
use parquet::file::reader::{ChunkReader, Length};
use serde_json::{Map, Number, Value};

use super::{Record, RowResult};
use crate::DataError;

const BATCH_ROWS: usize = 4096;

/// The parquet file as the decoder sees it, counting the bytes it consumes: a shard's reads
/// are measured, not assumed (`score` reports them).
#[derive(Clone)]
struct CountingFile {
    file: Arc<File>,
    len: u64,
    consumed: Arc<AtomicU64>,
}

impl CountingFile {
    /// The same file with its own count.
    fn recount(&self) -> Self {
        Self {
            consumed: Arc::new(AtomicU64::new(0)),
            ..self.clone()
        }
    }
}

impl Length for CountingFile {
    fn len(&self) -> u64 {
        self.len
    }
}

struct CountingRead<R> {
    inner: R,
    consumed: Arc<AtomicU64>,
}

impl<R: Read> Read for CountingRead<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.consumed.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }
}

impl ChunkReader for CountingFile {
    type T = CountingRead<BufReader<File>>;

    fn get_read(&self, start: u64) -> parquet::errors::Result<Self::T> {
        let mut file = self.file.try_clone()?;
        file.seek(SeekFrom::Start(start))?;
        Ok(CountingRead {
            inner: BufReader::new(file),
            consumed: self.consumed.clone(),
        })
    }

    fn get_bytes(&self, start: u64, length: usize) -> parquet::errors::Result<bytes::Bytes> {
        let bytes = self.file.as_ref().get_bytes(start, length)?;
        self.consumed
            .fetch_add(bytes.len() as u64, Ordering::Relaxed);
        Ok(bytes)
    }
}

/// Where one row group's column chunks lie in its file, and its rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RowGroupSpan {
    /// Byte offset of its first column chunk.
    pub start: u64,
    /// Bytes from `start` to the end of its last column chunk.
    pub len: u64,
    pub rows: u64,
    /// Line number (1-based, counted over the file) of its first row.
    pub first_line: u64,
}

/// A parquet file's footer, read once: its row groups, from which readers of single row groups
/// are opened without reading the footer again.
pub struct ParquetLayout {
    path: PathBuf,
    file: CountingFile,
    metadata: ArrowReaderMetadata,
    footer_bytes: u64,
    row_groups: Vec<RowGroupSpan>,
}

impl ParquetLayout {
    pub fn open(path: &Path) -> Result<Self, DataError> {
        let open_error = |source| DataError::Open {
            path: path.to_path_buf(),
            source,
        };
        let file = File::open(path).map_err(open_error)?;
        let len = file.metadata().map_err(open_error)?.len();
        let file = CountingFile {
            file: Arc::new(file),
            len,
            consumed: Arc::new(AtomicU64::new(0)),
        };
        let metadata = guard(path, || {
            ArrowReaderMetadata::load(&file, ArrowReaderOptions::new())
        })?;
        let mut first_line = 1;
        let row_groups = metadata
            .metadata()
            .row_groups()
            .iter()
            .map(|rg| {
                let (start, end) = rg
                    .columns()
                    .iter()
                    .map(|c| {
                        let (s, l) = c.byte_range();
                        (s, s + l)
                    })
                    .fold((u64::MAX, 0), |(a, b), (s, e)| (a.min(s), b.max(e)));
                let rows = rg.num_rows().max(0) as u64;
                let span = RowGroupSpan {
                    start: start.min(end),
                    len: end.saturating_sub(start),
                    rows,
                    first_line,
                };
                first_line += rows;
                span
            })
            .collect();
        Ok(Self {
            path: path.to_path_buf(),
            footer_bytes: file.consumed.load(Ordering::Relaxed),
            file,
            metadata,
            row_groups,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn row_groups(&self) -> &[RowGroupSpan] {
        &self.row_groups
    }

    /// Bytes read to learn the layout (the footer).
    pub fn footer_bytes(&self) -> u64 {
        self.footer_bytes
    }
}

pub(crate) struct ParquetRows {
    path: PathBuf,
    reader: ParquetRecordBatchReader,
    columns: Vec<String>,
    /// Bytes of the file this reader's decoder consumed.
    consumed: Arc<AtomicU64>,
    batch: Option<RecordBatch>,
    /// Per column, the dictionary keys of the current batch (decoded once
    /// per batch rather than once per row).
    dict_keys: Vec<Option<Vec<usize>>>,
    row: usize,
    line: u64,
}

impl ParquetRows {
    /// Every row of the file; the footer is counted in its bytes read.
    pub(crate) fn open(path: &Path) -> Result<Self, DataError> {
        let layout = ParquetLayout::open(path)?;
        let groups = (0..layout.row_groups.len()).collect();
        Self::build(&layout, layout.file.clone(), groups, 0)
    }

    /// The rows of one row group, numbered as in the whole file; its bytes read are the group's.
    pub(crate) fn row_group(layout: &ParquetLayout, group: usize) -> Result<Self, DataError> {
        let span = layout
            .row_groups
            .get(group)
            .ok_or_else(|| DataError::Parquet {
                path: layout.path.clone(),
                source: ParquetError::General(format!(
                    "no row group {group} (the file has {})",
                    layout.row_groups.len()
                )),
            })?;
        Self::build(
            layout,
            layout.file.recount(),
            vec![group],
            span.first_line - 1,
        )
    }

    fn build(
        layout: &ParquetLayout,
        file: CountingFile,
        groups: Vec<usize>,
        line: u64,
    ) -> Result<Self, DataError> {
        let consumed = file.consumed.clone();
        let path = &layout.path;
        let (columns, reader) = guard(path, || {
            let builder =
                ParquetRecordBatchReaderBuilder::new_with_metadata(file, layout.metadata.clone())
                    .with_row_groups(groups);
            let columns = builder
                .schema()
                .fields()
                .iter()
                .map(|f| f.name().clone())
                .collect();
            Ok((columns, builder.with_batch_size(BATCH_ROWS).build()?))
        })?;
        Ok(Self {
            path: path.clone(),
            reader,
            columns,
            consumed,
            batch: None,
            dict_keys: Vec::new(),
            row: 0,
            line,
        })
    }

    pub(crate) fn bytes_read(&self) -> u64 {
        self.consumed.load(Ordering::Relaxed)
    }

    pub(crate) fn columns(&self) -> &[String] {
        &self.columns
    }

    pub(crate) fn next_row(&mut self) -> Result<Option<RowResult>, DataError> {
        loop {
            if let Some(batch) = &self.batch {
                if self.row < batch.num_rows() {
                    break;
                }
            }
            let reader = &mut self.reader;
            match guard(&self.path, || Ok(reader.next().transpose()?))? {
                None => return Ok(None),
                Some(batch) => {
                    self.dict_keys = batch
                        .columns()
                        .iter()
                        .map(|c| {
                            c.as_any_dictionary_opt()
                                .filter(|d| !d.values().is_empty())
                                .map(|d| d.normalized_keys())
                        })
                        .collect();
                    self.batch = Some(batch);
                    self.row = 0;
                }
            }
        }
        let batch = self.batch.as_ref().expect("batch present after loop");
        let row = self.row;
        let mut fields = Map::new();
        for (i, name) in self.columns.iter().enumerate() {
            let col = batch.column(i).as_ref();
            let value = match (&self.dict_keys[i], col.as_any_dictionary_opt()) {
                (Some(keys), Some(dict)) if !col.is_null(row) => {
                    value_at(dict.values().as_ref(), keys[row])
                }
                _ => value_at(col, row),
            };
            fields.insert(name.clone(), value);
        }
        self.row += 1;
        self.line += 1;
        Ok(Some(Ok(Record {
            line: self.line,
            fields,
        })))
    }
}

/// Runs `read` and turns its error, or a panic of the parquet crate (it panics on some damaged
/// files, e.g. a footer with negative column offsets), into a fatal error naming the file.
fn guard<T>(path: &Path, read: impl FnOnce() -> Result<T, ParquetError>) -> Result<T, DataError> {
    let error = |source| DataError::Parquet {
        path: path.to_path_buf(),
        source,
    };
    match std::panic::catch_unwind(AssertUnwindSafe(read)) {
        Ok(result) => result.map_err(error),
        Err(panic) => {
            let message = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_default();
            Err(error(ParquetError::General(format!(
                "damaged file (the parquet reader panicked: {message})"
            ))))
        }
    }
}

/// Converts one arrow cell to JSON. Timestamps and dates become unix seconds;
/// unsupported types become null (and so count as missing).
fn value_at(array: &dyn Array, i: usize) -> Value {
    if array.is_null(i) {
        return Value::Null;
    }
    match array.data_type() {
        DataType::Utf8 => array.as_string::<i32>().value(i).into(),
        DataType::LargeUtf8 => array.as_string::<i64>().value(i).into(),
        DataType::Utf8View => array.as_string_view().value(i).into(),
        DataType::Boolean => array.as_boolean().value(i).into(),
        DataType::Int8 => array.as_primitive::<Int8Type>().value(i).into(),
        DataType::Int16 => array.as_primitive::<Int16Type>().value(i).into(),
        DataType::Int32 => array.as_primitive::<Int32Type>().value(i).into(),
        DataType::Int64 => array.as_primitive::<Int64Type>().value(i).into(),
        DataType::UInt8 => array.as_primitive::<UInt8Type>().value(i).into(),
        DataType::UInt16 => array.as_primitive::<UInt16Type>().value(i).into(),
        DataType::UInt32 => array.as_primitive::<UInt32Type>().value(i).into(),
        DataType::UInt64 => array.as_primitive::<UInt64Type>().value(i).into(),
        DataType::Float32 => float(array.as_primitive::<Float32Type>().value(i) as f64),
        DataType::Float64 => float(array.as_primitive::<Float64Type>().value(i)),
        DataType::Timestamp(unit, _) => {
            let (raw, per_second) = match unit {
                TimeUnit::Second => (array.as_primitive::<TimestampSecondType>().value(i), 1),
                TimeUnit::Millisecond => (
                    array.as_primitive::<TimestampMillisecondType>().value(i),
                    1_000,
                ),
                TimeUnit::Microsecond => (
                    array.as_primitive::<TimestampMicrosecondType>().value(i),
                    1_000_000,
                ),
                TimeUnit::Nanosecond => (
                    array.as_primitive::<TimestampNanosecondType>().value(i),
                    1_000_000_000,
                ),
            };
            raw.div_euclid(per_second).into()
        }
        DataType::Date32 => (array.as_primitive::<Date32Type>().value(i) as i64 * 86_400).into(),
        DataType::Date64 => array
            .as_primitive::<Date64Type>()
            .value(i)
            .div_euclid(1000)
            .into(),
        DataType::List(_) => list(array.as_list::<i32>().value(i).as_ref()),
        DataType::LargeList(_) => list(array.as_list::<i64>().value(i).as_ref()),
        _ => Value::Null,
    }
}

fn float(x: f64) -> Value {
    Number::from_f64(x).map_or(Value::Null, Value::Number)
}

fn list(values: &dyn Array) -> Value {
    Value::Array((0..values.len()).map(|j| value_at(values, j)).collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    use arrow_array::builder::{ListBuilder, StringBuilder};
    use arrow_array::{
        ArrayRef, DictionaryArray, Int32Array, Int64Array, StringArray, TimestampMillisecondArray,
    };
    use parquet::arrow::ArrowWriter;

    fn write_parquet(path: &Path, batch: RecordBatch) {
        let file = File::create(path).unwrap();
        let mut w = ArrowWriter::try_new(file, batch.schema(), None).unwrap();
        w.write(&batch).unwrap();
        w.close().unwrap();
    }

    #[test]
    fn reads_string_integer_and_nested_columns_by_name() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("items.parquet");
        let ids: ArrayRef = Arc::new(StringArray::from(vec![Some("A"), None, Some("C")]));
        let year: ArrayRef = Arc::new(Int64Array::from(vec![1995, 2001, -3]));
        let n: ArrayRef = Arc::new(Int32Array::from(vec![Some(1), Some(2), None]));
        let ts: ArrayRef = Arc::new(TimestampMillisecondArray::from(vec![1_500, 2_000, -1]));
        let brand: ArrayRef = Arc::new(
            vec![Some("acme"), Some("acme"), None]
                .into_iter()
                .collect::<DictionaryArray<Int32Type>>(),
        );
        let mut cats = ListBuilder::new(StringBuilder::new());
        cats.values().append_value("Office");
        cats.values().append_value("Paper");
        cats.append(true);
        cats.append(true);
        cats.append(false);
        let cats: ArrayRef = Arc::new(cats.finish());
        let batch = RecordBatch::try_from_iter(vec![
            ("item_id", ids),
            ("year", year),
            ("n", n),
            ("ts", ts),
            ("brand", brand),
            ("categories", cats),
        ])
        .unwrap();
        write_parquet(&path, batch);

        let mut rows = ParquetRows::open(&path).unwrap();
        assert_eq!(
            rows.columns(),
            ["item_id", "year", "n", "ts", "brand", "categories"]
        );
        let mut got = Vec::new();
        while let Some(row) = rows.next_row().unwrap() {
            got.push(row.unwrap());
        }
        assert_eq!(got.len(), 3);
        assert_eq!(got.iter().map(|r| r.line).collect::<Vec<_>>(), [1, 2, 3]);
        let r0 = &got[0].fields;
        assert_eq!(r0["item_id"], "A");
        assert_eq!(r0["year"], 1995);
        assert_eq!(r0["n"], 1);
        assert_eq!(r0["ts"], 1);
        assert_eq!(r0["brand"], "acme");
        assert_eq!(r0["categories"], serde_json::json!(["Office", "Paper"]));
        assert_eq!(got[1].fields["item_id"], Value::Null);
        assert_eq!(got[1].fields["categories"], serde_json::json!([]));
        assert_eq!(got[2].fields["n"], Value::Null);
        assert_eq!(got[2].fields["ts"], -1);
        assert_eq!(got[2].fields["brand"], Value::Null);
        assert_eq!(got[2].fields["categories"], Value::Null);
    }

    #[test]
    fn row_groups_are_read_alone_numbered_as_in_the_file_and_their_bytes_counted() {
        use parquet::file::properties::WriterProperties;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("groups.parquet");
        let ids: ArrayRef = Arc::new(StringArray::from(
            (0..7).map(|i| format!("item-{i}")).collect::<Vec<_>>(),
        ));
        let batch = RecordBatch::try_from_iter(vec![("item_id", ids)]).unwrap();
        let props = WriterProperties::builder()
            .set_max_row_group_row_count(Some(3))
            .build();
        let file = File::create(&path).unwrap();
        let mut w = ArrowWriter::try_new(file, batch.schema(), Some(props)).unwrap();
        w.write(&batch).unwrap();
        w.close().unwrap();
        let file_len = std::fs::metadata(&path).unwrap().len();

        let layout = ParquetLayout::open(&path).unwrap();
        let groups = layout.row_groups();
        assert_eq!(groups.iter().map(|g| g.rows).collect::<Vec<_>>(), [3, 3, 1]);
        assert_eq!(
            groups.iter().map(|g| g.first_line).collect::<Vec<_>>(),
            [1, 4, 7]
        );
        assert!(groups
            .windows(2)
            .all(|w| w[0].start + w[0].len <= w[1].start));
        let mut lines = Vec::new();
        let mut data_bytes = 0;
        for (g, span) in groups.iter().enumerate() {
            let mut rows = ParquetRows::row_group(&layout, g).unwrap();
            while let Some(row) = rows.next_row().unwrap() {
                let row = row.unwrap();
                assert_eq!(row.fields["item_id"], format!("item-{}", row.line - 1));
                lines.push(row.line);
            }
            // Each group's decoder read its own column chunks, nothing else.
            assert_eq!(rows.bytes_read(), span.len, "group {g}");
            data_bytes += rows.bytes_read();
        }
        assert_eq!(lines, (1..=7).collect::<Vec<_>>());
        assert!(layout.footer_bytes() > 0);
        assert!(data_bytes + layout.footer_bytes() <= file_len);

        // The whole-file reader counts the footer and every group.
        let mut whole = ParquetRows::open(&path).unwrap();
        while whole.next_row().unwrap().is_some() {}
        assert_eq!(whole.bytes_read(), data_bytes + layout.footer_bytes());
    }

    #[test]
    fn corrupt_parquet_is_a_fatal_error_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bad.parquet");
        std::fs::write(&path, b"PAR1 definitely not parquet").unwrap();
        let err = ParquetRows::open(&path).err().unwrap();
        assert!(matches!(err, DataError::Parquet { .. }));
        assert!(err.to_string().contains("bad.parquet"), "{err}");
    }
}
