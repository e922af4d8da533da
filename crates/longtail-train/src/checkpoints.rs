//! `checkpoint-<step>` directories: naming, listing and `save_total_limit`
//! rotation with the semantics of HF's `rotate_checkpoints`: the most
//! recent checkpoint (for resuming) and the best one are never deleted, and
//! the oldest others are removed until at most
//! `max(save_total_limit, #protected)` remain.
//!
//! Difference from HF: ordering is by the step number in the name (HF's
//! `_save_checkpoint` prefers mtime and falls back to step numbers), and
//! only names that are exactly `checkpoint-<digits>` count, so temporary
//! directories such as `.checkpoint-5.tmp-…` are never touched.

use std::fs;
use std::path::{Path, PathBuf};

use crate::error::{Result, TrainError};

/// HF's `PREFIX_CHECKPOINT_DIR`.
pub const PREFIX_CHECKPOINT_DIR: &str = "checkpoint";

/// `checkpoint-<step>`.
pub fn checkpoint_dir_name(step: u64) -> String {
    format!("{PREFIX_CHECKPOINT_DIR}-{step}")
}

/// The step of a directory named exactly `checkpoint-<digits>`.
pub fn parse_checkpoint_step(name: &str) -> Option<u64> {
    let digits = name
        .strip_prefix(PREFIX_CHECKPOINT_DIR)?
        .strip_prefix('-')?;
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// Checkpoint directories in `output_dir`, oldest (lowest step) first.
/// A missing `output_dir` yields an empty list.
pub fn sorted_checkpoints(output_dir: &Path) -> Result<Vec<(u64, PathBuf)>> {
    let entries = match fs::read_dir(output_dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(TrainError::io(output_dir, e)),
    };
    let mut out = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| TrainError::io(output_dir, e))?;
        let Some(step) = entry.file_name().to_str().and_then(parse_checkpoint_step) else {
            continue;
        };
        let path = entry.path();
        if path.is_dir() {
            out.push((step, path));
        }
    }
    out.sort();
    Ok(out)
}

/// The most recent checkpoint (HF `get_last_checkpoint`), if any.
pub fn last_checkpoint(output_dir: &Path) -> Result<Option<PathBuf>> {
    Ok(sorted_checkpoints(output_dir)?.pop().map(|(_, p)| p))
}

/// Which of `sorted` (oldest first) HF's rotation deletes. `save_total_limit`
/// of 0 means no limit. Pure: touches nothing on disk.
pub fn checkpoints_to_delete(
    sorted: &[PathBuf],
    save_total_limit: usize,
    best_model_checkpoint: Option<&Path>,
) -> Vec<PathBuf> {
    if save_total_limit == 0 || sorted.len() <= save_total_limit {
        return Vec::new();
    }
    let mut protected: Vec<&Path> = vec![sorted[sorted.len() - 1].as_path()];
    if let Some(best) = best_model_checkpoint {
        if !protected.contains(&best) {
            protected.push(best);
        }
    }
    let num_to_keep = save_total_limit.max(protected.len());
    let mut remaining = sorted.len();
    let mut out = Vec::new();
    for ckpt in sorted {
        if remaining <= num_to_keep {
            break;
        }
        if !protected.contains(&ckpt.as_path()) {
            out.push(ckpt.clone());
            remaining -= 1;
        }
    }
    out
}

