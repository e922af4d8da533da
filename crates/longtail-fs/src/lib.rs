//! longtail-fs: the one way longtail writes a file or directory that must survive a crash.
//!
//! Every writer (checkpoints, reports, scored outputs, keys, prepared data) goes through here:
//! write a temporary sibling, fsync it, rename it over the destination, fsync the directory.
//! A reader therefore sees either the old complete file or the new one, and once a function
//! returns `Ok` the new file survives a power cut.

#![forbid(unsafe_code)]

use std::fs::{self, File};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use serde::de::DeserializeOwned;
use serde::Serialize;

/// An I/O or JSON failure, naming the file it concerns.
#[derive(Debug, thiserror::Error)]
pub enum FsError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: invalid JSON: {source}")]
    Json {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error("{0} has no file name")]
    NoFileName(PathBuf),
}

impl FsError {
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        FsError::Io {
            path: path.into(),
            source,
        }
    }

    /// The file this error concerns.
    pub fn path(&self) -> &Path {
        match self {
            FsError::Io { path, .. } | FsError::Json { path, .. } | FsError::NoFileName(path) => {
                path
            }
        }
    }
}

pub type Result<T, E = FsError> = std::result::Result<T, E>;

static COUNTER: AtomicU64 = AtomicU64::new(0);

/// A unique sibling path `.<name>.tmp-<pid>-<n>` in the same directory (same filesystem, so
/// the final rename is atomic; unique, so two writers never share a temporary file).
fn temp_sibling(path: &Path) -> Result<PathBuf> {
    let name = path
        .file_name()
        .ok_or_else(|| FsError::NoFileName(path.to_path_buf()))?;
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

/// Fsyncs a directory so that a rename inside it is durable (no-op where directories cannot
/// be opened, e.g. Windows).
pub fn sync_dir(dir: &Path) -> Result<()> {
    #[cfg(unix)]
    {
        let d = File::open(dir).map_err(|e| FsError::io(dir, e))?;
        d.sync_all().map_err(|e| FsError::io(dir, e))?;
    }
    #[cfg(not(unix))]
    let _ = dir;
    Ok(())
}

fn sync_file(path: &Path) -> Result<()> {
    File::open(path)
        .and_then(|f| f.sync_all())
        .map_err(|e| FsError::io(path, e))
}

/// Renames the finished temporary file `tmp` over `path` and makes both durable.
fn publish(tmp: &Path, path: &Path) -> Result<()> {
    fs::rename(tmp, path).map_err(|e| FsError::io(path, e))?;
    sync_dir(parent_dir(path))
}

/// Atomically replaces `path` with whatever `write` produces at the temporary path it is
/// given (for writers that want a path, such as safetensors' `save`). The temporary file is
/// removed on error. Generic over the caller's error type so libraries keep their own.
pub fn write_atomic_with<E, F>(path: &Path, write: F) -> Result<(), E>
where
    E: From<FsError>,
    F: FnOnce(&Path) -> Result<(), E>,
{
    let tmp = temp_sibling(path)?;
    let result = (|| {
        write(&tmp)?;
        sync_file(&tmp)?;
        publish(&tmp, path)?;
        Ok(())
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

/// Atomically replaces `path` with `bytes`.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    write_atomic_with(path, |tmp| {
        fs::write(tmp, bytes).map_err(|e| FsError::io(tmp, e))
    })
}

/// Atomically writes `value` as pretty JSON (2-space indent, trailing newline).
pub fn write_json_atomic<T: Serialize + ?Sized>(path: &Path, value: &T) -> Result<()> {
    let mut bytes = serde_json::to_vec_pretty(value).map_err(|source| FsError::Json {
        path: path.to_path_buf(),
        source,
    })?;
    bytes.push(b'\n');
    write_atomic(path, &bytes)
}

/// Reads a JSON file into `T`.
pub fn read_json<T: DeserializeOwned>(path: &Path) -> Result<T> {
    let bytes = fs::read(path).map_err(|e| FsError::io(path, e))?;
    serde_json::from_slice(&bytes).map_err(|source| FsError::Json {
        path: path.to_path_buf(),
        source,
    })
}

/// Builds a directory atomically: `build` fills a temporary sibling directory, whose files
/// and itself are fsynced before it is renamed to `final_dir`. An existing `final_dir` is
/// replaced (moved aside, then removed after the rename). On error the temporary directory is
/// removed and `final_dir` is untouched.
pub fn write_dir_atomic<E, F>(final_dir: &Path, build: F) -> Result<(), E>
where
    E: From<FsError>,
    F: FnOnce(&Path) -> Result<(), E>,
{
    let tmp = temp_sibling(final_dir)?;
    fs::create_dir(&tmp).map_err(|e| FsError::io(&tmp, e))?;
    let result = (|| {
        build(&tmp)?;
        for entry in fs::read_dir(&tmp).map_err(|e| FsError::io(&tmp, e))? {
            let path = entry.map_err(|e| FsError::io(&tmp, e))?.path();
            if path.is_file() {
                sync_file(&path)?;
            }
        }
        sync_dir(&tmp)?;
        if final_dir.exists() {
            let old = temp_sibling(final_dir)?;
            fs::rename(final_dir, &old).map_err(|e| FsError::io(final_dir, e))?;
            fs::rename(&tmp, final_dir).map_err(|e| FsError::io(final_dir, e))?;
            fs::remove_dir_all(&old).map_err(|e| FsError::io(&old, e))?;
        } else {
            fs::rename(&tmp, final_dir).map_err(|e| FsError::io(final_dir, e))?;
        }
        sync_dir(parent_dir(final_dir))?;
        Ok(())
    })();
    if result.is_err() && tmp.exists() {
        let _ = fs::remove_dir_all(&tmp);
    }
    result
}

/// A buffered file written under a temporary name that appears under its final name, durable,
/// only on [`commit`](AtomicFile::commit); dropped uncommitted (e.g. after a fatal error) it
/// is deleted. For outputs streamed row by row.
pub struct AtomicFile {
    tmp: PathBuf,
    path: PathBuf,
    writer: Option<BufWriter<File>>,
}

impl AtomicFile {
    pub fn create(path: &Path) -> Result<Self> {
        let tmp = temp_sibling(path)?;
        let file = File::create(&tmp).map_err(|e| FsError::io(&tmp, e))?;
        Ok(Self {
            tmp,
            path: path.to_path_buf(),
            writer: Some(BufWriter::with_capacity(256 * 1024, file)),
        })
    }

    /// The final path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Flushes, fsyncs, renames into place and fsyncs the directory.
    pub fn commit(mut self) -> Result<()> {
        let writer = self.writer.take().expect("writer present until commit");
        let file = writer
            .into_inner()
            .map_err(|e| FsError::io(&self.tmp, e.into_error()))?;
        file.sync_all().map_err(|e| FsError::io(&self.tmp, e))?;
        drop(file);
        publish(&self.tmp, &self.path)
    }
}

impl Write for AtomicFile {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.writer.as_mut().expect("not committed").write(buf)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.writer.as_mut().expect("not committed").flush()
    }
}

