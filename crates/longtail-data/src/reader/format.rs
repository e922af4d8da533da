//! Input format detection from the file name.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::DataError;

/// Supported input formats. Text formats may additionally be gzip-compressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    /// JSON Lines: `.jsonl`, `.ndjson`, `.json` (one object per line).
    Jsonl,
    /// Comma-separated values with a header row: `.csv`.
    Csv,
    /// Apache Parquet: `.parquet`.
    Parquet,
}

impl Format {
    /// Chooses the format from the extension, ignoring a trailing `.gz`.
    /// Compression itself is detected from the content, not the name.
    pub fn from_path(path: &Path) -> Result<Self, DataError> {
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().to_ascii_lowercase())
            .unwrap_or_default();
        let (stem, gz) = match name.strip_suffix(".gz") {
            Some(stem) => (stem, true),
            None => (name.as_str(), false),
        };
        let ext = stem.rsplit_once('.').map(|(_, e)| e).unwrap_or("");
        match ext {
            "jsonl" | "ndjson" | "json" => Ok(Self::Jsonl),
            "csv" => Ok(Self::Csv),
            // parquet compresses internally and needs random access
            "parquet" if !gz => Ok(Self::Parquet),
            _ => Err(DataError::UnknownFormat {
                path: path.to_path_buf(),
            }),
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

#[cfg(test)]
mod tests {
    use super::*;

    fn fmt(p: &str) -> Option<Format> {
        Format::from_path(Path::new(p)).ok()
    }

    #[test]
    fn detects_by_extension_with_optional_gz() {
        assert_eq!(fmt("a/items.jsonl"), Some(Format::Jsonl));
        assert_eq!(fmt("items.JSONL.GZ"), Some(Format::Jsonl));
        assert_eq!(fmt("x.ndjson"), Some(Format::Jsonl));
        assert_eq!(fmt("x.json.gz"), Some(Format::Jsonl));
        assert_eq!(fmt("inter.csv"), Some(Format::Csv));
        assert_eq!(fmt("inter.csv.gz"), Some(Format::Csv));
        assert_eq!(fmt("t.parquet"), Some(Format::Parquet));
        assert_eq!(fmt("t.parquet.gz"), None);
        assert_eq!(fmt("t.txt"), None);
        assert_eq!(fmt("noext"), None);
        assert_eq!(fmt("x.gz"), None);
    }

    #[test]
    fn unknown_format_error_names_the_file() {
        let err = Format::from_path(Path::new("data/items.xlsx")).unwrap_err();
        assert!(err.to_string().contains("data/items.xlsx"), "{err}");
    }
}
