//! Request and response bodies (JSON). Requests reject unknown fields: a typo'd field is an
//! error, not a silently ignored option.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use utoipa::ToSchema;

use crate::engine::{ModelInfo, RecItem};
use crate::store::EventKind;

/// Listings to score: catalogue rows (`item_id` plus the text fields the classifier's
/// template reads), as `longtail score` reads them.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ScoreRequest {
    #[schema(value_type = Vec<Object>)]
    pub listings: Vec<Map<String, Value>>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Scored {
    pub item_id: Option<String>,
    pub p_tail: f32,
    pub label: String,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ScoreResponse {
    pub results: Vec<Scored>,
}

/// New catalogue items (listings with an `item_id` not yet in the catalogue).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ItemsRequest {
    #[schema(value_type = Vec<Object>)]
    pub items: Vec<Map<String, Value>>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ItemsResponse {
    /// The stored items with their p_tail and label; each is recommendable from now on.
    pub items: Vec<Scored>,
}

/// A recommendation request: a `user_id` (their stored history: the data's, then their
/// clicks and purchases) or an explicit `history` of item ids, oldest first.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RecommendRequest {
    pub user_id: Option<String>,
    pub history: Option<Vec<String>>,
    /// List length (default 10).
    pub k: Option<usize>,
    /// Reserve this share of the list for tail items (0..=1).
    pub tail_share: Option<f64>,
    /// Add this weight to tail items' z-scored scores (>= 0).
    pub tail_weight: Option<f64>,
    /// Item ids never to return.
    #[serde(default)]
    pub exclude: Vec<String>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct RecommendResponse {
    /// Names this list in later events (`rec_id`).
    pub rec_id: String,
    /// The user's pseudonym (the raw id is never stored or logged).
    pub user: Option<String>,
    /// Items of the history the list was computed from.
    pub history_len: usize,
    pub items: Vec<RecItem>,
}

/// One feedback event. Sending the same `event_id` again is acknowledged and stored once.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EventIn {
    pub event_id: String,
    pub user_id: String,
    pub item_id: String,
    #[serde(rename = "type")]
    pub kind: EventKind,
    /// Unix seconds (default: now).
    pub timestamp: Option<i64>,
    pub rec_id: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EventsRequest {
    pub events: Vec<EventIn>,
}

/// Answered only after the events are durably committed.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct EventsResponse {
    /// Events stored by this request.
    pub committed: usize,
    /// Events whose `event_id` was already stored.
    pub duplicates: usize,
    /// Events naming an item this server's catalogue does not have (yet): stored, and used
    /// once a reload brings the item (another replica may have added it).
    pub unknown_items: usize,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct StoredEventBody {
    pub event_id: String,
    pub item_id: String,
    #[serde(rename = "type")]
    pub kind: EventKind,
    pub timestamp: i64,
    pub rec_id: Option<String>,
}

/// What the service stores about a user.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct UserResponse {
    pub user: String,
    pub events: Vec<StoredEventBody>,
    pub impressions: usize,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct DeleteUserResponse {
    pub user: String,
    /// Events and impressions erased from the store. The training data the models were
    /// built from is not touched (it is a file, re-made by the next export).
    pub deleted_rows: u64,
}

/// New checkpoints and prepared data (each may be left out to keep the current one), as
/// paths on the server.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReloadRequest {
    pub classifier: Option<String>,
    pub interest: Option<String>,
    /// A served plan directory (`longtail plan --out`); its checkpoint should be `interest`.
    pub plan: Option<String>,
    /// A prepared dir, e.g. the re-training cycle's (items added while serving that it now
    /// holds become ordinary catalogue items).
    pub data: Option<String>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ReloadResponse {
    pub reloaded: bool,
    #[schema(value_type = Object)]
    pub info: Value,
    pub seconds: f64,
}

/// Limits and what is loaded.
#[derive(Debug, Serialize, ToSchema)]
pub struct InfoResponse {
    pub version: String,
    pub models: ModelInfo,
    pub store: String,
    pub limits: crate::Limits,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Health {
    pub status: String,
}
