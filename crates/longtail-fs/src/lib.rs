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
    #[error(
        "{output} is being written by another process ({holder}; lock file {lock}); wait for it \
         to finish or stop it"
    )]
    Locked {
        output: PathBuf,
        lock: PathBuf,
        holder: String,
    },
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
            FsError::Locked { output, .. } => output,
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

/// SHA-256 over the files `names` of `dir` that exist, in the given order, each as its name, a
/// NUL byte and its bytes (streamed): the identity of a checkpoint or an input, as plans,
/// `/info` and `score`'s resume record it.
pub fn files_sha256(dir: &Path, names: &[&str]) -> Result<String> {
    use sha2::{Digest, Sha256};
    use std::io::Read;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    for name in names {
        let path = dir.join(name);
        let mut file = match File::open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(FsError::io(&path, e)),
        };
        h.update(name.as_bytes());
        h.update([0]);
        loop {
            let n = file.read(&mut buf).map_err(|e| FsError::io(&path, e))?;
            if n == 0 {
                break;
            }
            h.update(&buf[..n]);
        }
    }
    Ok(hex::encode(h.finalize()))
}

/// `DIR/STEM<suffix>` for `DIR/STEM.EXT`: a file written beside another (`report.json` ->
/// `report.md`); `report` when the path has no stem.
pub fn sibling(path: &Path, suffix: &str) -> PathBuf {
    let stem = path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "report".into());
    path.with_file_name(format!("{stem}{suffix}"))
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
/// (subdirectories included) and itself are fsynced before it takes `final_dir`'s place. An
/// existing `final_dir` is swapped out in one `renameat2(RENAME_EXCHANGE)`, so at every instant
/// `final_dir` is either the old complete directory or the new one, even across kill -9 or a
/// power cut; the old one is then removed. On error the temporary directory is removed and
/// `final_dir` is untouched. Temporary siblings left by crashed writers (their pid is gone)
/// are swept first.
pub fn write_dir_atomic<E, F>(final_dir: &Path, build: F) -> Result<(), E>
where
    E: From<FsError>,
    F: FnOnce(&Path) -> Result<(), E>,
{
    sweep_stale_temps(final_dir);
    let tmp = temp_sibling(final_dir)?;
    fs::create_dir(&tmp).map_err(|e| FsError::io(&tmp, e))?;
    let result = (|| {
        build(&tmp)?;
        sync_tree(&tmp)?;
        crash_point("dir-built");
        if final_dir.exists() {
            exchange(&tmp, final_dir)?;
            sync_dir(parent_dir(final_dir))?;
            crash_point("dir-exchanged");
            // `tmp` now holds the old directory; a failure to remove it loses nothing (the
            // next write sweeps it), so it is not an error.
            let _ = fs::remove_dir_all(&tmp);
        } else {
            fs::rename(&tmp, final_dir).map_err(|e| FsError::io(final_dir, e))?;
            sync_dir(parent_dir(final_dir))?;
        }
        Ok(())
    })();
    if result.is_err() && tmp.exists() {
        let _ = fs::remove_dir_all(&tmp);
    }
    result
}

/// Fsyncs every file below `dir` and every directory, `dir` last.
fn sync_tree(dir: &Path) -> Result<()> {
    for entry in fs::read_dir(dir).map_err(|e| FsError::io(dir, e))? {
        let entry = entry.map_err(|e| FsError::io(dir, e))?;
        let path = entry.path();
        let kind = entry.file_type().map_err(|e| FsError::io(&path, e))?;
        if kind.is_dir() {
            sync_tree(&path)?;
        } else if kind.is_file() {
            sync_file(&path)?;
        }
    }
    sync_dir(dir)
}