impl Drop for AtomicFile {
    fn drop(&mut self) {
        if self.writer.take().is_some() {
            let _ = fs::remove_file(&self.tmp);
        }
    }
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

    fn simulated_crash() -> FsError {
        FsError::io("x", std::io::Error::other("simulated crash"))
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
            Err(simulated_crash())
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
        let missing = read_json::<Vec<u32>>(&dir.path().join("missing.json")).unwrap_err();
        assert!(missing.path().ends_with("missing.json"));
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
            Err(simulated_crash())
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
        // Resumable state (learning rate, best metric) needs exact f64 round trips
        // (serde_json's `float_roundtrip`).
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

    #[test]
    fn streamed_file_appears_only_on_commit() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.txt");
        let mut f = AtomicFile::create(&path).unwrap();
        f.write_all(b"hello").unwrap();
        assert!(!path.exists());
        f.commit().unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"hello");
        assert_eq!(dir_entries(dir.path()), ["out.txt"]);
    }

    #[test]
    fn dropped_streamed_file_leaves_the_old_one() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.txt");
        fs::write(&path, b"old").unwrap();
        {
            let mut f = AtomicFile::create(&path).unwrap();
            f.write_all(b"new").unwrap();
        }
        assert_eq!(fs::read(&path).unwrap(), b"old");
        assert_eq!(dir_entries(dir.path()), ["out.txt"]);
    }
}
