//! [`InputSet`]: an input made of many files, named by a directory, a glob or a manifest.
//!
//! Engines that write catalogue dumps (Spark, Ray Data, a warehouse export) write directories
//! of part files; `score --input` takes those as they are:
//! * a **directory**: every file below it, recursively, in byte order of the relative path;
//!   names starting with `.` or `_` are skipped (`_SUCCESS`, `.crc`, `_temporary/`, as Spark
//!   and Hadoop skip them), and any other file must have a known format;
//! * a **glob** (`dumps/2026-*/part-*.parquet`): the matches in byte order of the path;
//! * a **manifest** `@list.txt`: one path per line in the order given (relative paths are
//!   relative to the manifest's directory; blank lines and `#` comments are ignored).
//!
//! Only names and sizes are looked at here (no file is opened), so listing costs no reads.

use std::path::{Path, PathBuf};

use super::Format;
use crate::DataError;

/// How the files of an [`InputSet`] were named.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InputKind {
    Directory,
    Glob,
    Manifest,
}

/// One file of an [`InputSet`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InputFile {
    pub path: PathBuf,
    /// The name in rejects and messages: the path relative to the directory, else as listed.
    pub name: String,
    pub len: u64,
    pub format: Format,
}

/// The ordered files of a many-file input.
#[derive(Debug, Clone)]
pub struct InputSet {
    pub spec: String,
    pub kind: InputKind,
    pub files: Vec<InputFile>,
}

impl InputSet {
    /// The files that `spec` names, or `None` when it is one plain file (read as before).
    pub fn resolve(spec: &Path) -> Result<Option<Self>, DataError> {
        let text = spec.to_string_lossy().into_owned();
        let err = |reason: String| DataError::Inputs {
            spec: text.clone(),
            reason,
        };
        if let Some(manifest) = text.strip_prefix('@') {
            let files = manifest_files(Path::new(manifest))?;
            return Self::new(&text, InputKind::Manifest, files)
                .non_empty()
                .map(Some);
        }
        if spec.is_dir() {
            let mut files = Vec::new();
            let mut seen = std::collections::HashSet::new();
            walk(spec, spec, &mut seen, &mut files)?;
            files.sort_by(|a, b| a.name.as_bytes().cmp(b.name.as_bytes()));
            return Self::new(&text, InputKind::Directory, files)
                .non_empty()
                .map(Some);
        }
        if spec.exists() || !text.contains(['*', '?', '[']) {
            return Ok(None);
        }
        let paths = glob::glob(&text).map_err(|e| err(format!("bad glob pattern: {e}")))?;
        let mut files = Vec::new();
        for entry in paths {
            let path = entry.map_err(|e| err(format!("cannot list {}", e.path().display())))?;
            if path.is_file() {
                let name = path.to_string_lossy().into_owned();
                files.push(input_file(path, name)?);
            }
        }
        files.sort_by(|a, b| a.name.as_bytes().cmp(b.name.as_bytes()));
        Self::new(&text, InputKind::Glob, files)
            .non_empty()
            .map(Some)
    }

    fn new(spec: &str, kind: InputKind, files: Vec<InputFile>) -> Self {
        Self {
            spec: spec.to_string(),
            kind,
            files,
        }
    }

    fn non_empty(self) -> Result<Self, DataError> {
        if self.files.is_empty() {
            return Err(DataError::Inputs {
                spec: self.spec,
                reason: "names no input file".into(),
            });
        }
        Ok(self)
    }

    /// Bytes of all files together.
    pub fn total_bytes(&self) -> u64 {
        self.files.iter().map(|f| f.len).sum()
    }

    /// The directory whose files this input reads (an output must not be written there).
    pub fn root(&self) -> Option<&Path> {
        match self.kind {
            InputKind::Directory => Some(Path::new(&self.spec)),
            _ => None,
        }
    }
}

fn input_file(path: PathBuf, name: String) -> Result<InputFile, DataError> {
    let format = Format::from_path(&path)?;
    let len = std::fs::metadata(&path)
        .map_err(|source| DataError::Open {
            path: path.clone(),
            source,
        })?
        .len();
    Ok(InputFile {
        path,
        name,
        len,
        format,
    })
}