/// Swaps two paths atomically (Linux `renameat2(RENAME_EXCHANGE)`). Where the filesystem
/// cannot, falls back to two renames, with a moment in which `b` does not exist.
fn exchange(a: &Path, b: &Path) -> Result<()> {
    #[cfg(target_os = "linux")]
    {
        use rustix::fs::{renameat_with, RenameFlags, CWD};
        match renameat_with(CWD, a, CWD, b, RenameFlags::EXCHANGE) {
            Ok(()) => return Ok(()),
            Err(e) if e == rustix::io::Errno::INVAL || e == rustix::io::Errno::NOSYS => {}
            Err(e) => return Err(FsError::io(b, e.into())),
        }
    }
    let aside = temp_sibling(b)?;
    fs::rename(b, &aside).map_err(|e| FsError::io(b, e))?;
    fs::rename(a, b).map_err(|e| FsError::io(b, e))?;
    fs::rename(&aside, a).map_err(|e| FsError::io(a, e))
}

/// Removes `.<name>.tmp-<pid>-<n>` siblings of `path` whose writer process no longer runs
/// (Linux: no `/proc/<pid>`); best effort.
fn sweep_stale_temps(path: &Path) {
    let (Some(name), true) = (path.file_name(), Path::new("/proc/self").exists()) else {
        return;
    };
    let prefix = format!(".{}.tmp-", name.to_string_lossy());
    let Ok(entries) = fs::read_dir(parent_dir(path)) else {
        return;
    };
    for entry in entries.flatten() {
        let file_name = entry.file_name().to_string_lossy().into_owned();
        let Some(pid) = file_name
            .strip_prefix(&prefix)
            .and_then(|rest| rest.split('-').next())
            .and_then(|pid| pid.parse::<u32>().ok())
        else {
            continue;
        };
        if pid != std::process::id() && !Path::new(&format!("/proc/{pid}")).exists() {
            let p = entry.path();
            let _ = if p.is_dir() {
                fs::remove_dir_all(&p)
            } else {
                fs::remove_file(&p)
            };
        }
    }
}

/// The environment variable naming a crash point: the process aborts there (as a kill -9 would
/// stop it), so tests can prove what a crash at that instant leaves behind.
pub const CRASH_AT_ENV: &str = "LONGTAIL_TEST_CRASH_AT";

fn crash_point(name: &str) {
    if std::env::var_os(CRASH_AT_ENV).is_some_and(|v| v == name) {
        std::process::abort();
    }
}

/// An exclusive claim on an output (a file or a directory) for as long as it lives: a second
/// writer of the same output gets [`FsError::Locked`] naming the holder instead of interleaving
/// with it. The lock is an `flock` on the sibling `.<name>.lock`, which the kernel releases
/// when the holder exits or is killed, so a crash never leaves a stale lock. The file stays
/// (removing it would let two writers lock two different files).
#[derive(Debug)]
pub struct OutputLock {
    _file: File,
    path: PathBuf,
}

impl OutputLock {
    /// Locks `output` (which need not exist yet; its parent directory is created).
    pub fn acquire(output: &Path) -> Result<Self> {
        let name = output
            .file_name()
            .ok_or_else(|| FsError::NoFileName(output.to_path_buf()))?;
        let dir = parent_dir(output);
        fs::create_dir_all(dir).map_err(|e| FsError::io(dir, e))?;
        let path = output.with_file_name(format!(".{}.lock", name.to_string_lossy()));
        let mut file = fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(|e| FsError::io(&path, e))?;
        match file.try_lock() {
            Ok(()) => {}
            Err(fs::TryLockError::WouldBlock) => {
                let holder = fs::read_to_string(&path).unwrap_or_default();
                return Err(FsError::Locked {
                    output: output.to_path_buf(),
                    lock: path,
                    holder: if holder.trim().is_empty() {
                        "holder unknown".into()
                    } else {
                        holder.trim().to_string()
                    },
                });
            }
            Err(fs::TryLockError::Error(e)) => return Err(FsError::io(&path, e)),
        }
        // Who holds it, for the error another writer gets.
        let since = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let holder = format!(
            "pid {} on {}, since unix time {since}",
            std::process::id(),
            hostname()
        );
        file.set_len(0).map_err(|e| FsError::io(&path, e))?;
        file.write_all(holder.as_bytes())
            .map_err(|e| FsError::io(&path, e))?;
        Ok(Self { _file: file, path })
    }

