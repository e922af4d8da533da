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

use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::mpsc::sync_channel;
use std::sync::Arc;
use std::time::Instant;

use arrow_array::builder::{Float32Builder, ListBuilder, StringBuilder};
use arrow_array::{ArrayRef, RecordBatch};
use arrow_schema::{DataType, Field, Schema};
use longtail_data::{ReadOptions, RecordReader};
use longtail_tokenize::{Encoded, ItemTokenizer};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::error::{InferError, Result};
use crate::rows::{id_text, RowFields};
use crate::scorer::Scorer;

/// Output file format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(
    feature = "clap",
    derive(clap::ValueEnum),
    value(rename_all = "snake_case")
)]
pub enum OutputFormat {
    #[cfg_attr(feature = "clap", value(alias = "json"))]
    Jsonl,
    Csv,
    Parquet,
}

impl OutputFormat {
    pub fn parse(s: &str) -> Result<Self> {
        match s {
            "jsonl" | "json" => Ok(Self::Jsonl),
            "csv" => Ok(Self::Csv),
            "parquet" => Ok(Self::Parquet),
            other => Err(InferError::Invalid(format!(
                "format {other:?}: expected jsonl, csv or parquet"
            ))),
        }
    }

    /// From the output file's extension; JSON Lines when unknown.
    pub fn from_path(path: &Path) -> Self {
        let name = path.to_string_lossy().to_ascii_lowercase();
        if name.ends_with(".csv") {
            Self::Csv
        } else if name.ends_with(".parquet") {
            Self::Parquet
        } else {
            Self::Jsonl
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::Jsonl => "jsonl",
            Self::Csv => "csv",
            Self::Parquet => "parquet",
        }
    }
}

/// Shard `index` of `count` (0-based, as Kubernetes' JOB_COMPLETION_INDEX and Slurm's
/// SLURM_ARRAY_TASK_ID with `--array=0-(N-1)`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    pub index: u64,
    pub count: u64,
}

impl Default for Shard {
    fn default() -> Self {
        Self { index: 0, count: 1 }
    }
}

impl Shard {
    /// Parses `k/N` with `0 <= k < N`.
    pub fn parse(s: &str) -> Result<Self> {
        let bad = || InferError::Invalid(format!("shard {s:?}: expected k/N with 0 <= k < N"));
        let (k, n) = s.split_once('/').ok_or_else(bad)?;
        let index: u64 = k.trim().parse().map_err(|_| bad())?;
        let count: u64 = n.trim().parse().map_err(|_| bad())?;
        if count == 0 || index >= count {
            return Err(bad());
        }
        Ok(Self { index, count })
    }

    /// Rows `[start, end)` of this shard in an input of `total` rows cut into blocks of
    /// `block` rows.
    pub fn row_range(self, total: u64, block: u64) -> (u64, u64) {
        let blocks = total.div_ceil(block);
        let first = self.index * blocks / self.count;
        let last = (self.index + 1) * blocks / self.count;
        ((first * block).min(total), (last * block).min(total))
    }
}

impl std::fmt::Display for Shard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

/// What [`score_file`] does.
#[derive(Debug, Clone)]
pub struct StreamOptions {
    pub input: PathBuf,
    pub output: PathBuf,
    pub format: OutputFormat,
    /// Default: `OUT.rejects.jsonl`.
    pub rejects: Option<PathBuf>,
    pub resume: bool,
    /// Replace an existing output; without it (or `resume`) an existing output is an error,
    /// so one mistaken rerun cannot wipe hours of scoring.
    pub overwrite: bool,
    pub shard: Shard,
    /// Rows per durable chunk (also the length-sorting window and the shard block size).
    pub chunk_rows: usize,
    pub embeddings: bool,
    /// `label` is the tail label when `p_tail >= threshold`.
    pub threshold: f32,
    /// Column holding the item id.
    pub id_field: String,
    pub read: ReadOptions,
}

impl StreamOptions {
    pub fn new(input: impl Into<PathBuf>, output: impl Into<PathBuf>) -> Self {
        let output = output.into();
        Self {
            input: input.into(),
            format: OutputFormat::from_path(&output),
            output,
            rejects: None,
            resume: false,
            overwrite: false,
            shard: Shard::default(),
            chunk_rows: 4096,
            embeddings: false,
            threshold: 0.5,
            id_field: "item_id".into(),
            read: ReadOptions::default(),
        }
    }

