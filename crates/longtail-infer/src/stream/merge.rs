//! `score --merge DIR`: the shard outputs of one sharded run, checked and concatenated.
//!
//! Each shard's sidecar (`PART.progress.json`) is its manifest: the run that made it (input,
//! weights, settings), `k/N`, rows, scored, rejected, byte lengths, and once complete the
//! sha256 of its output and rejects. A merge takes every sidecar in `DIR`, requires one run
//! with shards `0..N` each present once and complete, checks every part's bytes against its
//! manifest, then writes the concatenation in shard order (equal to an unsharded run's output
//! byte for byte), the concatenated rejects, and `DIR/_SUCCESS`: the list of parts merged.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::Serialize;

use super::options::suffixed;
use super::resume::{file_sha256, run_identity, Sidecar};
use super::Shard;
use crate::error::{InferError, Result};

/// The marker written into the shard directory by a successful merge.
pub const SUCCESS_FILE: &str = "_SUCCESS";
const SIDECAR_SUFFIX: &str = ".progress.json";

/// What a merge wrote.
#[derive(Debug, Clone, Serialize)]
pub struct MergeSummary {
    pub parts: Vec<MergedPart>,
    pub rows: u64,
    pub scored: u64,
    pub rejected: u64,
    pub output: PathBuf,
    pub rejects: PathBuf,
}

/// One shard as merged.
#[derive(Debug, Clone, Serialize)]
pub struct MergedPart {
    pub shard: String,
    pub output: PathBuf,
    pub rows: u64,
    pub scored: u64,
    pub rejected: u64,
    pub output_bytes: u64,
    pub output_sha256: String,
}

struct Part {
    output: PathBuf,
    rejects: PathBuf,
    sidecar: Sidecar,
    shard: Shard,
}

fn invalid(msg: String) -> InferError {
    InferError::Invalid(msg)
}

/// The shard outputs in `dir`, by shard index; an error names what is missing or foreign.
fn parts_of(dir: &Path) -> Result<(u64, BTreeMap<u64, Part>)> {
    let mut found = Vec::new();
    let entries = std::fs::read_dir(dir).map_err(|e| InferError::io(dir, e))?;
    for entry in entries {
        let entry = entry.map_err(|e| InferError::io(dir, e))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(output_name) = name.strip_suffix(SIDECAR_SUFFIX) else {
            continue;
        };
        let path = entry.path();
        let sidecar = Sidecar::load(&path)?.expect("listed just now");
        let output = dir.join(output_name);
        let shard = Shard::parse(&sidecar.shard)?;
        let rejects = sidecar
            .rejects
            .clone()
            .unwrap_or_else(|| suffixed(&output, ".rejects.jsonl"));
        found.push(Part {
            output,
            rejects,
            sidecar,
            shard,
        });
    }
    let Some(first) = found.first() else {
        return Err(invalid(format!(
            "{}: no shard outputs to merge (no OUTPUT{SIDECAR_SUFFIX} here)",
            dir.display()
        )));
    };
    let count = first.shard.count;
    let identity = run_identity(&first.sidecar);
    let mut by_index: BTreeMap<u64, Part> = BTreeMap::new();
    for part in found {
        for ((what, a), (_, b)) in identity.iter().zip(run_identity(&part.sidecar)) {
            if *a != b {
                return Err(invalid(format!(
                    "{} is from another run than {}: {what} {b} vs {a}",
                    part.output.display(),
                    first_output(&by_index, dir),
                )));
            }
        }
        if part.shard.count != count {
            return Err(invalid(format!(
                "{} is shard {} but other parts are of {count} shards",
                part.output.display(),
                part.shard
            )));
        }
        if let Some(other) = by_index.get(&part.shard.index) {
            return Err(invalid(format!(
                "shard {} was written twice: {} and {}",
                part.shard,
                other.output.display(),
                part.output.display()
            )));
        }
        by_index.insert(part.shard.index, part);
    }
    let missing: Vec<String> = (0..count)
        .filter(|k| !by_index.contains_key(k))
        .map(|k| format!("{k}/{count}"))
        .collect();
    if !missing.is_empty() {
        return Err(invalid(format!(
            "{}: shards {} have no output here; run them (or move their parts here) first",
            dir.display(),
            missing.join(", ")
        )));
    }
    Ok((count, by_index))
}

