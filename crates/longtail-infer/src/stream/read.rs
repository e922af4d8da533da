//! The producer side: reading input rows in chunks and tokenizing them.

use std::path::Path;

use longtail_data::{ReadOptions, RecordReader};
use longtail_tokenize::{Encoded, ItemTokenizer};
use rayon::prelude::*;

use crate::error::Result;
use crate::rows::{id_text, RowFields};

/// One input row after parsing and tokenization.
pub(super) enum Entry {
    Scored { id: String, enc: Encoded },
    Rejected { line: u64, reason: String },
}

pub(super) struct Chunk {
    pub(super) entries: Vec<Entry>,
    pub(super) bytes_read: u64,
}

/// Rows in the input as the reader counts them (records + rejects).
pub(super) fn count_rows(path: &Path, read: ReadOptions) -> Result<u64> {
    let mut reader = RecordReader::open(path, read)?;
    while reader.next_row()?.is_some() {}
    Ok(reader.rows_read())
}

/// Reads up to `want` rows and tokenizes the usable ones on the tokenizer's pool.
pub(super) fn read_chunk(
    reader: &mut RecordReader,
    want: usize,
    tok: &ItemTokenizer,
    fields: &[String],
    id_field: &str,
) -> Result<Chunk> {
    enum Raw {
        Row {
            id: String,
            line: u64,
            fields: RowFields,
        },
        Rejected {
            line: u64,
            reason: String,
        },
    }
    let mut raw = Vec::with_capacity(want);
    while raw.len() < want {
        let Some(row) = reader.next_row()? else { break };
        raw.push(match row {
            Ok(rec) => match id_text(rec.fields.get(id_field)) {
                Some(id) => Raw::Row {
                    id,
                    line: rec.line,
                    fields: RowFields::from_row(&rec.fields, fields.iter().map(String::as_str)),
                },
                None => Raw::Rejected {
                    line: rec.line,
                    reason: format!("missing-id: `{id_field}` is missing or empty"),
                },
            },
            Err(rej) => Raw::Rejected {
                line: rej.line,
                reason: rej.to_string(),
            },
        });
    }
    let entries = tok.install(|| {
        raw.into_par_iter()
            .map(|r| match r {
                Raw::Row { id, line, fields } => match tok.encode_item(&fields) {
                    Ok(enc) => Entry::Scored { id, enc },
                    Err(e) => Entry::Rejected {
                        line,
                        reason: format!("tokenize: {e}"),
                    },
                },
                Raw::Rejected { line, reason } => Entry::Rejected { line, reason },
            })
            .collect()
    });
    Ok(Chunk {
        entries,
        bytes_read: reader.bytes_read(),
    })
}
