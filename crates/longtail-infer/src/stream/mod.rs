//! [`score_file`]: stream a catalogue dump through a [`Scorer`].
//!
//! Rows are read in chunks of `chunk_rows` input rows. A producer thread parses and tokenizes
//! chunk `i + 1` (tokenization on the tokenizer's rayon pool) while the caller's thread runs
//! the forward passes of chunk `i`; a bounded channel keeps at most two chunks in flight, so
//! memory does not grow with the input. Inside a chunk, rows are length-sorted into batches
//! under the token budget; results are written back in input order.
//!
//! Durability: after each chunk the output and rejects files are flushed and fsynced, then a
//! small sidecar `OUT.progress.json` is replaced atomically with the rows consumed and both
//! files' byte lengths. `--resume` truncates both files to those lengths and skips the
//! consumed rows. Chunks always start at multiples of `chunk_rows` from the shard start, so a
//! resumed run forms the same batches and writes the same bytes as an uninterrupted one.
//!
//! Sharding: the input's rows are cut into blocks of `chunk_rows`; shard `k` of `N` takes the
//! contiguous blocks `[k*B/N, (k+1)*B/N)`. Block boundaries are chunk boundaries, so every row
//! is scored in the same batch as in an unsharded run and the shard outputs, concatenated in
//! shard order, are byte-identical to the unsharded output (only shard 0 writes a CSV header).
//! [`merge_parts`] (`score --merge DIR`) checks the parts of one run against their sidecars and
//! writes that concatenation.

mod merge;
mod options;
mod output;
mod read;
mod resume;
mod shard;
mod units;

use std::path::{Path, PathBuf};
use std::sync::mpsc::sync_channel;
use std::time::Instant;

use longtail_data::InputSet;
use longtail_progress::{Event, ReadInfo};
use longtail_tokenize::Encoded;

use crate::error::{InferError, Result};
use crate::scorer::Scorer;
use output::{format_row, spool_to_parquet};
use read::{count_rows, produce_file, produce_units, Chunk, Entry, Tokenizing, UnitPosition};
use resume::{
    check_output_is_safe, check_same_run, file_sha256, input_head_sha256, open_truncated,
    write_durable, Sidecar, SIDECAR_VERSION,
};
use units::SetPlan;

pub use merge::{merge_parts, MergeSummary, MergedPart, SUCCESS_FILE};
pub use options::{OutputFormat, StreamOptions, StreamSummary};
pub use shard::Shard;

/// What a run reads: one file (a sharded run counts its rows first), or its share of the
/// units of a many-file input.
enum Source {
    File {
        len: u64,
        /// Rows `[start, end)` of the file are this shard's.
        start: u64,
        end: u64,
        /// Known when sharded (from the counting pass).
        rows_total: Option<u64>,
        /// Bytes the counting pass read.
        counted_bytes: u64,
    },
    Set(SetPlan),
}

impl Source {
    fn open(opts: &StreamOptions) -> Result<Self> {
        if let Some(set) = InputSet::resolve(&opts.input)? {
            return Ok(Self::Set(SetPlan::new(set, opts.shard)?));
        }
        let len = std::fs::metadata(&opts.input)
            .map_err(|e| InferError::io(&opts.input, e))?
            .len();
        if opts.shard.count == 1 {
            return Ok(Self::File {
                len,
                start: 0,
                end: u64::MAX,
                rows_total: None,
                counted_bytes: 0,
            });
        }
        let (total, counted_bytes) = count_rows(&opts.input, opts.read)?;
        let (start, end) = opts.shard.row_range(total, opts.chunk_rows as u64);
        Ok(Self::File {
            len,
            start,
            end,
            rows_total: Some(end - start),
            counted_bytes,
        })
    }

    /// Bytes of the whole input.
    fn input_len(&self) -> u64 {
        match self {
            Self::File { len, .. } => *len,
            Self::Set(plan) => plan.set.total_bytes(),
        }
    }

    /// What a resume and a merge compare: the file's first MiB, or the set's file listing.
    fn identity_sha256(&self, input: &Path) -> Result<String> {
        match self {
            Self::File { .. } => input_head_sha256(input),
            Self::Set(plan) => Ok(plan.listing_sha256()),
        }
    }

    /// Bytes the counting pass read.
    fn counted_bytes(&self) -> u64 {
        match self {
            Self::File { counted_bytes, .. } => *counted_bytes,
            Self::Set(_) => 0,
        }
    }

    /// Parquet footer bytes read to plan the shard.
    fn footer_bytes(&self) -> u64 {
        match self {
            Self::File { .. } => 0,
            Self::Set(plan) => plan.footer_bytes,
        }
    }

    /// Whether this run starts the output (writes the CSV header).
    fn starts_output(&self, shard: Shard) -> bool {
        match self {
            Self::File { start, .. } => *start == 0,
            Self::Set(_) => shard.index == 0,
        }
    }