fn first_output(parts: &BTreeMap<u64, Part>, dir: &Path) -> String {
    parts.values().next().map_or_else(
        || dir.display().to_string(),
        |p| p.output.display().to_string(),
    )
}

/// Checks `path` is `len` bytes with the recorded sha256 (when recorded); returns its sha256.
fn verified(path: &Path, len: u64, sha256: Option<&str>) -> Result<String> {
    let actual = std::fs::metadata(path)
        .map_err(|e| InferError::io(path, e))?
        .len();
    if actual != len {
        return Err(invalid(format!(
            "{} is {actual} bytes but its shard finished at {len}: changed after scoring",
            path.display()
        )));
    }
    let got = file_sha256(path)?;
    if let Some(want) = sha256 {
        if got != want {
            return Err(invalid(format!(
                "{}: sha256 {got}, but its shard recorded {want}: changed after scoring",
                path.display()
            )));
        }
    }
    Ok(got)
}

/// Merges the shards in `dir` into `output` (see the module documentation). An existing
/// `output` is replaced only with `overwrite`.
pub fn merge_parts(dir: &Path, output: &Path, overwrite: bool) -> Result<MergeSummary> {
    let (count, parts) = parts_of(dir)?;
    let _lock = longtail_fs::OutputLock::acquire(output)?;
    let mut merged = Vec::new();
    for part in parts.values() {
        let s = &part.sidecar;
        if !s.complete {
            return Err(invalid(format!(
                "shard {} ({}) is not complete ({} rows so far): continue it with --resume",
                part.shard,
                part.output.display(),
                s.rows_consumed
            )));
        }
        if s.format == "parquet" {
            return Err(invalid(format!(
                "{}: parquet parts are not concatenated into one file; read the {count} parts \
                 as one dataset (every parquet reader takes a directory or a list of files)",
                dir.display()
            )));
        }
        let sha = verified(&part.output, s.output_bytes, s.output_sha256.as_deref())?;
        verified(&part.rejects, s.rejects_bytes, s.rejects_sha256.as_deref())?;
        merged.push(MergedPart {
            shard: part.shard.to_string(),
            output: part.output.clone(),
            rows: s.rows_consumed,
            scored: s.scored,
            rejected: s.rejected,
            output_bytes: s.output_bytes,
            output_sha256: sha,
        });
    }
    let rejects = suffixed(output, ".rejects.jsonl");
    if !overwrite && output.exists() {
        return Err(invalid(format!(
            "{} exists; pass --overwrite to replace it",
            output.display()
        )));
    }
    concatenate(parts.values().map(|p| p.output.as_path()), output)?;
    concatenate(parts.values().map(|p| p.rejects.as_path()), &rejects)?;
    let summary = MergeSummary {
        rows: merged.iter().map(|p| p.rows).sum(),
        scored: merged.iter().map(|p| p.scored).sum(),
        rejected: merged.iter().map(|p| p.rejected).sum(),
        parts: merged,
        output: output.to_path_buf(),
        rejects,
    };
    longtail_fs::write_json_atomic(&dir.join(SUCCESS_FILE), &summary)?;
    Ok(summary)
}

/// Writes the files one after the other into `output`, atomically.
fn concatenate<'a>(files: impl Iterator<Item = &'a Path>, output: &Path) -> Result<()> {
    let files: Vec<&Path> = files.collect();
    longtail_fs::write_atomic_with(output, |tmp: &Path| -> Result<()> {
        let mut out = File::create(tmp).map_err(|e| InferError::io(tmp, e))?;
        for f in &files {
            let mut src = File::open(f).map_err(|e| InferError::io(f, e))?;
            std::io::copy(&mut src, &mut out).map_err(|e| InferError::io(tmp, e))?;
        }
        out.flush().map_err(|e| InferError::io(tmp, e))
    })
}