    /// The lock file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

fn hostname() -> String {
    fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| fs::read_to_string("/etc/hostname"))
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "an unknown host".into())
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
    fn a_second_writer_of_one_output_is_refused_until_the_first_is_done() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("sub/scores.csv");
        let first = OutputLock::acquire(&out).unwrap();
        let err = OutputLock::acquire(&out).unwrap_err();
        let text = err.to_string();
        assert!(matches!(err, FsError::Locked { .. }), "{text}");
        assert!(
            text.contains(&format!("pid {}", std::process::id())) && text.contains("scores.csv"),
            "{text}"
        );
        // another output is free
        let _other = OutputLock::acquire(&dir.path().join("sub/other.csv")).unwrap();
        drop(first);
        OutputLock::acquire(&out).unwrap();
    }

    #[test]
    fn an_exchange_swaps_two_directories() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (dir.path().join("a"), dir.path().join("b"));
        fs::create_dir(&a).unwrap();
        fs::create_dir(&b).unwrap();
        fs::write(a.join("f"), "A").unwrap();
        fs::write(b.join("f"), "B").unwrap();
        exchange(&a, &b).unwrap();
        assert_eq!(fs::read_to_string(a.join("f")).unwrap(), "B");
        assert_eq!(fs::read_to_string(b.join("f")).unwrap(), "A");
    }

    /// kill -9 at every instant of a directory replacement leaves a complete directory: the
    /// test runs itself as a child that aborts at each crash point, then checks what is left,
    /// and that the next write sweeps the dead writer's temporary directory.
    #[test]
    fn a_crash_inside_a_directory_swap_always_leaves_a_complete_directory() {
        const CHILD_DIR: &str = "LONGTAIL_TEST_FS_CHILD_DIR";
        let version = |tmp: &Path, v: &str| -> Result<()> {
            fs::create_dir(tmp.join("nested")).map_err(|e| FsError::io(tmp, e))?;
            for f in ["config.json", "model.safetensors", "nested/x"] {
                fs::write(tmp.join(f), v).map_err(|e| FsError::io(tmp, e))?;
            }
            Ok(())
        };
        if let Some(dir) = std::env::var_os(CHILD_DIR) {
            write_dir_atomic(&Path::new(&dir).join("ckpt"), |t| version(t, "new")).unwrap();
            return;
        }
        for point in ["dir-built", "dir-exchanged"] {
            let dir = tempfile::tempdir().unwrap();
            let ckpt = dir.path().join("ckpt");
            write_dir_atomic(&ckpt, |t| version(t, "old")).unwrap();
            let status = std::process::Command::new(std::env::current_exe().unwrap())
                .args([
                    "--exact",
                    "tests::a_crash_inside_a_directory_swap_always_leaves_a_complete_directory",
                    "--test-threads=1",
                ])
                .env(CHILD_DIR, dir.path())
                .env(CRASH_AT_ENV, point)
                .stderr(std::process::Stdio::null())
                .status()
                .unwrap();
            assert!(!status.success(), "{point}: the child did not crash");
            let want = if point == "dir-built" { "old" } else { "new" };
            for f in ["config.json", "model.safetensors", "nested/x"] {
                assert_eq!(
                    fs::read_to_string(ckpt.join(f)).unwrap(),
                    want,
                    "{point} {f}"
                );
            }
            assert_eq!(
                dir_entries(dir.path()).len(),
                2,
                "{point}: the dead writer's temp"
            );
            write_dir_atomic(&ckpt, |t| version(t, "next")).unwrap();
            assert_eq!(dir_entries(dir.path()), ["ckpt"], "{point}: swept");
        }
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