    pub fn rejects_path(&self) -> PathBuf {
        self.rejects
            .clone()
            .unwrap_or_else(|| suffixed(&self.output, ".rejects.jsonl"))
    }

    pub fn progress_path(&self) -> PathBuf {
        suffixed(&self.output, ".progress.json")
    }

    /// Where rows are appended: the output itself, or a JSONL spool for parquet (whose footer
    /// cannot be appended to), converted at the end.
    fn data_path(&self) -> PathBuf {
        match self.format {
            OutputFormat::Parquet => suffixed(&self.output, ".spool.jsonl"),
            _ => self.output.clone(),
        }
    }
}

fn suffixed(path: &Path, suffix: &str) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(suffix);
    PathBuf::from(s)
}

/// Reported after every durable chunk.
#[derive(Debug, Clone, Copy)]
pub struct Progress {
    /// Rows of this shard done (scored + rejected), including those of earlier runs.
    pub rows_done: u64,
    /// Rows of this shard, when known (sharded runs count them first).
    pub rows_total: Option<u64>,
    /// Input bytes read so far and the input size (compressed bytes for gzip; 0 for parquet).
    pub bytes_read: u64,
    pub bytes_total: u64,
    pub scored: u64,
    pub rejected: u64,
}

/// The end of a run.
#[derive(Debug, Clone)]
pub struct StreamSummary {
    /// Rows of this shard: `scored + rejected`.
    pub rows: u64,
    pub scored: u64,
    pub rejected: u64,
    /// Rows that an earlier, interrupted run had already done.
    pub resumed_rows: u64,
    pub seconds: f64,
    pub output: PathBuf,
    pub rejects: PathBuf,
}

impl StreamSummary {
    /// Rows per second done by this invocation.
    pub fn rows_per_second(&self) -> f64 {
        (self.rows - self.resumed_rows) as f64 / self.seconds.max(1e-9)
    }
}

/// The sidecar: how far the durable output goes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Sidecar {
    version: u32,
    input: PathBuf,
    input_len: u64,
    shard: String,
    chunk_rows: usize,
    format: String,
    embeddings: bool,
    /// Rows scored in one precision cannot be continued in another (absent: fp32).
    #[serde(default = "fp32")]
    precision: String,
    /// What makes the rows: the checkpoint's weights, the label threshold, the token budget,
    /// the id column, and the input's first bytes (its length alone misses an edited file).
    weights_sha256: String,
    threshold: f32,
    max_len: usize,
    id_field: String,
    input_head_sha256: String,
    rows_consumed: u64,
    scored: u64,
    rejected: u64,
    output_bytes: u64,
    rejects_bytes: u64,
    complete: bool,
}

const SIDECAR_VERSION: u32 = 2;

/// Bytes of the input whose hash a resume checks.
const INPUT_HEAD_BYTES: u64 = 1 << 20;

fn input_head_sha256(path: &Path) -> Result<String> {
    use sha2::{Digest, Sha256};
    use std::io::Read;
    let mut head = Vec::new();
    File::open(path)
        .and_then(|f| f.take(INPUT_HEAD_BYTES).read_to_end(&mut head))
        .map_err(|e| InferError::io(path, e))?;
    Ok(hex::encode(Sha256::digest(&head)))
}

/// Refuses what would destroy data: an output that is the input, or an existing output
/// without `--resume` or `--overwrite`.
fn check_output_is_safe(
    opts: &StreamOptions,
    data_path: &Path,
    progress_path: &Path,
) -> Result<()> {
    let canonical = |p: &Path| -> Option<PathBuf> {
        let dir = p
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        Some(dir.canonicalize().ok()?.join(p.file_name()?))
    };
    let input = opts
        .input
        .canonicalize()
        .map_err(|e| InferError::io(&opts.input, e))?;
    for out in [&opts.output, data_path] {
        if canonical(out).is_some_and(|o| o == input) {
            return Err(InferError::Invalid(format!(
                "--output {} is the input file; scoring would overwrite what it reads",
                out.display()
            )));
        }
    }
    if opts.overwrite {
        return Ok(());
    }
    let exists = |p: &Path| std::fs::metadata(p).is_ok_and(|m| m.len() > 0);
    if !opts.resume && (exists(&opts.output) || exists(data_path) || exists(progress_path)) {
        return Err(InferError::Invalid(format!(
            "{} already exists: pass --resume to continue an interrupted run, or --overwrite to \
             replace it",
            opts.output.display()
        )));
    }
    if opts.resume && !progress_path.exists() && (exists(&opts.output) || exists(data_path)) {
        return Err(InferError::Resume(format!(
            "{} exists but has no progress file {}, so it was not written by an interrupted \
             `score`; pass --overwrite to replace it",
            opts.output.display(),
            progress_path.display()
        )));
    }
    Ok(())
}