    /// The input files an output must not overwrite, and a directory it must not be in.
    fn guarded_paths(&self, input: &Path) -> (Vec<PathBuf>, Option<PathBuf>) {
        match self {
            Self::File { .. } => (vec![input.to_path_buf()], None),
            Self::Set(plan) => (
                plan.paths().map(Path::to_path_buf).collect(),
                plan.set.root().map(Path::to_path_buf),
            ),
        }
    }
}

/// Scores `opts.input` into `opts.output`; see the module docs. `progress` is called after
/// every durable chunk.
pub fn score_file(
    scorer: &Scorer,
    opts: &StreamOptions,
    progress: &mut dyn FnMut(Event<'_>),
) -> Result<StreamSummary> {
    let started = Instant::now();
    if opts.chunk_rows == 0 {
        return Err(InferError::Invalid("chunk_rows must be >= 1".into()));
    }
    let source = Source::open(opts)?;
    let input_len = source.input_len();

    let data_path = opts.data_path();
    let rejects_path = opts.rejects_path();
    let progress_path = opts.progress_path();
    // One writer per output (a Kubernetes Indexed Job or Slurm requeue may start one index
    // twice), held until this function returns.
    let _lock = longtail_fs::OutputLock::acquire(&opts.output)?;
    let (inputs, input_root) = source.guarded_paths(&opts.input);
    check_output_is_safe(
        opts,
        &inputs,
        input_root.as_deref(),
        &data_path,
        &progress_path,
    )?;
    let fresh = Sidecar {
        version: SIDECAR_VERSION,
        input: opts.input.clone(),
        input_len,
        weights_sha256: longtail_fs::files_sha256(
            scorer.checkpoint(),
            &[
                longtail_model::checkpoint::CONFIG_FILE,
                longtail_model::checkpoint::WEIGHTS_FILE,
            ],
        )?,
        threshold: opts.threshold,
        max_len: scorer.max_len(),
        id_field: opts.id_field.clone(),
        input_head_sha256: source.identity_sha256(&opts.input)?,
        shard: opts.shard.to_string(),
        chunk_rows: opts.chunk_rows,
        format: opts.format.name().into(),
        embeddings: opts.embeddings,
        precision: scorer.precision().as_str().into(),
        rows_consumed: 0,
        scored: 0,
        rejected: 0,
        output_bytes: 0,
        rejects_bytes: 0,
        complete: false,
        rejects: opts.rejects.clone(),
        output_sha256: None,
        rejects_sha256: None,
        bytes_read: 0,
        footer_bytes: 0,
        unit: 0,
        unit_rows: 0,
    };
    let previous = if opts.resume {
        Sidecar::load(&progress_path)?
    } else {
        None
    };
    let mut state = match previous {
        Some(prev) => {
            check_same_run(&prev, &fresh)?;
            prev
        }
        None => fresh,
    };
    let resumed_rows = state.rows_consumed;
    let summary = |state: &Sidecar| StreamSummary {
        rows: state.rows_consumed,
        scored: state.scored,
        rejected: state.rejected,
        resumed_rows,
        seconds: started.elapsed().as_secs_f64(),
        output: opts.output.clone(),
        rejects: rejects_path.clone(),
        bytes_read: state.bytes_read,
        footer_bytes: state.footer_bytes,
        input_bytes: input_len,
    };
    if state.complete {
        return Ok(summary(&state));
    }

    let mut data = open_truncated(&data_path, state.output_bytes)?;
    let mut rejects = open_truncated(&rejects_path, state.rejects_bytes)?;
    if state.rows_consumed == 0
        && state.output_bytes == 0
        && opts.format == OutputFormat::Csv
        && source.starts_output(opts.shard)
    {
        let header = if opts.embeddings {
            "item_id,p_tail,label,embedding\n"
        } else {
            "item_id,p_tail,label\n"
        };
        write_durable(&mut data, &data_path, header.as_bytes())?;
        state.output_bytes = header.len() as u64;
    }
    // Bytes read by earlier attempts, plus this one's counting pass.
    let bytes_base = state.bytes_read + source.counted_bytes();
    state.bytes_read = bytes_base;
    state.footer_bytes += source.footer_bytes();
    state.store(&progress_path)?;

    let template_fields = scorer.tokenizer().template_fields();
    let tokenizing = Tokenizing {
        tokenizer: scorer.tokenizer(),
        fields: &template_fields,
        id_field: &opts.id_field,
        block: opts.chunk_rows as u64,
    };
    let (rows_total, bytes_total) = match &source {
        Source::File { rows_total, .. } => (*rows_total, input_len),
        Source::Set(plan) => (plan.rows(), plan.bytes()),
    };

    let (tx, rx) = sync_channel::<Result<Chunk>>(1);
    std::thread::scope(|scope| -> Result<()> {
        // Owned here so an early error return drops it, unblocking the producer's send.
        let rx = rx;
        let (source, tokenizing) = (&source, &tokenizing);
        let from = UnitPosition {
            unit: state.unit,
            unit_rows: state.unit_rows,
        };
        let rows_done = state.rows_consumed;
        // The readers are not Send (shared byte counters): they live on the producer thread.
        let producer = scope.spawn(move || match source {
            Source::File { start, end, .. } => {
                let skip = start + rows_done;
                let remaining = end.saturating_sub(skip);
                produce_file(&opts.input, opts.read, skip, remaining, tokenizing, &tx)
            }
            Source::Set(plan) => produce_units(plan, opts.read, from, tokenizing, &tx),
        });
        let mut line = Vec::with_capacity(256);
        for chunk in rx.iter() {
            let chunk = chunk?;
            let encoded: Vec<Encoded> = chunk
                .entries
                .iter()
                .filter_map(|e| match e {
                    Entry::Scored { enc, .. } => Some(enc.clone()),
                    Entry::Rejected { .. } => None,
                })
                .collect();
            let scores = scorer.score_encoded(&encoded, opts.embeddings)?;
            let mut out = Vec::with_capacity(encoded.len() * 64);
            let mut rej = Vec::new();
            let mut k = 0usize;
            for e in &chunk.entries {
                match e {
                    Entry::Scored { id, .. } => {
                        let p = scores.p_tail[k];
                        let emb = scores.embeddings.as_ref().map(|v| v[k].as_slice());
                        line.clear();
                        format_row(
                            &mut line,
                            opts.format,
                            id,
                            p,
                            scorer.label(p, opts.threshold),
                            emb,
                        );
                        out.extend_from_slice(&line);
                        k += 1;
                        state.scored += 1;
                    }
                    Entry::Rejected { line: l, reason } => {
                        let record = match &chunk.file {
                            Some(f) => serde_json::json!({"file": f, "line": l, "reason": reason}),
                            None => serde_json::json!({"line": l, "reason": reason}),
                        };
                        serde_json::to_writer(&mut rej, &record).expect("reject serializes");
                        rej.push(b'\n');
                        state.rejected += 1;
                    }
                }
            }
            write_durable(&mut data, &data_path, &out)?;
            write_durable(&mut rejects, &rejects_path, &rej)?;
            state.rows_consumed += chunk.entries.len() as u64;
            state.output_bytes += out.len() as u64;
            state.rejects_bytes += rej.len() as u64;
            state.bytes_read = bytes_base + chunk.bytes_read;
            state.unit = chunk.next.unit;
            state.unit_rows = chunk.next.unit_rows;
            state.store(&progress_path)?;
            progress(Event::Read(&ReadInfo {
                file: &opts.input,
                rows: state.rows_consumed,
                rows_total,
                bytes: chunk.bytes_read,
                bytes_total: Some(bytes_total),
                rejected: state.rejected,
            }));
        }
        producer
            .join()
            .map_err(|_| InferError::Invalid("the reader thread panicked".into()))?;
        Ok(())
    })?;

    if opts.format == OutputFormat::Parquet {
        drop(data);
        spool_to_parquet(&data_path, &opts.output, opts.embeddings)?;
    }
    state.complete = true;
    state.output_sha256 = Some(file_sha256(&opts.output)?);
    state.rejects_sha256 = Some(file_sha256(&rejects_path)?);
    state.store(&progress_path)?;
    if opts.format == OutputFormat::Parquet {
        std::fs::remove_file(&data_path).map_err(|e| InferError::io(&data_path, e))?;
    }
    Ok(summary(&state))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shards_cover_every_block_once_in_order() {
        for total in [0u64, 1, 7, 100, 1001] {
            for n in 1..6u64 {
                let mut next = 0;
                for k in 0..n {
                    let (s, e) = Shard { index: k, count: n }.row_range(total, 10);
                    assert_eq!(s, next, "total {total} n {n} k {k}");
                    assert!(s % 10 == 0 || s == total);
                    next = e;
                }
                assert_eq!(next, total);
            }
        }
    }

    #[test]
    fn shard_parse_rejects_out_of_range() {
        assert_eq!(Shard::parse("2/4").unwrap(), Shard { index: 2, count: 4 });
        assert!(Shard::parse("4/4").is_err());
        assert!(Shard::parse("0/0").is_err());
        assert!(Shard::parse("1").is_err());
    }

    #[test]
    fn csv_rows_quote_ids_and_round_trip_floats() {
        let mut out = Vec::new();
        format_row(&mut out, OutputFormat::Csv, "a,\"b\"", 0.1f32, "tail", None);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "\"a,\"\"b\"\"\",0.1,tail\n"
        );
        let mut out = Vec::new();
        let p = 0.123_456_79f32;
        format_row(&mut out, OutputFormat::Jsonl, "x", p, "head", None);
        let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v["p_tail"].as_f64().unwrap() as f32, p);
    }
}
