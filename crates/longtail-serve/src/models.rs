//! The models a server runs: the classifier, the recommender and the interest checkpoint's
//! text encoder, loaded from their checkpoints and the prepared data (with the histories the
//! data holds). [`Models`] is the [`Backend`] the model thread drives.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use axum::http::StatusCode;
use longtail_data::{listing_text, Label, PrepareSummary, PreparedItem, Split, STATS_FILE};
use longtail_infer::{Device, InferError, Precision, RowFields, Scorer, ScorerOptions};
use longtail_interest::{
    InterestCheckpoint, InterestError, InterestModel, Pseudonymiser, Recommendation, Recommender,
    RecommenderOptions,
};
use serde_json::{Map, Value};

use crate::backend::{Backend, ModelInfo, RecAnswer, RecItem, RecRequest, Version};
use crate::error::{Result, ServeError};
use crate::store::NewItem;

/// The checkpoints a server runs, the classifier's arithmetic and the device (both kept
/// across reloads).
#[derive(Debug, Clone)]
pub struct ModelPaths {
    pub classifier: PathBuf,
    pub interest: PathBuf,
    /// A served plan (`longtail plan --out`) over `interest`: its blend and knob rank the
    /// lists; `None` ranks by the interest checkpoint alone.
    pub plan: Option<PathBuf>,
    /// `longtail score --precision` of the classifier's encoder: fp32, int8 or bf16.
    pub precision: Precision,
    pub device: Device,
}

/// A listing scored and embedded, ready to be stored and added.
#[derive(Debug, Clone)]
pub struct EmbeddedItem {
    pub item_id: String,
    pub p_tail: f32,
    pub label: String,
    pub embedding: Vec<f32>,
}

pub struct Models {
    classifier: Scorer,
    threshold: f32,
    classifier_fields: Vec<String>,
    recommender: Recommender,
    /// The interest checkpoint's text encoder (new items' embeddings); `None` for ID-only.
    encoder: Option<InterestModel>,
    text_fields: Vec<String>,
    users: HashMap<String, usize>,
    pub info: ModelInfo,
}

impl Models {
    /// Loads both checkpoints and the prepared data, adds `added` (items stored while
    /// serving; re-embedded with this interest checkpoint's encoder), and runs one smoke
    /// forward pass of each model.
    pub fn load(
        paths: &ModelPaths,
        data: &Path,
        pseudo: &Pseudonymiser,
        threshold: f32,
        added: &[NewItem],
        erased: &std::collections::HashSet<String>,
    ) -> Result<Self> {
        let at = |what: &Path| what.display().to_string();
        let scorer_opts = ScorerOptions {
            precision: paths.precision,
            device: paths.device.clone(),
            ..Default::default()
        };
        let classifier = Scorer::with_options(&paths.classifier, &scorer_opts)
            .map_err(|e| ServeError::model(at(&paths.classifier), e))?;
        let classifier_fields = classifier.tokenizer().template_fields();
        let opts = RecommenderOptions {
            embedding_cache: None,
            batch_size: 64,
            ease: None,
            device: paths.device.clone(),
        };
        let (recommender, _) = match &paths.plan {
            Some(plan) => Recommender::load_plan(plan, data, &opts)
                .map_err(|e| ServeError::model(at(plan), e))?,
            None => Recommender::load(&paths.interest, data, &opts)
                .map_err(|e| ServeError::model(at(&paths.interest), e))?,
        };
        let meta = &recommender.index().meta;
        let encoder = if recommender.index().dim > 0 {
            Some(
                InterestModel::load(
                    &paths.interest.to_string_lossy(),
                    meta.max_len,
                    &meta.template,
                    &paths.device,
                )
                .and_then(|m| m.with_precision(meta.precision))
                .map_err(|e| ServeError::model(at(&paths.interest), e))?,
            )
        } else {
            None
        };
        let summary: PrepareSummary =
            longtail_fs::read_json(&data.join(STATS_FILE)).map_err(|e| ServeError::model("", e))?;
        // Ids in the data are raw, except those an export wrote: already pseudonyms.
        let users: HashMap<String, usize> = recommender
            .interactions()
            .users
            .iter()
            .enumerate()
            .map(|(i, u)| {
                let key = if pseudo.is_keyed() && Pseudonymiser::looks_pseudonymous(u) {
                    u.clone()
                } else {
                    pseudo.apply(u)
                };
                (key, i)
            })
            // An erased user's history in the data is never served again.
            .filter(|(key, _)| !erased.contains(key))
            .collect();
        let info = ModelInfo {
            classifier: version(&paths.classifier)?,
            classifier_precision: paths.precision.as_str().into(),
            interest: version(&paths.interest)?,
            data: data.display().to_string(),
            items: recommender.num_items(),
            added_items: 0,
            users_in_data: users.len(),
            plan: recommender.plan().map(|p| {
                serde_json::json!({
                    "components": p.components.iter().map(|c| serde_json::json!({
                        "name": c.name, "kind": c.kind, "weight": c.weight,
                        "validation_ndcg@10": c.validation_ndcg_10,
                    })).collect::<Vec<_>>(),
                    "dropped": p.dropped.iter().map(|c| c.name.clone()).collect::<Vec<_>>(),
                    "knob": p.knob,
                    "relevance_budget": p.selection.relevance_budget,
                    "validation": {"blend": p.selection.blend, "served": p.selection.served},
                })
            }),
        };
        let mut models = Self {
            classifier,
            threshold,
            classifier_fields,
            recommender,
            encoder,
            text_fields: summary.options.text_fields,
            users,
            info,
        };
        models.add_stored(added)?;
        models.smoke_test()?;
        Ok(models)
    }

