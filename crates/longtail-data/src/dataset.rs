//! Reading a prepared dataset back (for `train` and later commands).

use std::collections::BTreeMap;
use std::io::BufRead;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::label::Label;
use crate::split::Split;
use crate::stats::PrepareSummary;
use crate::DataError;

// The files of a prepared dataset directory (`prepare` writes them, this module reads them).
pub const ITEMS_FILE: &str = "items.jsonl";
pub const INTERACTIONS_FILE: &str = "interactions.csv";
pub const STATS_FILE: &str = "stats.json";
pub const POPULARITY_FILE: &str = "popularity.png";
pub const REJECTS_FILE: &str = "rejects.jsonl";
pub const META_FILE: &str = "prepare.json";

/// One line of `items.jsonl`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PreparedItem {
    pub item_id: String,
    /// Non-empty cleaned text fields joined with ` | `, in option order.
    pub text: String,
    /// Every configured text field, cleaned (empty when absent).
    pub fields: BTreeMap<String, String>,
    pub n_interactions: u64,
    /// Earliest kept interaction (unix seconds), `None` without interactions.
    pub first_seen: Option<i64>,
    pub label: Label,
    pub split: Split,
}

/// What a field template sees of a prepared item: its cleaned `fields`, and its joined `text`
/// as the fallback field `text` (used when none of the template's fields is present).
impl longtail_tokenize::FieldSource for PreparedItem {
    fn field(&self, name: &str) -> Option<&str> {
        match self.fields.get(name) {
            Some(v) => Some(v.as_str()),
            None if name == longtail_tokenize::TEXT_FIELD => Some(self.text.as_str()),
            None => None,
        }
    }
}

/// A `prepare` output directory loaded into memory.
#[derive(Debug, Clone)]
pub struct PreparedDataset {
    pub dir: PathBuf,
    /// In catalogue input order.
    pub items: Vec<PreparedItem>,
    /// `stats.json`, including the options that produced the data.
    pub summary: PrepareSummary,
}

impl PreparedDataset {
    /// Loads `DIR/items.jsonl` and `DIR/stats.json`.
    pub fn load(dir: &Path) -> Result<Self, DataError> {
        let items_path = dir.join(ITEMS_FILE);
        let open = |path: &Path| {
            std::fs::File::open(path).map_err(|source| DataError::Open {
                path: path.to_path_buf(),
                source,
            })
        };
        let reader = std::io::BufReader::new(open(&items_path)?);
        let mut items = Vec::new();
        for (i, line) in reader.lines().enumerate() {
            let line = line.map_err(DataError::read(&items_path))?;
            let item = serde_json::from_str(&line).map_err(|e| DataError::Prepared {
                path: items_path.clone(),
                line: i as u64 + 1,
                reason: e.to_string(),
            })?;
            items.push(item);
        }
        let stats_path = dir.join(STATS_FILE);
        let summary = serde_json::from_reader(std::io::BufReader::new(open(&stats_path)?))
            .map_err(|e| DataError::Prepared {
                path: stats_path.clone(),
                line: e.line() as u64,
                reason: e.to_string(),
            })?;
        Ok(Self {
            dir: dir.to_path_buf(),
            items,
            summary,
        })
    }

    /// Items of one split, in catalogue order.
    pub fn split(&self, split: Split) -> impl Iterator<Item = &PreparedItem> {
        self.items.iter().filter(move |i| i.split == split)
    }
}
