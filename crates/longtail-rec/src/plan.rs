//! What `longtail plan` decided and `recommend`, `serve` and `eval-rec --plan` serve: the
//! components of a z-scored blend with their weights, the tail knob, and the validation
//! numbers that chose each (`plan.json`). Only the description lives here; loading the
//! checkpoints and artefacts it names is longtail-interest's `PlanModel`.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::Knob;

/// The plan file in a plan directory.
pub const PLAN_FILE: &str = "plan.json";
/// Format version of `plan.json`.
pub const PLAN_VERSION: u32 = 1;
/// Catalogues larger than this get no dense item-item components (EASE's f64 Gram matrix and
/// inverse take `2 * 8 n²` bytes: 14 GB at 30k items, most of a 24 GB machine).
pub const DENSE_ITEM_LIMIT: usize = 30_000;

/// What a component scores with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ComponentKind {
    /// An interest checkpoint's learned user model (sequence model, SASRec, bi-encoder).
    Interest,
    /// The frozen text embeddings of an interest checkpoint: the user is their last item.
    TextLastItem,
    /// EASE fitted on the training split (artefact: the item-item weights).
    Ease,
    /// Item-kNN (cosine, full neighbourhood) on the training split (artefact: similarities).
    ItemKnn,
    /// Training interaction counts (artefact: the counts).
    MostPopular,
    /// Any other item-item model of the baseline list (`crate::baselines`; artefact: the
    /// matrix), served like EASE and item-kNN.
    ItemItem,
}

/// What a component's saved form is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArtefactKind {
    /// An interest checkpoint (named by `checkpoint`, pinned by `checkpoint_sha256`).
    Checkpoint,
    /// An `n x n` item-item matrix file in the plan directory.
    Matrix,
    /// One value per item in the plan directory.
    Counts,
}

impl ComponentKind {
    pub fn artefact(self) -> ArtefactKind {
        match self {
            ComponentKind::Interest | ComponentKind::TextLastItem => ArtefactKind::Checkpoint,
            ComponentKind::Ease | ComponentKind::ItemKnn | ComponentKind::ItemItem => {
                ArtefactKind::Matrix
            }
            ComponentKind::MostPopular => ArtefactKind::Counts,
        }
    }
}

/// One scorer of the blend.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlanComponent {
    /// Row name (as in eval-rec's report).
    pub name: String,
    pub kind: ComponentKind,
    /// Weight of the component's z-scored scores; the kept weights sum to 1.
    pub weight: f64,
    /// Interest checkpoint directory (interest and text components).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checkpoint: Option<PathBuf>,
    /// sha256 of the checkpoint's interest.json and weights, checked at load.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checkpoint_sha256: Option<String>,
    /// EASE's λ (chosen on validation from the grid).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lambda: Option<f64>,
    /// Fitted artefact in the plan directory (ID components).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artefact: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artefact_sha256: Option<String>,
    /// Validation NDCG@10 of this component alone.
    pub validation_ndcg_10: f64,
}

/// Validation numbers of one ranking (overall NDCG@10 and Recall@10 per item segment).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct ValidationNumbers {
    #[serde(rename = "ndcg@10")]
    pub ndcg_10: f64,
    #[serde(rename = "recall@10")]
    pub recall_10: f64,
    #[serde(rename = "tail_recall@10")]
    pub tail_recall_10: f64,
    #[serde(rename = "head_recall@10")]
    pub head_recall_10: f64,
}

/// One step of the blend weight search.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BlendStep {
    /// Weight per candidate (in `PlanSelection::candidates` order), before normalising.
    pub weights: Vec<f64>,
    /// Validation NDCG@10 of those weights.
    #[serde(rename = "ndcg@10")]
    pub ndcg_10: f64,
}

/// One tail weight tried on validation.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct TailPoint {
    pub tail_weight: f64,
    #[serde(rename = "ndcg@10")]
    pub ndcg_10: f64,
    #[serde(rename = "tail_recall@10")]
    pub tail_recall_10: f64,
}

/// One accepted step of the tail stage: weights served with the tail weight the budget rule
/// gives them (candidate-table estimates).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TailStep {
    /// Weight per candidate (in `PlanSelection::candidates` order), before normalising.
    pub weights: Vec<f64>,
    pub tail_weight: f64,
    #[serde(rename = "ndcg@10")]
    pub ndcg_10: f64,
    #[serde(rename = "tail_recall@10")]
    pub tail_recall_10: f64,
}

/// How the plan was chosen: every number here is a validation number.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlanSelection {
    /// Every candidate component, in search order.
    pub candidates: Vec<String>,
    pub blend_rule: String,
    /// Accepted steps of the search, from the best single candidate to the chosen weights.
    pub blend_path: Vec<BlendStep>,
    /// Weight vectors evaluated in all.
    pub blend_evaluations: usize,
    /// The relevance blend (stage 1's weights), before the tail knob (full-catalogue ranking).
    pub blend: ValidationNumbers,
    pub tail_rule: String,
    pub relevance_budget: f64,
    /// The tail stage: its rule and accepted steps, from the relevance blend to the served
    /// weights (empty with budget 0, and in plans written before the stage existed).
    #[serde(default)]
    pub tail_search_rule: String,
    #[serde(default)]
    pub tail_path: Vec<TailStep>,
    /// The served weights (in `candidates` order, normalised), when the tail stage moved
    /// them from the relevance blend's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub served_weights: Option<Vec<f64>>,
    /// The tail-weight curve of the served weights.
    pub tail_curve: Vec<TailPoint>,
    /// The plan as served (blend + knob).
    pub served: ValidationNumbers,
}

/// A served recommender: `sum_c w_c z(s_c)` over the components, each z-scored over the
/// user's unseen items, history excluded, then re-ranked by `knob`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Plan {
    pub version: u32,
    /// The prepared data directory the plan was fitted and chosen on.
    pub data: PathBuf,
    /// Catalogue size at fitting time (items after it are new: text components only).
    pub n_items: usize,
    /// sha256 of those items' ids in order: a serving catalogue must start with them.
    pub items_sha256: String,
    pub standardisation: String,
    /// The kept components (weight > 0).
    pub components: Vec<PlanComponent>,
    /// Candidates whose weight went to 0.
    #[serde(default)]
    pub dropped: Vec<PlanComponent>,
    /// The served tail knob; `None` is pure relevance.
    pub knob: Option<Knob>,
    pub selection: PlanSelection,
    /// What a reader should know (components left out and why).
    #[serde(default)]
    pub notes: Vec<String>,
}

pub const STANDARDISATION: &str = "per user: each component's scores z-scored (mean 0, sd 1) \
over the items not in the user's history, then weighted and summed";
