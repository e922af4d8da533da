//! The model thread: one thread owns the classifier, the recommender and the text encoder;
//! requests reach it through a queue. Scoring requests waiting together are run as one batch
//! under a token budget (as TEI's queue does), so concurrent callers share forward passes.

use std::collections::{HashMap, HashSet, VecDeque};
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
        erased: &std::collections::HashSet<String>,
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
    fn add_stored(&mut self, stored: &[NewItem]) -> Result<()> {
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
    /// Items the catalogue already has are skipped (a reload may have added them first).
    fn insert(&mut self, items: &[EmbeddedItem]) -> Result<()> {
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
    let weights_sha256 = longtail_fs::files_sha256(
        ckpt,
        &[
            "config.json",
            "model.safetensors",
            "interest.json",
            "sequence.safetensors",
        ],
    )
    .map_err(|e| ServeError::Model(e.to_string()))?;
    Ok(Version {
        path: ckpt.display().to_string(),
        weights_sha256,
    })
}

type Reply<T> = oneshot::Sender<Result<T>>;
/// A place in the model thread's queue (the 429 admission), held until the job is done, so
/// a request whose caller left (408, closed socket) still counts until it leaves the queue.
pub type Permit = tokio::sync::OwnedSemaphorePermit;
/// One scoring request as the batcher holds it: its rows, where the answer goes, its place.
type ScoreJob = (Vec<RowFields>, Reply<Vec<(f32, String)>>, Option<Permit>);

enum Job {
    Score(Vec<Map<String, Value>>, Reply<Vec<(f32, String)>>),
    Recommend(Box<RecRequest>, Reply<RecAnswer>),
    Embed(Vec<Map<String, Value>>, Reply<Vec<EmbeddedItem>>),
    Insert(Vec<EmbeddedItem>, Reply<()>),
    Swap(Box<Models>, Reply<ModelInfo>),
    Info(Reply<ModelInfo>),
    /// Drops an erased user's `--data` history.
    Forget(String, Reply<()>),
    /// Adds items the store holds that the catalogue lacks (a reload's late items).
    AddStored(Vec<NewItem>, Reply<()>),
}

impl Job {
    /// A read-only job whose caller is gone: running it would only burn the model thread.
    /// (Insert and Swap always run: their caller's write is already committed.)
    fn abandoned(&self) -> bool {
        match self {
            Job::Score(_, r) => r.is_closed(),
            Job::Recommend(_, r) => r.is_closed(),
            Job::Embed(_, r) => r.is_closed(),
            Job::Info(r) => r.is_closed(),
            Job::Insert(..) | Job::Swap(..) | Job::Forget(..) | Job::AddStored(..) => false,
        }
    }
}

struct Envelope {
    job: Job,
    permit: Option<Permit>,
}

/// The catalogue's item ids, readable without the model thread (`/v1/events` counts unknown
/// items from it, so event ingestion never waits behind a forward pass).
type Catalogue = Arc<std::sync::RwLock<std::collections::HashSet<String>>>;

fn catalogue_of(models: &Models) -> std::collections::HashSet<String> {
    let r = &models.recommender;
    (0..r.num_items())
        .map(|i| r.item_id(i).to_string())
        .collect()
}

/// The handle the HTTP side uses to reach the model thread.
#[derive(Clone)]
pub struct Engine {
    jobs: mpsc::Sender<Envelope>,
    metrics: Arc<Metrics>,
    catalogue: Catalogue,
    /// False once the model thread has stopped: `/health` then fails, so an orchestrator
    /// restarts the process instead of keeping one that answers 503 forever.
    alive: Arc<std::sync::atomic::AtomicBool>,
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
        let catalogue: Catalogue = Arc::new(std::sync::RwLock::new(catalogue_of(&models)));
        let alive = Arc::new(std::sync::atomic::AtomicBool::new(true));
        let (c, a) = (catalogue.clone(), alive.clone());
        let handle = std::thread::Builder::new()
            .name("model".into())
            .spawn(move || {
                // Set on every way out, a panic that escapes included.
                struct Stopped(Arc<std::sync::atomic::AtomicBool>);
                impl Drop for Stopped {
                    fn drop(&mut self) {
                        self.0.store(false, std::sync::atomic::Ordering::SeqCst);
                    }
                }
                let _stopped = Stopped(a);
                run(models, rx, max_batch_tokens.max(1), &m, &c)
            })
            .map_err(|e| ServeError::Startup(format!("cannot start the model thread: {e}")))?;
        Ok((
            Self {
                jobs: tx,
                metrics,
                catalogue,
                alive,
            },
            handle,
        ))
    }

    /// Whether the model thread runs.
    pub fn is_alive(&self) -> bool {
        self.alive.load(std::sync::atomic::Ordering::SeqCst)
    }

    async fn call<T>(
        &self,
        permit: Option<Permit>,
        make: impl FnOnce(Reply<T>) -> Job,
    ) -> Result<T> {
        let (tx, rx) = oneshot::channel();
        self.metrics.queue_add(1);
        let envelope = Envelope {
            job: make(tx),
            permit,
        };
        if self.jobs.send(envelope).is_err() {
            self.metrics.queue_add(-1);
            return Err(ServeError::NotReady);
        }
        rx.await.map_err(|_| {
            ServeError::Model("the request failed in the model thread (see the server log)".into())
        })?
    }

    /// p_tail and label per listing (a catalogue row).
    pub async fn score(
        &self,
        listings: Vec<Map<String, Value>>,
        permit: Permit,
    ) -> Result<Vec<(f32, String)>> {
        self.call(Some(permit), |tx| Job::Score(listings, tx)).await
    }

    /// Whether each item id is in the catalogue (without the model thread).
    pub fn known_items(&self, ids: &[String]) -> Vec<bool> {
        let catalogue = self.catalogue.read().unwrap_or_else(|e| e.into_inner());
        ids.iter().map(|id| catalogue.contains(id)).collect()
    }

    pub async fn recommend(&self, req: RecRequest, permit: Permit) -> Result<RecAnswer> {
        self.call(Some(permit), |tx| Job::Recommend(Box::new(req), tx))
            .await
    }

    pub async fn embed(
        &self,
        listings: Vec<Map<String, Value>>,
        permit: Permit,
    ) -> Result<Vec<EmbeddedItem>> {
        self.call(Some(permit), |tx| Job::Embed(listings, tx)).await
    }

    pub async fn insert(&self, items: Vec<EmbeddedItem>) -> Result<()> {
        self.call(None, |tx| Job::Insert(items, tx)).await
    }

    /// Replaces the models (already loaded and smoke-tested) between two requests.
    pub async fn swap(&self, models: Models) -> Result<ModelInfo> {
        self.call(None, |tx| Job::Swap(Box::new(models), tx)).await
    }

    pub async fn info(&self) -> Result<ModelInfo> {
        self.call(None, Job::Info).await
    }

    /// Forgets an erased user's history from the data (their stored events are deleted by
    /// the store).
    pub async fn forget(&self, user: String) -> Result<()> {
        self.call(None, |tx| Job::Forget(user, tx)).await
    }

    /// Adds stored items the catalogue lacks (embedded by the current checkpoint).
    pub async fn add_stored(&self, items: Vec<NewItem>) -> Result<()> {
        self.call(None, |tx| Job::AddStored(items, tx)).await
    }
}

