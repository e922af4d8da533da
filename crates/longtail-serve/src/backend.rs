//! What the model thread runs, as text-embeddings-inference's backends: the [`Backend`] trait
//! (score a batch of rows, recommend, say what is loaded) and the requests and answers it
//! speaks. The queue drives any backend; [`crate::models::Models`] is the real one.

use std::path::Path;

use longtail_rec::Knob;
use serde::Serialize;

use crate::error::{Result, ServeError};
use crate::store::StoredEvent;

/// The models behind the queue. Scoring requests reach it in batches: the queue turns each
/// request's inputs into rows, weighs them in tokens against its budget, and runs every
/// waiting request's rows in one [`Backend::score`].
pub trait Backend: Send + 'static {
    /// One input of a scoring request, as the caller sends it (a listing).
    type Input: Send + 'static;
    /// What a forward pass reads of an input (the classifier's fields of a listing).
    type Row;
    /// The answer for one row.
    type Scored: Send + 'static;
    /// Why a scoring batch failed: every request of the batch gets it (hence `Clone`).
    type Error: Clone + Into<ServeError>;

    /// The row of one input, with the backend's current template.
    fn row(&self, input: &Self::Input) -> Self::Row;

    /// Tokens a row will take in a forward pass (an estimate is enough: it only sizes batches).
    fn tokens(&self, row: &Self::Row) -> usize;

    /// One forward pass over `rows`: one answer per row, in order.
    fn score(&self, rows: &[Self::Row]) -> std::result::Result<Vec<Self::Scored>, Self::Error>;

    /// A recommendation list.
    fn recommend(&self, request: &RecRequest) -> Result<RecAnswer>;

    /// What is loaded.
    fn info(&self) -> ModelInfo;
}

/// A recommendation request as the model thread sees it.
#[derive(Debug, Clone)]
pub struct RecRequest {
    /// The user's pseudonym (their history in the data is looked up by it).
    pub user: Option<String>,
    /// An explicit history (item ids, oldest first), used instead of the stored one.
    pub history: Option<Vec<String>>,
    /// The user's stored events, in commit order.
    pub events: Vec<StoredEvent>,
    pub exclude: Vec<String>,
    pub k: usize,
    pub knob: Option<Knob>,
}

/// A recommended item, by id.
#[derive(Debug, Clone, Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct RecItem {
    pub item_id: String,
    /// Cosine similarity of user and item.
    pub score: f32,
    /// Calibrated P(interest), when the checkpoint has a calibration.
    pub p_interest: Option<f64>,
    pub tail: bool,
    /// The history item that contributed most.
    pub because_of: Option<String>,
}

/// What the model thread answers to a recommendation request.
#[derive(Debug, Clone)]
pub struct RecAnswer {
    pub items: Vec<RecItem>,
    pub history_len: usize,
}

/// A checkpoint as `/info` names it: its path and a hash of its weights.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Version {
    pub path: String,
    /// SHA-256 over the checkpoint's weight and settings files.
    pub weights_sha256: String,
}

/// What is loaded.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ModelInfo {
    pub classifier: Version,
    /// The classifier's arithmetic: `fp32`, `int8` or `bf16`.
    pub classifier_precision: String,
    pub interest: Version,
    /// The prepared dir (catalogue and histories).
    pub data: String,
    /// Catalogue items, including those added while serving.
    pub items: usize,
    /// Items added while serving (`POST /v1/items`).
    pub added_items: usize,
    pub users_in_data: usize,
    /// The served plan: components, weights, knob and the validation numbers that chose
    /// them (absent when the interest checkpoint alone ranks).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub plan: Option<serde_json::Value>,
}

impl ModelInfo {
    /// The same, with every path relative to `root` (the service's model root), so `/info`
    /// names no absolute path; a path outside the root shows as its last component.
    pub fn relative_to(mut self, root: &Path) -> Self {
        for path in [
            &mut self.classifier.path,
            &mut self.interest.path,
            &mut self.data,
        ] {
            *path = shown_path(root, Path::new(path));
        }
        self
    }
}

/// `path` relative to `root`, or `(outside the model root)/NAME`.
pub fn shown_path(root: &Path, path: &Path) -> String {
    let full = path.canonicalize().unwrap_or_else(|_| path.to_path_buf());
    match full.strip_prefix(root) {
        Ok(rel) if rel.as_os_str().is_empty() => ".".into(),
        Ok(rel) => rel.display().to_string(),
        Err(_) => format!(
            "(outside the model root)/{}",
            full.file_name()
                .map_or_else(String::new, |n| n.to_string_lossy().into_owned())
        ),
    }
}
