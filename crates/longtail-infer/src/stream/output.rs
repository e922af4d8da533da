//! Output writers: formatting JSONL / CSV rows and converting the JSONL spool to Parquet.

use std::fs::File;
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::sync::Arc;

use arrow_array::builder::{Float32Builder, ListBuilder, StringBuilder};
use arrow_array::{ArrayRef, RecordBatch};
use arrow_schema::{DataType, Field, Schema};
use serde::{Deserialize, Serialize};

use super::OutputFormat;
use crate::error::{InferError, Result};

#[derive(Serialize)]
struct JsonRow<'a> {
    item_id: &'a str,
    p_tail: f32,
    label: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    embedding: Option<&'a [f32]>,
}

#[derive(Deserialize)]
struct SpoolRow {
    item_id: String,
    p_tail: f32,
    label: String,
    #[serde(default)]
    embedding: Option<Vec<f32>>,
}

pub(super) fn format_row(
    out: &mut Vec<u8>,
    format: OutputFormat,
    id: &str,
    p: f32,
    label: &str,
    emb: Option<&[f32]>,
) {
    match format {
        OutputFormat::Jsonl | OutputFormat::Parquet => {
            let row = JsonRow {
                item_id: id,
                p_tail: p,
                label,
                embedding: emb,
            };
            serde_json::to_writer(&mut *out, &row).expect("row serializes");
            out.push(b'\n');
        }
        OutputFormat::Csv => {
            csv_field(out, id);
            // `{}` of an f32 is its shortest round-tripping decimal.
            write!(out, ",{p},").expect("write to Vec");
            csv_field(out, label);
            if let Some(e) = emb {
                out.push(b',');
                let joined: Vec<String> = e.iter().map(|x| x.to_string()).collect();
                out.extend_from_slice(joined.join(" ").as_bytes());
            }
            out.push(b'\n');
        }
    }
}

/// RFC 4180 quoting when needed.
fn csv_field(out: &mut Vec<u8>, s: &str) {
    if s.contains([',', '"', '\n', '\r']) {
        out.push(b'"');
        out.extend_from_slice(s.replace('"', "\"\"").as_bytes());
        out.push(b'"');
    } else {
        out.extend_from_slice(s.as_bytes());
    }
}

/// Converts the JSONL spool into `output` (atomically), a row group at a time so memory stays
/// bounded.
pub(super) fn spool_to_parquet(spool: &Path, output: &Path, embeddings: bool) -> Result<()> {
    let perr = |e: &dyn std::fmt::Display| InferError::Parquet {
        path: output.to_path_buf(),
        message: e.to_string(),
    };
    let mut fields = vec![
        Field::new("item_id", DataType::Utf8, false),
        Field::new("p_tail", DataType::Float32, false),
        Field::new("label", DataType::Utf8, false),
    ];
    if embeddings {
        fields.push(Field::new(
            "embedding",
            DataType::List(Arc::new(Field::new("item", DataType::Float32, true))),
            true,
        ));
    }
    let schema = Arc::new(Schema::new(fields));
    longtail_fs::write_atomic_with(output, |tmp| {
        let file = File::create(tmp).map_err(|e| InferError::io(tmp, e))?;
        write_parquet_groups(file, schema, spool, embeddings, &perr)
    })
}

/// Writes the spool's rows into `file` as Parquet, `ROWS_PER_GROUP` rows per row group.
fn write_parquet_groups(
    file: File,
    schema: Arc<Schema>,
    spool: &Path,
    embeddings: bool,
    perr: &dyn Fn(&dyn std::fmt::Display) -> InferError,
) -> Result<()> {
    const ROWS_PER_GROUP: usize = 65_536;
    let mut writer =
        parquet::arrow::ArrowWriter::try_new(file, schema.clone(), None).map_err(|e| perr(&e))?;
    let reader = BufReader::new(File::open(spool).map_err(|e| InferError::io(spool, e))?);
    let mut lines = reader.lines();
    loop {
        let mut ids = StringBuilder::new();
        let mut ps = Float32Builder::new();
        let mut labels = StringBuilder::new();
        let mut embs = ListBuilder::new(Float32Builder::new());
        let mut n = 0;
        for line in lines.by_ref() {
            let line = line.map_err(|e| InferError::io(spool, e))?;
            let row: SpoolRow = serde_json::from_str(&line).map_err(|e| perr(&e))?;
            ids.append_value(&row.item_id);
            ps.append_value(row.p_tail);
            labels.append_value(&row.label);
            if embeddings {
                embs.append_value(row.embedding.unwrap_or_default().into_iter().map(Some));
            }
            n += 1;
            if n == ROWS_PER_GROUP {
                break;
            }
        }
        if n == 0 {
            break;
        }
        let mut cols: Vec<ArrayRef> = vec![
            Arc::new(ids.finish()),
            Arc::new(ps.finish()),
            Arc::new(labels.finish()),
        ];
        if embeddings {
            cols.push(Arc::new(embs.finish()));
        }
        let batch = RecordBatch::try_new(schema.clone(), cols).map_err(|e| perr(&e))?;
        writer.write(&batch).map_err(|e| perr(&e))?;
        writer.flush().map_err(|e| perr(&e))?;
        if n < ROWS_PER_GROUP {
            break;
        }
    }
    writer.into_inner().map_err(|e| perr(&e))?;
    Ok(())
}
