//! Resume and durability: the progress sidecar, the checks that an output may be written or
//! continued, and truncating/appending output files durably.

use std::fs::{File, OpenOptions};
use std::io::{Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::StreamOptions;
use crate::error::{InferError, Result};

/// The sidecar: how far the durable output goes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(super) struct Sidecar {
    pub(super) version: u32,
    pub(super) input: PathBuf,
    pub(super) input_len: u64,
    pub(super) shard: String,
    pub(super) chunk_rows: usize,
    pub(super) format: String,
    pub(super) embeddings: bool,
    /// Rows scored in one precision cannot be continued in another (absent: fp32).
    #[serde(default = "fp32")]
    pub(super) precision: String,
    /// What makes the rows: the checkpoint's weights, the label threshold, the token budget,
    /// the id column, and the input's first bytes (its length alone misses an edited file).
    pub(super) weights_sha256: String,
    pub(super) threshold: f32,
    pub(super) max_len: usize,
    pub(super) id_field: String,
    pub(super) input_head_sha256: String,
    pub(super) rows_consumed: u64,
    pub(super) scored: u64,
    pub(super) rejected: u64,
    pub(super) output_bytes: u64,
    pub(super) rejects_bytes: u64,
    pub(super) complete: bool,
    /// The rejects file, when not the default `OUTPUT.rejects.jsonl`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) rejects: Option<PathBuf>,
    /// sha256 of the output and of the rejects file, recorded when the run completes: what
    /// `score --merge` checks each part against (absent in older sidecars).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) output_sha256: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) rejects_sha256: Option<String>,
    /// Input bytes read for this output, over all attempts (a single file's counting pass
    /// included): what shows that a sharded run read each byte once.
    #[serde(default)]
    pub(super) bytes_read: u64,
    /// Parquet footers read to find this shard's row groups, over all attempts (a footer is
    /// read by each shard whose byte range the file reaches into).
    #[serde(default)]
    pub(super) footer_bytes: u64,
    /// A many-file input: the next chunk starts at row `unit_rows` of this shard's unit `unit`.
    #[serde(default)]
    pub(super) unit: u64,
    #[serde(default)]
    pub(super) unit_rows: u64,
}

pub(super) const SIDECAR_VERSION: u32 = 2;

/// Bytes of the input whose hash a resume checks.
const INPUT_HEAD_BYTES: u64 = 1 << 20;

pub(super) fn input_head_sha256(path: &Path) -> Result<String> {
    use sha2::{Digest, Sha256};
    use std::io::Read;
    let mut head = Vec::new();
    File::open(path)
        .and_then(|f| f.take(INPUT_HEAD_BYTES).read_to_end(&mut head))
        .map_err(|e| InferError::io(path, e))?;
    Ok(hex::encode(Sha256::digest(&head)))
}

/// Refuses what would destroy data: an output that is an input file or lies in the input
/// directory, or an existing output without `--resume` or `--overwrite`.
pub(super) fn check_output_is_safe(
    opts: &StreamOptions,
    inputs: &[PathBuf],
    input_root: Option<&Path>,
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
    for input in inputs {
        let input = input.canonicalize().map_err(|e| InferError::io(input, e))?;
        for out in [&opts.output, data_path] {
            if canonical(out).is_some_and(|o| o == input) {
                return Err(InferError::Invalid(format!(
                    "--output {} is the input file; scoring would overwrite what it reads",
                    out.display()
                )));
            }
        }
    }
    if let Some(root) = input_root {
        let root = root.canonicalize().map_err(|e| InferError::io(root, e))?;
        // Not created yet: its directory may not exist either; compare what exists.
        let out = canonical(&opts.output).or_else(|| {
            let abs = std::path::absolute(&opts.output).ok()?;
            Some(abs)
        });
        if out.is_some_and(|o| o.starts_with(&root)) {
            return Err(InferError::Invalid(format!(
                "--output {} is inside the input directory {}: a later listing would read it \
                 as input; write it elsewhere",
                opts.output.display(),
                root.display()
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
    pub(super) fn load(path: &Path) -> Result<Option<Self>> {
        match std::fs::read(path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map(Some).map_err(|e| {
                InferError::Resume(format!("{}: unreadable progress file: {e}", path.display()))
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(InferError::io(path, e)),
        }
    }

    /// Atomic and durable: a crash leaves the old or the new sidecar, never half.
    pub(super) fn store(&self, path: &Path) -> Result<()> {
        Ok(longtail_fs::write_json_atomic(path, self)?)
    }
}

/// What makes a run's rows, shard aside: the parts of one sharded run agree on all of it.
pub(super) fn run_identity(s: &Sidecar) -> Vec<(&'static str, String)> {
    vec![
        ("progress format", s.version.to_string()),
        ("an input of bytes", s.input_len.to_string()),
        (
            "an input (first MiB, or file listing) with sha256",
            s.input_head_sha256.clone(),
        ),
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
}

/// sha256 of a file's bytes, read in blocks.
pub(super) fn file_sha256(path: &Path) -> Result<String> {
    use sha2::{Digest, Sha256};
    let mut f = File::open(path).map_err(|e| InferError::io(path, e))?;
    let mut h = Sha256::new();
    std::io::copy(&mut f, &mut h).map_err(|e| InferError::io(path, e))?;
    Ok(hex::encode(h.finalize()))
}

pub(super) fn check_same_run(prev: &Sidecar, now: &Sidecar) -> Result<()> {
    // What makes the rows, each as the interrupted run and this one state it.
    let settings = |s: &Sidecar| {
        let mut v = run_identity(s);
        v.push(("shard", s.shard.clone()));
        v
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
pub(super) fn open_truncated(path: &Path, len: u64) -> Result<File> {
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

pub(super) fn write_durable(f: &mut File, path: &Path, bytes: &[u8]) -> Result<()> {
    if bytes.is_empty() {
        return Ok(());
    }
    f.write_all(bytes).map_err(|e| InferError::io(path, e))?;
    f.sync_data().map_err(|e| InferError::io(path, e))
}