    /// Adds items the store holds (added while serving), re-embedded with this checkpoint's
    /// encoder; those the catalogue has already (a re-training cycle's export made them
    /// ordinary items, or they were inserted meanwhile) are skipped.
    pub(crate) fn add_stored(&mut self, stored: &[NewItem]) -> Result<()> {
        let missing: Vec<&NewItem> = stored
            .iter()
            .filter(|i| self.recommender.item_index(&i.item_id).is_none())
            .collect();
        if missing.is_empty() {
            return Ok(());
        }
        let listings = missing
            .iter()
            .map(|i| parse_listing(&i.listing))
            .collect::<Result<Vec<_>>>()?;
        let embedded = self.embed(&listings)?;
        self.insert(&embedded)
    }

    fn smoke_test(&self) -> Result<()> {
        let p = self
            .classifier
            .score(&["smoke test listing"])
            .map_err(|e| ServeError::model("classifier smoke test", e))?;
        if !p.iter().all(|x| x.is_finite()) {
            return Err(ServeError::Model(
                "classifier smoke test gave a non-finite p_tail".into(),
            ));
        }
        if self.recommender.num_items() > 1 {
            let list = self
                .recommender
                .recommend(&[0], 1, None)
                .map_err(|e| ServeError::model("recommender smoke test", e))?;
            if list.is_none_or(|l| l.is_empty() || !l[0].score.is_finite()) {
                return Err(ServeError::Model(
                    "recommender smoke test gave no finite recommendation".into(),
                ));
            }
        }
        Ok(())
    }

    /// What the classifier's template reads of each listing.
    fn rows(&self, listings: &[Map<String, Value>]) -> Vec<RowFields> {
        listings.iter().map(|l| self.row(l)).collect()
    }

    /// p_tail of listings.
    fn p_tail(&self, rows: &[RowFields]) -> Result<Vec<f32>, InferError> {
        self.classifier.score_items(rows)
    }

    pub fn label(&self, p_tail: f32) -> String {
        self.classifier.label(p_tail, self.threshold).to_string()
    }

    /// Scores and embeds new listings (nothing is added yet).
    pub(crate) fn embed(&self, listings: &[Map<String, Value>]) -> Result<Vec<EmbeddedItem>> {
        let Some(encoder) = &self.encoder else {
            return Err(ServeError::bad_request(
                "this interest checkpoint is ID-only: it cannot place new items",
            ));
        };
        let mut ids = HashSet::new();
        let mut prepared = Vec::with_capacity(listings.len());
        for l in listings {
            let id = longtail_infer::rows::id_text(l.get("item_id"))
                .ok_or_else(|| ServeError::bad_request("every item needs a non-empty `item_id`"))?;
            if self.recommender.item_index(&id).is_some() || !ids.insert(id.clone()) {
                return Err(ServeError::Request {
                    status: StatusCode::CONFLICT,
                    message: format!("item `{id}` is already in the catalogue"),
                });
            }
            let (fields, text) = listing_text(&self.text_fields, |f| l.get(f));
            prepared.push(PreparedItem {
                item_id: id,
                text,
                fields,
                n_interactions: 0,
                first_seen: None,
                label: Label::Tail,
                split: Split::Train,
            });
        }
        let p_tail = self
            .p_tail(&self.rows(listings))
            .map_err(|e| ServeError::model("", e))?;
        let model_err = |e: InterestError| ServeError::model("", e);
        let encoded = encoder.encode_items(&prepared).map_err(model_err)?;
        let emb = encoder.embed_items(&encoded, 32).map_err(model_err)?;
        let dim = encoder.dim();
        Ok(prepared
            .into_iter()
            .zip(p_tail)
            .enumerate()
            .map(|(i, (item, p))| EmbeddedItem {
                item_id: item.item_id,
                p_tail: p,
                label: self.label(p),
                embedding: emb[i * dim..(i + 1) * dim].to_vec(),
            })
            .collect())
    }

