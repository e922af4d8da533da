//! Parquet rows, read batch by batch; column values are looked up by name.

use std::fs::File;
use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};

use arrow_array::cast::AsArray;
use arrow_array::types::{
    Date32Type, Date64Type, Float32Type, Float64Type, Int16Type, Int32Type, Int64Type, Int8Type,
    TimestampMicrosecondType, TimestampMillisecondType, TimestampNanosecondType,
    TimestampSecondType, UInt16Type, UInt32Type, UInt64Type, UInt8Type,
};
use arrow_array::{Array, RecordBatch};
use arrow_schema::{DataType, TimeUnit};
use parquet::arrow::arrow_reader::{ParquetRecordBatchReader, ParquetRecordBatchReaderBuilder};
use parquet::errors::ParquetError;
use serde_json::{Map, Number, Value};

use super::{Record, RowResult};
use crate::DataError;

const BATCH_ROWS: usize = 4096;

pub(crate) struct ParquetRows {
    path: PathBuf,
    reader: ParquetRecordBatchReader,
    columns: Vec<String>,
    batch: Option<RecordBatch>,
    /// Per column, the dictionary keys of the current batch (decoded once
    /// per batch rather than once per row).
    dict_keys: Vec<Option<Vec<usize>>>,
    row: usize,
    line: u64,
}

impl ParquetRows {
    pub(crate) fn open(path: &Path) -> Result<Self, DataError> {
        let file = File::open(path).map_err(|source| DataError::Open {
            path: path.to_path_buf(),
            source,
        })?;
        let (columns, reader) = guard(path, || {
            let builder = ParquetRecordBatchReaderBuilder::try_new(file)?;
            let columns = builder
                .schema()
                .fields()
                .iter()
                .map(|f| f.name().clone())
                .collect();
            Ok((columns, builder.with_batch_size(BATCH_ROWS).build()?))
        })?;
        Ok(Self {
            path: path.to_path_buf(),
            reader,
            columns,
            batch: None,
            dict_keys: Vec::new(),
            row: 0,
            line: 0,
        })
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
    fn corrupt_parquet_is_a_fatal_error_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bad.parquet");
        std::fs::write(&path, b"PAR1 definitely not parquet").unwrap();
        let err = ParquetRows::open(&path).err().unwrap();
        assert!(matches!(err, DataError::Parquet { .. }));
        assert!(err.to_string().contains("bad.parquet"), "{err}");
    }
}