fn walk(
    root: &Path,
    dir: &Path,
    seen: &mut std::collections::HashSet<PathBuf>,
    files: &mut Vec<InputFile>,
) -> Result<(), DataError> {
    // A linked directory is followed once; a link back up the tree would list forever.
    let real = dir.canonicalize().map_err(DataError::read(dir))?;
    if !seen.insert(real) {
        return Err(DataError::Inputs {
            spec: root.display().to_string(),
            reason: format!(
                "{} is reached twice (a symbolic link loop or a second link to one directory)",
                dir.display()
            ),
        });
    }
    let entries = std::fs::read_dir(dir).map_err(DataError::read(dir))?;
    for entry in entries {
        let entry = entry.map_err(DataError::read(dir))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with('.') || name.starts_with('_') {
            continue;
        }
        let path = entry.path();
        // Follows symlinks, as `ls -L` would: a linked part file is a part file.
        if path.is_dir() {
            walk(root, &path, seen, files)?;
        } else if path.is_file() {
            let rel = path
                .strip_prefix(root)
                .unwrap_or(&path)
                .to_string_lossy()
                .into_owned();
            let file = input_file(path, rel.clone()).map_err(|e| match e {
                DataError::UnknownFormat { .. } => DataError::Inputs {
                    spec: root.display().to_string(),
                    reason: format!(
                        "{rel} has no known format (.jsonl, .json, .ndjson, .csv, optionally .gz, \
                         or .parquet); move it out, or start its name with `_` or `.` to skip it"
                    ),
                },
                other => other,
            })?;
            files.push(file);
        }
    }
    Ok(())
}

fn manifest_files(manifest: &Path) -> Result<Vec<InputFile>, DataError> {
    let text = std::fs::read_to_string(manifest).map_err(|source| DataError::Open {
        path: manifest.to_path_buf(),
        source,
    })?;
    let base = manifest.parent().unwrap_or(Path::new(""));
    let mut files = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let entry = line.trim();
        if entry.is_empty() || entry.starts_with('#') {
            continue;
        }
        let path = base.join(entry);
        let file = input_file(path, entry.to_string()).map_err(|e| DataError::Inputs {
            spec: format!("@{}", manifest.display()),
            reason: format!("line {}: {e}", i + 1),
        })?;
        files.push(file);
    }
    Ok(files)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn touch(path: &Path, bytes: usize) {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, vec![b'x'; bytes]).unwrap();
    }

    fn names(set: &InputSet) -> Vec<&str> {
        set.files.iter().map(|f| f.name.as_str()).collect()
    }

    #[test]
    fn a_directory_lists_its_data_files_recursively_in_byte_order() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        touch(&d.join("b.jsonl"), 3);
        touch(&d.join("a/part-1.csv.gz"), 2);
        touch(&d.join("a/part-0.parquet"), 5);
        touch(&d.join("_SUCCESS"), 0);
        touch(&d.join(".part-0.crc"), 1);
        touch(&d.join("_temporary/x.jsonl"), 1);
        let set = InputSet::resolve(d).unwrap().unwrap();
        assert_eq!(set.kind, InputKind::Directory);
        assert_eq!(
            names(&set),
            ["a/part-0.parquet", "a/part-1.csv.gz", "b.jsonl"]
        );
        assert_eq!(set.total_bytes(), 10);
        assert_eq!(set.files[0].format, Format::Parquet);

        #[cfg(unix)]
        {
            std::os::unix::fs::symlink(d, d.join("a/loop")).unwrap();
            let err = InputSet::resolve(d).unwrap_err().to_string();
            assert!(err.contains("reached twice"), "{err}");
            std::fs::remove_file(d.join("a/loop")).unwrap();
        }
        touch(&d.join("README.txt"), 1);
        let err = InputSet::resolve(d).unwrap_err().to_string();
        assert!(err.contains("README.txt has no known format"), "{err}");
    }

    #[test]
    fn a_glob_and_a_manifest_name_files_and_one_file_is_not_a_set() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        touch(&d.join("p2.jsonl"), 1);
        touch(&d.join("p10.jsonl"), 1);
        touch(&d.join("other.csv"), 1);
        let pattern = d.join("p*.jsonl");
        let set = InputSet::resolve(&pattern).unwrap().unwrap();
        assert_eq!(set.kind, InputKind::Glob);
        let base: Vec<String> = set
            .files
            .iter()
            .map(|f| f.path.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(base, ["p10.jsonl", "p2.jsonl"]);

        std::fs::write(d.join("list.txt"), "# parts\np2.jsonl\n\nother.csv\n").unwrap();
        let manifest = PathBuf::from(format!("@{}", d.join("list.txt").display()));
        let set = InputSet::resolve(&manifest).unwrap().unwrap();
        assert_eq!(names(&set), ["p2.jsonl", "other.csv"]);

        std::fs::write(d.join("bad.txt"), "p2.jsonl\nmissing.jsonl\n").unwrap();
        let manifest = PathBuf::from(format!("@{}", d.join("bad.txt").display()));
        let err = InputSet::resolve(&manifest).unwrap_err().to_string();
        assert!(
            err.contains("bad.txt") && err.contains("line 2") && err.contains("missing.jsonl"),
            "{err}"
        );

        assert!(InputSet::resolve(&d.join("p2.jsonl")).unwrap().is_none());
        let none = InputSet::resolve(&d.join("q*.jsonl"))
            .unwrap_err()
            .to_string();
        assert!(none.contains("names no input file"), "{none}");
        std::fs::create_dir(d.join("empty")).unwrap();
        assert!(InputSet::resolve(&d.join("empty")).is_err());
    }
}
