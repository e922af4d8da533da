//! The model thread: one thread owns the classifier, the recommender and the text encoder;
//! requests reach it through a queue. Scoring requests waiting together are run as one batch
//! under a token budget (as TEI's queue does), so concurrent callers share forward passes.

use std::collections::{HashMap, HashSet, VecDeque};
use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::sync::Arc;

use longtail_data::{listing_text, Label, PrepareSummary, PreparedItem, Split, STATS_FILE};
use longtail_infer::{Device, Precision, RowFields, Scorer, ScorerOptions};
use longtail_interest::{
    InterestModel, Pseudonymiser, Recommendation, Recommender, RecommenderOptions,
};
use longtail_rec::Knob;
use serde::Serialize;
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};
use tokio::sync::oneshot;

use crate::error::{Result, ServeError};
use crate::metrics::Metrics;
use crate::store::{NewItem, StoredEvent};

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

/// A listing scored and embedded, ready to be stored and added.
#[derive(Debug, Clone)]
pub struct EmbeddedItem {
    pub item_id: String,
    pub p_tail: f32,
    pub label: String,
    pub embedding: Vec<f32>,
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

/// Everything loaded from the checkpoints and the data.
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
    ) -> Result<Self> {
        let model_err = |what: &Path, e: &dyn std::fmt::Display| {
            ServeError::Model(format!("{}: {e}", what.display()))
        };
        let scorer_opts = ScorerOptions {
            precision: paths.precision,
            device: paths.device.clone(),
            ..Default::default()
        };
        let classifier = Scorer::with_options(&paths.classifier, &scorer_opts)
            .map_err(|e| model_err(&paths.classifier, &e))?;
        let classifier_fields = classifier
            .tokenizer()
            .config()
            .template
            .field_names()
            .map(str::to_string)
            .collect();
        let opts = RecommenderOptions {
            embedding_cache: None,
            batch_size: 64,
            ease: None,
            device: paths.device.clone(),
        };
        let (recommender, _) = match &paths.plan {
            Some(plan) => {
                Recommender::load_plan(plan, data, &opts).map_err(|e| model_err(plan, &e))?
            }
            None => Recommender::load(&paths.interest, data, &opts)
                .map_err(|e| model_err(&paths.interest, &e))?,
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
                .map_err(|e| model_err(&paths.interest, &e))?,
            )
        } else {
            None
        };
        let summary: PrepareSummary = longtail_fs::read_json(&data.join(STATS_FILE))
            .map_err(|e| ServeError::Model(e.to_string()))?;
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
        // Items added while serving that the data now holds (a re-training cycle's export)
        // are ordinary catalogue items.
        let added: Vec<&NewItem> = added
            .iter()
            .filter(|i| models.recommender.item_index(&i.item_id).is_none())
            .collect();
        if !added.is_empty() {
            let listings = added
                .iter()
                .map(|i| parse_listing(&i.listing))
                .collect::<Result<Vec<_>>>()?;
            let embedded = models.embed(&listings)?;
            models.insert(&embedded)?;
        }
        models.smoke_test()?;
        Ok(models)
    }

    fn smoke_test(&self) -> Result<()> {
        let p = self
            .classifier
            .score(&["smoke test listing"])
            .map_err(|e| ServeError::Model(format!("classifier smoke test: {e}")))?;
        if !p.iter().all(|x| x.is_finite()) {
            return Err(ServeError::Model(
                "classifier smoke test gave a non-finite p_tail".into(),
            ));
        }
        if self.recommender.num_items() > 1 {
            let list = self
                .recommender
                .recommend(&[0], 1, None)
                .map_err(|e| ServeError::Model(format!("recommender smoke test: {e}")))?;
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
        listings
            .iter()
            .map(|l| RowFields::from_row(l, self.classifier_fields.iter().map(String::as_str)))
            .collect()
    }

    /// p_tail of listings.
    fn score(&self, rows: &[RowFields]) -> Result<Vec<f32>> {
        self.classifier
            .score_items(rows)
            .map_err(|e| ServeError::Model(e.to_string()))
    }

    pub fn label(&self, p_tail: f32) -> String {
        self.classifier.label(p_tail, self.threshold).to_string()
    }

    /// Scores and embeds new listings (nothing is added yet).
    fn embed(&self, listings: &[Map<String, Value>]) -> Result<Vec<EmbeddedItem>> {
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
                    status: axum::http::StatusCode::CONFLICT,
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
        let p_tail = self.score(&self.rows(listings))?;
        let model_err = |e: longtail_interest::InterestError| ServeError::Model(e.to_string());
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
    fn insert(&mut self, items: &[EmbeddedItem]) -> Result<()> {
        let ids: Vec<(String, bool)> = items.iter().map(|i| (i.item_id.clone(), true)).collect();
        let emb: Vec<f32> = items
            .iter()
            .flat_map(|i| i.embedding.iter().copied())
            .collect();
        self.recommender
            .add_items(&ids, &emb)
            .map_err(|e| ServeError::bad_request(e.to_string()))?;
        self.info.items = self.recommender.num_items();
        self.info.added_items += items.len();
        Ok(())
    }

    fn item(&self, id: &str) -> Result<usize> {
        self.recommender
            .item_index(id)
            .ok_or_else(|| ServeError::bad_request(format!("item `{id}` is not in the catalogue")))
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
            .map_err(|e| ServeError::bad_request(e.to_string()))?
            .unwrap_or_default();
        Ok(RecAnswer {
            items: list.iter().map(|r| self.rec_item(r)).collect(),
            history_len: history.len(),
        })
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
    let mut hasher = Sha256::new();
    for name in [
        "config.json",
        "model.safetensors",
        "interest.json",
        "sequence.safetensors",
    ] {
        let path = ckpt.join(name);
        let Ok(mut file) = std::fs::File::open(&path) else {
            continue;
        };
        hasher.update(name.as_bytes());
        let mut buf = vec![0u8; 1 << 20];
        loop {
            let n = file
                .read(&mut buf)
                .map_err(|e| ServeError::Model(format!("{}: {e}", path.display())))?;
            if n == 0 {
                break;
            }
            hasher.update(&buf[..n]);
        }
    }
    Ok(Version {
        path: ckpt.display().to_string(),
        weights_sha256: hex::encode(hasher.finalize()),
    })
}

type Reply<T> = oneshot::Sender<Result<T>>;
/// One scoring request as the batcher holds it: its rows and where the answer goes.
type ScoreJob = (Vec<RowFields>, Reply<Vec<(f32, String)>>);

enum Job {
    Score(Vec<Map<String, Value>>, Reply<Vec<(f32, String)>>),
    Known(Vec<String>, Reply<Vec<bool>>),
    Recommend(Box<RecRequest>, Reply<RecAnswer>),
    Embed(Vec<Map<String, Value>>, Reply<Vec<EmbeddedItem>>),
    Insert(Vec<EmbeddedItem>, Reply<()>),
    Swap(Box<Models>, Reply<ModelInfo>),
    Info(Reply<ModelInfo>),
}

/// The handle the HTTP side uses to reach the model thread.
#[derive(Clone)]
pub struct Engine {
    jobs: mpsc::Sender<Job>,
    metrics: Arc<Metrics>,
}

impl Engine {
    /// Starts the model thread with `models`. Scoring requests waiting together are batched
    /// up to `max_batch_tokens` tokens.
    pub fn start(
        models: Models,
        max_batch_tokens: usize,
        metrics: Arc<Metrics>,
    ) -> Result<(Self, std::thread::JoinHandle<()>)> {
        let (tx, rx) = mpsc::channel();
        let m = metrics.clone();
        let handle = std::thread::Builder::new()
            .name("model".into())
            .spawn(move || run(models, rx, max_batch_tokens.max(1), &m))
            .map_err(|e| ServeError::Startup(format!("cannot start the model thread: {e}")))?;
        Ok((Self { jobs: tx, metrics }, handle))
    }

    async fn call<T>(&self, make: impl FnOnce(Reply<T>) -> Job) -> Result<T> {
        let (tx, rx) = oneshot::channel();
        self.metrics.queue_add(1);
        if self.jobs.send(make(tx)).is_err() {
            self.metrics.queue_add(-1);
            return Err(ServeError::NotReady);
        }
        rx.await
            .map_err(|_| ServeError::Model("the model thread stopped".into()))?
    }

    /// p_tail and label per listing (a catalogue row).
    pub async fn score(&self, listings: Vec<Map<String, Value>>) -> Result<Vec<(f32, String)>> {
        self.call(|tx| Job::Score(listings, tx)).await
    }

    /// Whether each item id is in the catalogue.
    pub async fn known_items(&self, ids: Vec<String>) -> Result<Vec<bool>> {
        self.call(|tx| Job::Known(ids, tx)).await
    }

    pub async fn recommend(&self, req: RecRequest) -> Result<RecAnswer> {
        self.call(|tx| Job::Recommend(Box::new(req), tx)).await
    }

    pub async fn embed(&self, listings: Vec<Map<String, Value>>) -> Result<Vec<EmbeddedItem>> {
        self.call(|tx| Job::Embed(listings, tx)).await
    }

    pub async fn insert(&self, items: Vec<EmbeddedItem>) -> Result<()> {
        self.call(|tx| Job::Insert(items, tx)).await
    }

    /// Replaces the models (already loaded and smoke-tested) between two requests.
    pub async fn swap(&self, models: Models) -> Result<ModelInfo> {
        self.call(|tx| Job::Swap(Box::new(models), tx)).await
    }

    pub async fn info(&self) -> Result<ModelInfo> {
        self.call(Job::Info).await
    }
}

fn run(mut models: Models, rx: mpsc::Receiver<Job>, budget: usize, metrics: &Metrics) {
    // Jobs taken off the queue while forming a batch, to run next in arrival order.
    let mut pending: VecDeque<Job> = VecDeque::new();
    loop {
        let job = match pending.pop_front() {
            Some(j) => j,
            None => match rx.recv() {
                Ok(j) => {
                    metrics.queue_add(-1);
                    j
                }
                Err(_) => return,
            },
        };
        match job {
            Job::Score(listings, reply) => {
                let rows = models.rows(&listings);
                let mut tokens = estimate_tokens(&rows);
                let mut batch = vec![(rows, reply)];
                while tokens < budget {
                    match rx.try_recv() {
                        Ok(Job::Score(listings, reply)) => {
                            metrics.queue_add(-1);
                            let rows = models.rows(&listings);
                            tokens += estimate_tokens(&rows);
                            batch.push((rows, reply));
                        }
                        Ok(other) => {
                            metrics.queue_add(-1);
                            pending.push_back(other);
                            break;
                        }
                        Err(_) => break,
                    }
                }
                score_batch(&models, batch, metrics);
            }
            Job::Known(ids, reply) => {
                let known = ids
                    .iter()
                    .map(|id| models.recommender.item_index(id).is_some())
                    .collect();
                let _ = reply.send(Ok(known));
            }
            Job::Recommend(req, reply) => {
                let _ = reply.send(models.recommend(&req));
            }
            Job::Embed(listings, reply) => {
                let _ = reply.send(models.embed(&listings));
            }
            Job::Insert(items, reply) => {
                let _ = reply.send(models.insert(&items));
            }
            Job::Swap(new, reply) => {
                models = *new;
                let _ = reply.send(Ok(models.info.clone()));
            }
            Job::Info(reply) => {
                let _ = reply.send(Ok(models.info.clone()));
            }
        }
    }
}

/// Tokens a request will take, from its text length (about 4 bytes a token; the exact count
/// needs the tokenizer, which the batch runs anyway).
fn estimate_tokens(rows: &[RowFields]) -> usize {
    rows.iter()
        .map(|r| {
            let bytes: usize = r.fields.values().map(String::len).sum::<usize>()
                + r.text.as_ref().map_or(0, String::len);
            2 + bytes / 4
        })
        .sum()
}

/// One forward pass over every waiting request's rows; each caller gets its own slice.
fn score_batch(models: &Models, batch: Vec<ScoreJob>, metrics: &Metrics) {
    let sizes: Vec<usize> = batch.iter().map(|(r, _)| r.len()).collect();
    let (rows, replies): (Vec<Vec<RowFields>>, Vec<_>) = batch.into_iter().unzip();
    let all: Vec<RowFields> = rows.into_iter().flatten().collect();
    metrics.observe_batch(all.len());
    match models.score(&all) {
        Ok(p) => {
            let mut rest = p.as_slice();
            for (n, reply) in sizes.into_iter().zip(replies) {
                let (mine, tail) = rest.split_at(n);
                rest = tail;
                let _ = reply.send(Ok(mine.iter().map(|&p| (p, models.label(p))).collect()));
            }
        }
        Err(e) => {
            let msg = e.to_string();
            for reply in replies {
                let _ = reply.send(Err(ServeError::Model(msg.clone())));
            }
        }
    }
}
