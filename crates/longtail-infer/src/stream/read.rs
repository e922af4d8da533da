//! The producer side: reading input rows in chunks and tokenizing them.

use std::path::Path;
use std::sync::mpsc::SyncSender;

use longtail_data::{ReadOptions, RecordReader};
use longtail_tokenize::{Encoded, ItemTokenizer};
use rayon::prelude::*;

use super::units::SetPlan;
use crate::error::{InferError, Result};
use crate::rows::{id_text, RowFields};

/// One input row after parsing and tokenization.
pub(super) enum Entry {
    Scored { id: String, enc: Encoded },
    Rejected { line: u64, reason: String },
}

pub(super) struct Chunk {
    pub(super) entries: Vec<Entry>,
    /// Input bytes the producer has read so far (this attempt).
    pub(super) bytes_read: u64,
    /// The file the rows come from, in a many-file input (a chunk never spans files).
    pub(super) file: Option<String>,
    /// Where the next chunk starts, in a many-file input.
    pub(super) next: UnitPosition,
}

/// A place in a shard's units: rows `unit_rows` of unit `unit` onwards.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(super) struct UnitPosition {
    pub(super) unit: u64,
    pub(super) unit_rows: u64,
}

/// Rows in the input as the reader counts them (records + rejects), and the bytes read.
pub(super) fn count_rows(path: &Path, read: ReadOptions) -> Result<(u64, u64)> {
    let mut reader = RecordReader::open(path, read)?;
    while reader.next_row()?.is_some() {}
    Ok((reader.rows_read(), reader.bytes_read()))
}

/// What the producer thread needs besides its input.
pub(super) struct Tokenizing<'a> {
    pub(super) tokenizer: &'a ItemTokenizer,
    pub(super) fields: &'a [String],
    pub(super) id_field: &'a str,
    /// Rows per chunk.
    pub(super) block: u64,
}

/// The opened reader past its first `skip` rows (already scored), or `None` after sending
/// the error to the consumer.
fn skipped(
    opened: Result<RecordReader>,
    skip: u64,
    tx: &SyncSender<Result<Chunk>>,
) -> Option<RecordReader> {
    let result = opened.and_then(|mut r| {
        for _ in 0..skip {
            if r.next_row()?.is_none() {
                break;
            }
        }
        Ok(r)
    });
    match result {
        Ok(r) => Some(r),
        Err(e) => {
            let _ = tx.send(Err(e));
            None
        }
    }
}

/// Sends the chunks of rows `[skip, skip + remaining)` of one file; stops early when the
/// receiver hangs up.
pub(super) fn produce_file(
    path: &Path,
    read: ReadOptions,
    skip: u64,
    remaining: u64,
    t: &Tokenizing<'_>,
    tx: &SyncSender<Result<Chunk>>,
) {
    let opened = RecordReader::open(path, read).map_err(InferError::from);
    let Some(mut reader) = skipped(opened, skip, tx) else {
        return;
    };
    let mut left = remaining;
    while left > 0 {
        let want = left.min(t.block) as usize;
        let chunk = read_chunk(&mut reader, want, t);
        let stop = match &chunk {
            Ok(c) => c.entries.len() < want,
            Err(_) => true,
        };
        if let Ok(c) = &chunk {
            left -= c.entries.len() as u64;
        }
        if tx.send(chunk).is_err() || stop {
            break;
        }
    }
}

/// Sends the chunks of a shard's units from `from` on, each unit's rows in chunks of `block`
/// counted from the unit's start (the unsharded run cuts the same chunks).
pub(super) fn produce_units(
    plan: &SetPlan,
    read: ReadOptions,
    from: UnitPosition,
    t: &Tokenizing<'_>,
    tx: &SyncSender<Result<Chunk>>,
) {
    let mut done_bytes = 0;
    for u in from.unit as usize..plan.units.len() {
        let skip = if u as u64 == from.unit {
            from.unit_rows
        } else {
            0
        };
        let Some(mut reader) = skipped(plan.open(u, read), skip, tx) else {
            return;
        };
        let mut rows = skip;
        loop {
            let want = t.block as usize;
            let chunk = read_chunk(&mut reader, want, t).map(|mut c| {
                rows += c.entries.len() as u64;
                let unit_done = c.entries.len() < want;
                c.bytes_read += done_bytes;
                c.file = Some(plan.file_name(u).to_string());
                c.next = if unit_done {
                    UnitPosition {
                        unit: u as u64 + 1,
                        unit_rows: 0,
                    }
                } else {
                    UnitPosition {
                        unit: u as u64,
                        unit_rows: rows,
                    }
                };
                c
            });
            let unit_done = match &chunk {
                Ok(c) => c.next.unit > u as u64,
                Err(_) => true,
            };
            let failed = chunk.is_err();
            if tx.send(chunk).is_err() || failed {
                return;
            }
            if unit_done {
                break;
            }
        }
        done_bytes += reader.bytes_read();
    }
}

/// Reads up to `want` rows and tokenizes the usable ones on the tokenizer's pool.
fn read_chunk(reader: &mut RecordReader, want: usize, t: &Tokenizing<'_>) -> Result<Chunk> {
    let (tok, fields, id_field) = (t.tokenizer, t.fields, t.id_field);
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
        file: None,
        next: UnitPosition::default(),
    })
}
