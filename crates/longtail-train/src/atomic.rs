//! Crash-safe file writing: write a temporary file in the destination's
//! directory, fsync it, rename it over the destination, fsync the directory.
//! A reader therefore sees either the old complete file or the new one.

use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::error::{Result, TrainError};

static COUNTER: AtomicU64 = AtomicU64::new(0);

/// A unique sibling path `.<name>.tmp-<pid>-<n>` in the same directory.
fn temp_sibling(path: &Path) -> Result<PathBuf> {
    let name = path
        .file_name()
        .ok_or_else(|| TrainError::invalid(format!("{} has no file name", path.display())))?;
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let tmp_name = format!(
        ".{}.tmp-{}-{}",
        name.to_string_lossy(),
        std::process::id(),
        n
    );
    Ok(path.with_file_name(tmp_name))
}

fn parent_dir(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

/// Fsyncs a directory so that a rename inside it is durable (no-op where
/// directories cannot be opened, e.g. Windows).
pub fn sync_dir(dir: &Path) -> Result<()> {
    #[cfg(unix)]
    {
        let d = File::open(dir).map_err(|e| TrainError::io(dir, e))?;
        d.sync_all().map_err(|e| TrainError::io(dir, e))?;
    }
    #[cfg(not(unix))]
    let _ = dir;
    Ok(())
}

/// Atomically replaces `path` with whatever `write` produces at the
/// temporary path it is given (use this for writers that want a path, such
/// as candle's safetensors `save`). The temporary file is removed on error.
pub fn write_atomic_with<F>(path: &Path, write: F) -> Result<()>
where
    F: FnOnce(&Path) -> Result<()>,
{
    let tmp = temp_sibling(path)?;
    let result = (|| {
        write(&tmp)?;
        let f = File::open(&tmp).map_err(|e| TrainError::io(&tmp, e))?;
        f.sync_all().map_err(|e| TrainError::io(&tmp, e))?;
        drop(f);
        fs::rename(&tmp, path).map_err(|e| TrainError::io(path, e))?;
        sync_dir(parent_dir(path))
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

/// Atomically replaces `path` with `bytes`.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    write_atomic_with(path, |tmp| {
        let mut f = File::create(tmp).map_err(|e| TrainError::io(tmp, e))?;
        f.write_all(bytes).map_err(|e| TrainError::io(tmp, e))?;
        f.sync_all().map_err(|e| TrainError::io(tmp, e))
    })
}

/// Atomically writes `value` as pretty JSON (2-space indent, trailing newline).
pub fn write_json_atomic<T: Serialize>(path: &Path, value: &T) -> Result<()> {
    let mut bytes = serde_json::to_vec_pretty(value).map_err(|e| TrainError::json(path, e))?;
    bytes.push(b'\n');
    write_atomic(path, &bytes)
}

/// Reads a JSON file into `T`.
pub fn read_json<T: DeserializeOwned>(path: &Path) -> Result<T> {
    let bytes = fs::read(path).map_err(|e| TrainError::io(path, e))?;
    serde_json::from_slice(&bytes).map_err(|e| TrainError::json(path, e))
}

/// Builds a directory atomically: `build` fills a temporary sibling
/// directory, which is fsynced and renamed to `final_dir`. An existing
/// `final_dir` is replaced (moved aside, then removed after the rename).
/// On error the temporary directory is removed and `final_dir` is untouched.
pub fn write_dir_atomic<F>(final_dir: &Path, build: F) -> Result<()>
where
    F: FnOnce(&Path) -> Result<()>,
{
    let tmp = temp_sibling(final_dir)?;
    fs::create_dir(&tmp).map_err(|e| TrainError::io(&tmp, e))?;
    let result = (|| {
        build(&tmp)?;
        for entry in fs::read_dir(&tmp).map_err(|e| TrainError::io(&tmp, e))? {
            let path = entry.map_err(|e| TrainError::io(&tmp, e))?.path();
            if path.is_file() {
                File::open(&path)
                    .and_then(|f| f.sync_all())
                    .map_err(|e| TrainError::io(&path, e))?;
            }
        }
        sync_dir(&tmp)?;
        if final_dir.exists() {
            let old = temp_sibling(final_dir)?;
            fs::rename(final_dir, &old).map_err(|e| TrainError::io(final_dir, e))?;
            fs::rename(&tmp, final_dir).map_err(|e| TrainError::io(final_dir, e))?;
            fs::remove_dir_all(&old).map_err(|e| TrainError::io(&old, e))?;
        } else {
            fs::rename(&tmp, final_dir).map_err(|e| TrainError::io(final_dir, e))?;
        }
        sync_dir(parent_dir(final_dir))
    })();
    if result.is_err() && tmp.exists() {
        let _ = fs::remove_dir_all(&tmp);
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir_entries(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }

    #[test]
    fn writes_and_replaces_without_leftovers() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("state.json");
        write_atomic(&p, b"old").unwrap();
        write_atomic(&p, b"new").unwrap();
        assert_eq!(fs::read(&p).unwrap(), b"new");
        assert_eq!(dir_entries(dir.path()), ["state.json"]);
    }

    #[test]
    fn failed_write_keeps_old_file_and_removes_temp() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("state.json");
        write_atomic(&p, b"old").unwrap();
        let err = write_atomic_with(&p, |tmp| {
            fs::write(tmp, b"partial").unwrap();
            Err(TrainError::invalid("simulated crash"))
        });
        assert!(err.is_err());
        assert_eq!(fs::read(&p).unwrap(), b"old");
        assert_eq!(dir_entries(dir.path()), ["state.json"]);
    }

    #[test]
    fn json_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("x.json");
        write_json_atomic(&p, &vec![1u32, 2, 3]).unwrap();
        let text = fs::read_to_string(&p).unwrap();
        assert!(text.ends_with('\n'));
        let back: Vec<u32> = read_json(&p).unwrap();
        assert_eq!(back, [1, 2, 3]);
        assert!(read_json::<Vec<u32>>(&dir.path().join("missing.json")).is_err());
    }

    #[test]
    fn directory_is_built_atomically_and_replaced() {
        let root = tempfile::tempdir().unwrap();
        let ckpt = root.path().join("checkpoint-5");
        write_dir_atomic(&ckpt, |tmp| {
            assert_ne!(tmp, ckpt.as_path());
            write_atomic(&tmp.join("a.json"), b"1")
        })
        .unwrap();
        assert_eq!(fs::read(ckpt.join("a.json")).unwrap(), b"1");
        // failure leaves the old directory intact and no temp dir behind
        let err = write_dir_atomic(&ckpt, |tmp| {
            fs::write(tmp.join("a.json"), b"partial").unwrap();
            Err(TrainError::invalid("simulated crash"))
        });
        assert!(err.is_err());
        assert_eq!(fs::read(ckpt.join("a.json")).unwrap(), b"1");
        assert_eq!(dir_entries(root.path()), ["checkpoint-5"]);
        // success replaces the whole directory
        write_dir_atomic(&ckpt, |tmp| write_atomic(&tmp.join("b.json"), b"2")).unwrap();
        assert_eq!(dir_entries(&ckpt), ["b.json"]);
        assert_eq!(dir_entries(root.path()), ["checkpoint-5"]);
    }

    #[test]
    fn floats_round_trip_exactly() {
        // serde_json's default parser may be off by one ulp; resumable state
        // (learning rate, best metric) needs `float_roundtrip`.
        let values = vec![
            0.043_750_000_000_000_004_f64,
            1.292_025_707_405_348_3,
            0.1 + 0.2,
            1e-8,
            5e-5 * 0.7,
            f64::MIN_POSITIVE,
            123_456.789_012_345_67,
        ];
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f.json");
        write_json_atomic(&p, &values).unwrap();
        let back: Vec<f64> = read_json(&p).unwrap();
        let bits = |v: &[f64]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        assert_eq!(bits(&back), bits(&values));
    }

    #[test]
    fn missing_directory_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("nope").join("x.json");
        assert!(write_atomic(&p, b"x").is_err());
    }
}
