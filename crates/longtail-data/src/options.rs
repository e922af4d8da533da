//! Options for `prepare`.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::label::TailRule;
use crate::reader::DEFAULT_MAX_LINE_BYTES;
use crate::split::SplitSpec;

/// Everything `prepare` needs. `PrepareOptions::new` fills in the defaults.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PrepareOptions {
    pub items: PathBuf,
    pub interactions: PathBuf,
    pub out_dir: PathBuf,
    /// Catalogue id field (default `item_id`).
    pub item_id_field: String,
    /// Text fields, in the order they are joined into `text` (default
    /// `title, brand, categories, description`). Any subset may be present.
    pub text_fields: Vec<String>,
    /// Interaction columns (defaults `user_id`, `item_id`, `timestamp`).
    pub user_column: String,
    pub item_column: String,
    pub timestamp_column: String,
    /// Carried through to the cleaned interactions when the input has it
    /// (default `rating`); never validated or used.
    pub rating_column: String,
    pub tail_rule: TailRule,
    /// 2 (head/tail) or 3 (head/torso/tail).
    pub tiers: u8,
    pub split: SplitSpec,
    pub seed: u64,
    /// Longer lines are rejected (default 1 MiB).
    pub max_line_bytes: usize,
    /// The command line that asked for this run, recorded in `prepare.json`.
    #[serde(default)]
    pub invocation: Vec<String>,
}

impl PrepareOptions {
    pub fn new(
        items: impl Into<PathBuf>,
        interactions: impl Into<PathBuf>,
        out_dir: impl Into<PathBuf>,
    ) -> Self {
        Self {
            items: items.into(),
            interactions: interactions.into(),
            out_dir: out_dir.into(),
            item_id_field: "item_id".into(),
            text_fields: ["title", "brand", "categories", "description"]
                .map(String::from)
                .to_vec(),
            user_column: "user_id".into(),
            item_column: "item_id".into(),
            timestamp_column: "timestamp".into(),
            rating_column: "rating".into(),
            tail_rule: TailRule::default(),
            tiers: 2,
            split: SplitSpec::default(),
            seed: 0,
            max_line_bytes: DEFAULT_MAX_LINE_BYTES,
            invocation: Vec::new(),
        }
    }
}