fn fp32() -> String {
    longtail_model::Precision::Fp32.as_str().into()
}

impl Sidecar {
    fn load(path: &Path) -> Result<Option<Self>> {
        match std::fs::read(path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map(Some).map_err(|e| {
                InferError::Resume(format!("{}: unreadable progress file: {e}", path.display()))
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(InferError::io(path, e)),
        }
    }

    /// Atomic and durable: a crash leaves the old or the new sidecar, never half.
    fn store(&self, path: &Path) -> Result<()> {
        Ok(longtail_fs::write_json_atomic(path, self)?)
    }
}

/// One input row after parsing and tokenization.
enum Entry {
    Scored { id: String, enc: Encoded },
    Rejected { line: u64, reason: String },
}

struct Chunk {
    entries: Vec<Entry>,
    bytes_read: u64,
}

/// Scores `opts.input` into `opts.output`; see the module docs. `progress` is called after
/// every durable chunk.
pub fn score_file(
    scorer: &Scorer,
    opts: &StreamOptions,
    progress: &mut dyn FnMut(Progress),
) -> Result<StreamSummary> {
    let started = Instant::now();
    if opts.chunk_rows == 0 {
        return Err(InferError::Invalid("chunk_rows must be >= 1".into()));
    }
    let input_len = std::fs::metadata(&opts.input)
        .map_err(|e| InferError::io(&opts.input, e))?
        .len();
    let block = opts.chunk_rows as u64;
    let (start, end, rows_total) = if opts.shard.count > 1 {
        let total = count_rows(&opts.input, opts.read)?;
        let (s, e) = opts.shard.row_range(total, block);
        (s, e, Some(e - s))
    } else {
        (0, u64::MAX, None)
    };

    let data_path = opts.data_path();
    let rejects_path = opts.rejects_path();
    let progress_path = opts.progress_path();
    // One writer per output (a Kubernetes Indexed Job or Slurm requeue may start one index
    // twice), held until this function returns.
    let _lock = longtail_fs::OutputLock::acquire(&opts.output)?;
    check_output_is_safe(opts, &data_path, &progress_path)?;
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
        input_head_sha256: input_head_sha256(&opts.input)?,
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
    if state.complete {
        return Ok(StreamSummary {
            rows: state.rows_consumed,
            scored: state.scored,
            rejected: state.rejected,
            resumed_rows,
            seconds: started.elapsed().as_secs_f64(),
            output: opts.output.clone(),
            rejects: rejects_path,
        });
    }

    let mut data = open_truncated(&data_path, state.output_bytes)?;
    let mut rejects = open_truncated(&rejects_path, state.rejects_bytes)?;
    if state.rows_consumed == 0
        && state.output_bytes == 0
        && opts.format == OutputFormat::Csv
        && start == 0
    {
        let header = if opts.embeddings {
            "item_id,p_tail,label,embedding\n"
        } else {
            "item_id,p_tail,label\n"
        };
        write_durable(&mut data, &data_path, header.as_bytes())?;
        state.output_bytes = header.len() as u64;
    }
    state.store(&progress_path)?;

    let skip = start + state.rows_consumed;
    let remaining = end.saturating_sub(skip);
    let template_fields: Arc<Vec<String>> = Arc::new(
        scorer
            .tokenizer()
            .config()
            .template
            .field_names()
            .map(str::to_string)
            .collect(),
    );

    let (tx, rx) = sync_channel::<Result<Chunk>>(1);
    std::thread::scope(|scope| -> Result<()> {
        // Owned here so an early error return drops it, unblocking the producer's send.
        let rx = rx;
        let fields = template_fields.clone();
        let tokenizer = scorer.tokenizer();
        // The reader is not Send (shared byte counter): it lives on the producer thread.
        let producer = scope.spawn(move || {
            let opened = RecordReader::open(&opts.input, opts.read)
                .map_err(InferError::from)
                .and_then(|mut r| {
                    for _ in 0..skip {
                        if r.next_row()?.is_none() {
                            break;
                        }
                    }
                    Ok(r)
                });
            let mut reader = match opened {
                Ok(r) => r,
                Err(e) => {
                    let _ = tx.send(Err(e));
                    return;
                }
            };
            let mut left = remaining;
            while left > 0 {
                let want = left.min(block) as usize;
                let chunk = read_chunk(&mut reader, want, tokenizer, &fields, &opts.id_field);
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
                        serde_json::to_writer(
                            &mut rej,
                            &serde_json::json!({"line": l, "reason": reason}),
                        )
                        .expect("reject serializes");
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
            state.store(&progress_path)?;
            progress(Progress {
                rows_done: state.rows_consumed,
                rows_total,
                bytes_read: chunk.bytes_read,
                bytes_total: input_len,
                scored: state.scored,
                rejected: state.rejected,
            });
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
    state.store(&progress_path)?;
    if opts.format == OutputFormat::Parquet {
        std::fs::remove_file(&data_path).map_err(|e| InferError::io(&data_path, e))?;
    }
    Ok(StreamSummary {
        rows: state.rows_consumed,
        scored: state.scored,
        rejected: state.rejected,
        resumed_rows,
        seconds: started.elapsed().as_secs_f64(),
        output: opts.output.clone(),
        rejects: rejects_path,
    })
}

fn check_same_run(prev: &Sidecar, now: &Sidecar) -> Result<()> {
    // What makes the rows, each as the interrupted run and this one state it.
    let settings = |s: &Sidecar| {
        [
            ("progress format", s.version.to_string()),
            ("an input of bytes", s.input_len.to_string()),
            (
                "an input whose first MiB has sha256",
                s.input_head_sha256.clone(),
            ),
            ("shard", s.shard.clone()),
            ("chunk_rows", s.chunk_rows.to_string()),
            ("precision", s.precision.clone()),
            ("a checkpoint with weights sha256", s.weights_sha256.clone()),
            ("--threshold", s.threshold.to_string()),
            ("--max-len", s.max_len.to_string()),
            ("--id-field", s.id_field.clone()),
            (
                "output",
                format!("{} embeddings={}", s.format, s.embeddings),
            ),
        ]
    };
    for ((what, a), (_, b)) in settings(prev).into_iter().zip(settings(now)) {
        if a != b {
            return Err(InferError::Resume(format!(
                "the interrupted run had {what} {a}, this one {b}; rerun without --resume"
            )));
        }
    }
    Ok(())
}

/// Opens `path` for appending after cutting it to `len` bytes (0: a new, empty file).
fn open_truncated(path: &Path, len: u64) -> Result<File> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| InferError::io(dir, e))?;
    }
    let mut f = OpenOptions::new()
        .create(true)
        .truncate(false)
        .read(true)
        .write(true)
        .open(path)
        .map_err(|e| InferError::io(path, e))?;
    let have = f.metadata().map_err(|e| InferError::io(path, e))?.len();
    if have < len {
        return Err(InferError::Resume(format!(
            "{} has {have} bytes but the progress file recorded {len}",
            path.display()
        )));
    }
    f.set_len(len).map_err(|e| InferError::io(path, e))?;
    f.seek(SeekFrom::Start(len))
        .map_err(|e| InferError::io(path, e))?;
    Ok(f)
}

fn write_durable(f: &mut File, path: &Path, bytes: &[u8]) -> Result<()> {
    if bytes.is_empty() {
        return Ok(());
    }
    f.write_all(bytes).map_err(|e| InferError::io(path, e))?;
    f.sync_data().map_err(|e| InferError::io(path, e))
}

/// Rows in the input as the reader counts them (records + rejects).
fn count_rows(path: &Path, read: ReadOptions) -> Result<u64> {
    let mut reader = RecordReader::open(path, read)?;
    while reader.next_row()?.is_some() {}
    Ok(reader.rows_read())
}

/// Reads up to `want` rows and tokenizes the usable ones on the tokenizer's pool.
fn read_chunk(
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

fn format_row(
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
fn spool_to_parquet(spool: &Path, output: &Path, embeddings: bool) -> Result<()> {
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