/// Deletes old checkpoints under `output_dir` as HF's `rotate_checkpoints`
/// does and returns the deleted directories.
///
/// Paths are canonicalised before comparison, so a relative
/// `best_model_checkpoint` still protects the same directory reached
/// through an absolute `output_dir` (and vice versa).
pub fn rotate_checkpoints(
    output_dir: &Path,
    save_total_limit: usize,
    best_model_checkpoint: Option<&Path>,
) -> Result<Vec<PathBuf>> {
    let canonical = |p: &Path| fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf());
    let sorted: Vec<PathBuf> = sorted_checkpoints(output_dir)?
        .into_iter()
        .map(|(_, p)| canonical(&p))
        .collect();
    let best = best_model_checkpoint.map(canonical);
    let doomed = checkpoints_to_delete(&sorted, save_total_limit, best.as_deref());
    for dir in &doomed {
        fs::remove_dir_all(dir).map_err(|e| TrainError::io(dir, e))?;
    }
    Ok(doomed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn make(dir: &Path, names: &[&str]) {
        for n in names {
            fs::create_dir(dir.join(n)).unwrap();
            fs::write(dir.join(n).join("trainer_state.json"), b"{}").unwrap();
        }
    }

    fn names(paths: &[PathBuf]) -> Vec<String> {
        paths
            .iter()
            .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect()
    }

    fn remaining(dir: &Path) -> Vec<String> {
        let v: Vec<PathBuf> = sorted_checkpoints(dir)
            .unwrap()
            .into_iter()
            .map(|(_, p)| p)
            .collect();
        names(&v)
    }

    /// `target` relative to `base` (both absolute), via `..` components.
    fn pathdiff(target: &Path, base: &Path) -> PathBuf {
        let t: Vec<_> = target.components().collect();
        let b: Vec<_> = base.components().collect();
        let common = t.iter().zip(&b).take_while(|(x, y)| x == y).count();
        let mut out = PathBuf::new();
        for _ in common..b.len() {
            out.push("..");
        }
        for c in &t[common..] {
            out.push(c.as_os_str());
        }
        out
    }

    #[test]
    fn parses_only_exact_names() {
        assert_eq!(parse_checkpoint_step("checkpoint-120"), Some(120));
        assert_eq!(parse_checkpoint_step("checkpoint-"), None);
        assert_eq!(parse_checkpoint_step("checkpoint-12.tmp"), None);
        assert_eq!(parse_checkpoint_step("checkpoint12"), None);
        assert_eq!(parse_checkpoint_step("best-checkpoint-3"), None);
        assert_eq!(checkpoint_dir_name(7), "checkpoint-7");
    }

    #[test]
    fn sorts_numerically_and_ignores_other_entries() {
        let d = tempfile::tempdir().unwrap();
        make(
            d.path(),
            &["checkpoint-100", "checkpoint-20", "checkpoint-3", "logs"],
        );
        fs::write(d.path().join("checkpoint-5"), b"file, not dir").unwrap();
        fs::create_dir(d.path().join(".checkpoint-200.tmp-1-0")).unwrap();
        assert_eq!(
            remaining(d.path()),
            ["checkpoint-3", "checkpoint-20", "checkpoint-100"]
        );
        assert_eq!(
            last_checkpoint(d.path()).unwrap().unwrap(),
            d.path().join("checkpoint-100")
        );
        assert!(sorted_checkpoints(&d.path().join("missing"))
            .unwrap()
            .is_empty());
    }

    #[test]
    fn keeps_limit_newest_without_best() {
        let d = tempfile::tempdir().unwrap();
        make(
            d.path(),
            &[
                "checkpoint-1",
                "checkpoint-2",
                "checkpoint-3",
                "checkpoint-4",
            ],
        );
        let deleted = rotate_checkpoints(d.path(), 2, None).unwrap();
        assert_eq!(names(&deleted), ["checkpoint-1", "checkpoint-2"]);
        assert_eq!(remaining(d.path()), ["checkpoint-3", "checkpoint-4"]);
    }

    #[test]
    fn never_deletes_best_or_latest() {
        let d = tempfile::tempdir().unwrap();
        make(
            d.path(),
            &[
                "checkpoint-1",
                "checkpoint-2",
                "checkpoint-3",
                "checkpoint-4",
                "checkpoint-5",
            ],
        );
        let best = d.path().join("checkpoint-2");
        rotate_checkpoints(d.path(), 2, Some(&best)).unwrap();
        assert_eq!(remaining(d.path()), ["checkpoint-2", "checkpoint-5"]);

        // limit 1 with a best that is not the latest keeps both (HF: max(limit, #protected))
        let d = tempfile::tempdir().unwrap();
        make(d.path(), &["checkpoint-1", "checkpoint-2", "checkpoint-3"]);
        let best = d.path().join("checkpoint-1");
        rotate_checkpoints(d.path(), 1, Some(&best)).unwrap();
        assert_eq!(remaining(d.path()), ["checkpoint-1", "checkpoint-3"]);

        // a relative best path still protects the directory
        let d = tempfile::tempdir().unwrap();
        make(d.path(), &["checkpoint-1", "checkpoint-2", "checkpoint-3"]);
        let cwd = std::env::current_dir().unwrap();
        let rel = d.path().join("checkpoint-1");
        let rel = pathdiff(&rel, &cwd);
        rotate_checkpoints(d.path(), 1, Some(&rel)).unwrap();
        assert_eq!(remaining(d.path()), ["checkpoint-1", "checkpoint-3"]);

        // best == latest: only one protected
        let d = tempfile::tempdir().unwrap();
        make(d.path(), &["checkpoint-1", "checkpoint-2", "checkpoint-3"]);
        let best = d.path().join("checkpoint-3");
        rotate_checkpoints(d.path(), 1, Some(&best)).unwrap();
        assert_eq!(remaining(d.path()), ["checkpoint-3"]);
    }

    #[test]
    fn zero_limit_or_under_limit_deletes_nothing() {
        let d = tempfile::tempdir().unwrap();
        make(d.path(), &["checkpoint-1", "checkpoint-2", "checkpoint-3"]);
        assert!(rotate_checkpoints(d.path(), 0, None).unwrap().is_empty());
        assert!(rotate_checkpoints(d.path(), 3, None).unwrap().is_empty());
        assert_eq!(remaining(d.path()).len(), 3);
    }

    #[test]
    fn pure_planner_matches_hf_example() {
        let p: Vec<PathBuf> = (1..=6)
            .map(|i| PathBuf::from(format!("o/checkpoint-{i}")))
            .collect();
        let best = PathBuf::from("o/checkpoint-4");
        let del = checkpoints_to_delete(&p, 3, Some(&best));
        assert_eq!(
            names(&del),
            ["checkpoint-1", "checkpoint-2", "checkpoint-3"]
        );
        let del = checkpoints_to_delete(&p, 3, None);
        assert_eq!(
            names(&del),
            ["checkpoint-1", "checkpoint-2", "checkpoint-3"]
        );
        let best = PathBuf::from("o/checkpoint-1");
        let del = checkpoints_to_delete(&p, 3, Some(&best));
        assert_eq!(
            names(&del),
            ["checkpoint-2", "checkpoint-3", "checkpoint-4"]
        );
    }
}