/// Runs one job, catching a panic: the request fails (its caller gets an error), the panic is
/// counted and logged, and the thread goes on serving the others.
fn guarded(metrics: &Metrics, what: &str, f: impl FnOnce()) {
    if let Err(panic) = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)) {
        let msg = panic
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| panic.downcast_ref::<String>().cloned())
            .unwrap_or_default();
        eprintln!("longtail serve: a {what} request panicked in the model thread: {msg}");
        metrics.failure("panic");
    }
}

/// Test hook: `LONGTAIL_TEST_CRASH_AT=model-score` makes every scoring batch panic, so a test
/// can prove a panic costs one request, not the service.
fn crash_point(name: &str) {
    if std::env::var_os("LONGTAIL_TEST_CRASH_AT").is_some_and(|v| v == name) {
        panic!("crash point {name}");
    }
}

fn run(
    mut models: Models,
    rx: mpsc::Receiver<Envelope>,
    budget: usize,
    metrics: &Metrics,
    catalogue: &Catalogue,
) {
    // Jobs taken off the queue while forming a batch, to run next in arrival order.
    let mut pending: VecDeque<Envelope> = VecDeque::new();
    loop {
        let Envelope { job, permit } = match pending.pop_front() {
            Some(j) => j,
            None => match rx.recv() {
                Ok(j) => {
                    metrics.queue_add(-1);
                    j
                }
                Err(_) => return,
            },
        };
        if job.abandoned() {
            metrics.failure("abandoned");
            continue;
        }
        match job {
            Job::Score(listings, reply) => {
                let mut batch: Vec<ScoreJob> = Vec::new();
                let mut tokens = 0;
                guarded(metrics, "score", || {
                    let rows = models.rows(&listings);
                    tokens = estimate_tokens(&rows);
                    batch.push((rows, reply, permit));
                });
                while tokens < budget && !batch.is_empty() {
                    match rx.try_recv() {
                        Ok(Envelope {
                            job: Job::Score(listings, reply),
                            permit,
                        }) => {
                            metrics.queue_add(-1);
                            if reply.is_closed() {
                                metrics.failure("abandoned");
                                continue;
                            }
                            guarded(metrics, "score", || {
                                let rows = models.rows(&listings);
                                tokens += estimate_tokens(&rows);
                                batch.push((rows, reply, permit));
                            });
                        }
                        Ok(other) => {
                            metrics.queue_add(-1);
                            pending.push_back(other);
                            break;
                        }
                        Err(_) => break,
                    }
                }
                if !batch.is_empty() {
                    guarded(metrics, "score", || score_batch(&models, batch, metrics));
                }
            }
            Job::Recommend(req, reply) => {
                guarded(metrics, "recommend", || {
                    let _ = reply.send(models.recommend(&req));
                });
            }
            Job::Embed(listings, reply) => {
                guarded(metrics, "items", || {
                    let _ = reply.send(models.embed(&listings));
                });
            }
            Job::Insert(items, reply) => {
                guarded(metrics, "items", || {
                    let result = models.insert(&items);
                    if result.is_ok() {
                        let mut c = catalogue.write().unwrap_or_else(|e| e.into_inner());
                        c.extend(items.iter().map(|i| i.item_id.clone()));
                    }
                    let _ = reply.send(result);
                });
            }
            Job::Swap(new, reply) => {
                models = *new;
                *catalogue.write().unwrap_or_else(|e| e.into_inner()) = catalogue_of(&models);
                let _ = reply.send(Ok(models.info.clone()));
            }
            Job::Info(reply) => {
                let _ = reply.send(Ok(models.info.clone()));
            }
            Job::AddStored(stored, reply) => {
                guarded(metrics, "reload", || {
                    let result = models.add_stored(&stored);
                    if result.is_ok() {
                        *catalogue.write().unwrap_or_else(|e| e.into_inner()) =
                            catalogue_of(&models);
                    }
                    let _ = reply.send(result);
                });
            }
            Job::Forget(user, reply) => {
                models.users.remove(&user);
                models.info.users_in_data = models.users.len();
                let _ = reply.send(Ok(()));
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
    crash_point("model-score");
    let sizes: Vec<usize> = batch.iter().map(|(r, _, _)| r.len()).collect();
    // The places are released when this function returns, the answers sent.
    let (rows, (replies, _places)): (Vec<Vec<RowFields>>, (Vec<_>, Vec<_>)) = batch
        .into_iter()
        .map(|(rows, reply, place)| (rows, (reply, place)))
        .unzip();
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