    /// Adds embedded items to the catalogue. A new item has no interactions, so it is a tail
    /// item by the data's count rule.
    /// Items the catalogue already has are skipped (a reload may have added them first).
    pub(crate) fn insert(&mut self, items: &[EmbeddedItem]) -> Result<()> {
        let items: Vec<&EmbeddedItem> = items
            .iter()
            .filter(|i| self.recommender.item_index(&i.item_id).is_none())
            .collect();
        if items.is_empty() {
            return Ok(());
        }
        let ids: Vec<(String, bool)> = items.iter().map(|i| (i.item_id.clone(), true)).collect();
        let emb: Vec<f32> = items
            .iter()
            .flat_map(|i| i.embedding.iter().copied())
            .collect();
        self.recommender
            .add_items(&ids, &emb)
            .map_err(|e| ServeError::refused(StatusCode::BAD_REQUEST, "", e))?;
        self.info.items = self.recommender.num_items();
        self.info.added_items += items.len();
        Ok(())
    }

    /// The catalogue's item ids.
    pub(crate) fn catalogue(&self) -> HashSet<String> {
        let r = &self.recommender;
        (0..r.num_items())
            .map(|i| r.item_id(i).to_string())
            .collect()
    }

    /// Drops an erased user's history in the data.
    pub(crate) fn forget(&mut self, user: &str) {
        self.users.remove(user);
        self.info.users_in_data = self.users.len();
    }

    fn item(&self, id: &str) -> Result<usize> {
        self.recommender
            .item_index(id)
            .ok_or_else(|| ServeError::bad_request(format!("item `{id}` is not in the catalogue")))
    }

    fn rec_item(&self, r: &Recommendation) -> RecItem {
        RecItem {
            item_id: self.recommender.item_id(r.item).to_string(),
            score: r.score,
            p_interest: r.p_interest,
            tail: r.tail,
            because_of: r
                .because_of
                .map(|h| self.recommender.item_id(h).to_string()),
        }
    }
}

impl Backend for Models {
    type Input = Map<String, Value>;
    type Row = RowFields;
    /// p_tail and its label.
    type Scored = (f32, String);
    /// Shared by every request of a failed batch.
    type Error = Arc<InferError>;

    /// What the classifier's template reads of a listing.
    fn row(&self, listing: &Map<String, Value>) -> RowFields {
        RowFields::from_row(listing, self.classifier_fields.iter().map(String::as_str))
    }

    /// From the row's text length (about 4 bytes a token; the exact count needs the
    /// tokenizer, which the batch runs anyway).
    fn tokens(&self, row: &RowFields) -> usize {
        let bytes: usize = row.fields.values().map(String::len).sum::<usize>()
            + row.text.as_ref().map_or(0, String::len);
        2 + bytes / 4
    }

    fn score(&self, rows: &[RowFields]) -> Result<Vec<(f32, String)>, Arc<InferError>> {
        let p = self.p_tail(rows).map_err(Arc::new)?;
        Ok(p.into_iter().map(|p| (p, self.label(p))).collect())
    }

    fn recommend(&self, req: &RecRequest) -> Result<RecAnswer> {
        // History: the data's (by pseudonym) or the explicit one, then clicks and purchases
        // in commit order; an item counts once, at its first appearance (as in training).
        let mut history: Vec<usize> = match (&req.history, &req.user) {
            (Some(ids), _) => ids.iter().map(|id| self.item(id)).collect::<Result<_>>()?,
            (None, Some(u)) => self
                .users
                .get(u)
                .map(|&i| self.recommender.interactions().seqs[i].clone())
                .unwrap_or_default(),
            (None, None) => Vec::new(),
        };
        let mut exclude: Vec<usize> = req
            .exclude
            .iter()
            .map(|id| self.item(id))
            .collect::<Result<_>>()?;
        for e in &req.events {
            // An item of an event that this catalogue does not have (a reload dropped it) is
            // skipped: the event stays stored.
            let Some(i) = self.recommender.item_index(&e.event.item_id) else {
                continue;
            };
            if e.event.kind.is_positive() {
                history.push(i);
            } else {
                exclude.push(i);
            }
        }
        let mut seen = HashSet::new();
        history.retain(|i| seen.insert(*i));
        let list = self
            .recommender
            .recommend_excluding(
                &history,
                &exclude,
                req.k,
                req.knob.or(self.recommender.plan_knob()),
            )
            .map_err(|e| ServeError::refused(StatusCode::BAD_REQUEST, "", e))?
            .unwrap_or_default();
        Ok(RecAnswer {
            items: list.iter().map(|r| self.rec_item(r)).collect(),
            history_len: history.len(),
        })
    }

    fn info(&self) -> ModelInfo {
        self.info.clone()
    }
}

/// A stored listing back to its JSON object.
fn parse_listing(s: &str) -> Result<Map<String, Value>> {
    match serde_json::from_str(s) {
        Ok(Value::Object(m)) => Ok(m),
        _ => Err(ServeError::Model(format!(
            "a stored listing is not a JSON object: {}",
            &s[..s.len().min(80)]
        ))),
    }
}

/// SHA-256 over the checkpoint's weights and settings files that exist, in a fixed order.
fn version(ckpt: &Path) -> Result<Version> {
    let weights_sha256 = longtail_fs::files_sha256(ckpt, &InterestCheckpoint::SERVED_FILES)
        .map_err(|e| ServeError::model("", e))?;
    Ok(Version {
        path: ckpt.display().to_string(),
        weights_sha256,
    })
}
