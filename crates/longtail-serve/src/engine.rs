//! The handle the HTTP side uses to reach the models, as text-embeddings-inference's infer
//! layer in front of its queue: each request becomes work on the model thread's queue
//! ([`crate::queue`]) over the loaded [`Models`]. The catalogue's item ids are kept beside
//! the queue, readable without the model thread, and updated by the work that changes them.

use std::collections::HashSet;
use std::sync::{Arc, RwLock};

use serde_json::{Map, Value};

use crate::backend::Backend;
use crate::error::{Result, ServeError};
use crate::metrics::Metrics;
use crate::queue::Queue;
use crate::store::NewItem;

pub use crate::backend::{shown_path, ModelInfo, RecAnswer, RecItem, RecRequest, Version};
pub use crate::models::{EmbeddedItem, ModelPaths, Models};
pub use crate::queue::Permit;

/// The catalogue's item ids, readable without the model thread (`/v1/events` counts unknown
/// items from it, so event ingestion never waits behind a forward pass).
type Catalogue = Arc<RwLock<HashSet<String>>>;

/// Replaces the catalogue's ids (a poisoned lock is taken over: the set is always whole).
fn replace(catalogue: &Catalogue, ids: HashSet<String>) {
    *catalogue.write().unwrap_or_else(|e| e.into_inner()) = ids;
}

/// The handle the HTTP side uses to reach the model thread.
#[derive(Clone)]
pub struct Engine {
    queue: Queue<Models>,
    catalogue: Catalogue,
}

impl Engine {
    /// Starts the model thread with `models`. Scoring requests waiting together are batched
    /// up to `max_batch_tokens` tokens.
    pub fn start(
        models: Models,
        max_batch_tokens: usize,
        metrics: Arc<Metrics>,
    ) -> Result<(Self, std::thread::JoinHandle<()>)> {
        let catalogue: Catalogue = Arc::new(RwLock::new(models.catalogue()));
        let (queue, handle) = Queue::start(models, max_batch_tokens, metrics)
            .map_err(|e| ServeError::startup("cannot start the model thread", e))?;
        Ok((Self { queue, catalogue }, handle))
    }

    /// Whether the model thread runs. False once it has stopped: `/health` then fails, so an
    /// orchestrator restarts the process instead of keeping one that answers 503 forever.
    pub fn is_alive(&self) -> bool {
        self.queue.is_alive()
    }

    /// p_tail and label per listing (a catalogue row).
    pub async fn score(
        &self,
        listings: Vec<Map<String, Value>>,
        permit: Permit,
    ) -> Result<Vec<(f32, String)>> {
        self.queue.score(listings, Some(permit)).await
    }

    /// Whether each item id is in the catalogue (without the model thread).
    pub fn known_items(&self, ids: &[String]) -> Vec<bool> {
        let catalogue = self.catalogue.read().unwrap_or_else(|e| e.into_inner());
        ids.iter().map(|id| catalogue.contains(id)).collect()
    }

    /// Read-only model work for a route: `work` runs on the model thread as one job of the
    /// queue (skipped if the caller has left). A new route that needs the models calls this
    /// with a method of `Models`; nothing else in the engine changes.
    pub async fn with_models<T: Send + 'static>(
        &self,
        what: &'static str,
        permit: Permit,
        work: impl FnOnce(&Models) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        self.queue.read(what, Some(permit), work).await
    }

    pub async fn recommend(&self, req: RecRequest, permit: Permit) -> Result<RecAnswer> {
        self.with_models("recommend", permit, move |m| m.recommend(&req))
            .await
    }

    pub async fn embed(
        &self,
        listings: Vec<Map<String, Value>>,
        permit: Permit,
    ) -> Result<Vec<EmbeddedItem>> {
        self.with_models("items", permit, move |m| m.embed(&listings))
            .await
    }

    pub async fn insert(&self, items: Vec<EmbeddedItem>) -> Result<()> {
        let catalogue = self.catalogue.clone();
        self.queue
            .write("items", move |m| {
                m.insert(&items)?;
                let mut c = catalogue.write().unwrap_or_else(|e| e.into_inner());
                c.extend(items.iter().map(|i| i.item_id.clone()));
                Ok(())
            })
            .await
    }

    /// Replaces the models (already loaded and smoke-tested) between two requests.
    pub async fn swap(&self, models: Models) -> Result<ModelInfo> {
        let catalogue = self.catalogue.clone();
        self.queue
            .write("reload", move |m| {
                *m = models;
                replace(&catalogue, m.catalogue());
                Ok(m.info())
            })
            .await
    }

    pub async fn info(&self) -> Result<ModelInfo> {
        self.queue.read("info", None, |m| Ok(m.info())).await
    }

    /// Forgets an erased user's history from the data (their stored events are deleted by
    /// the store).
    pub async fn forget(&self, user: String) -> Result<()> {
        self.queue
            .write("users", move |m| {
                m.forget(&user);
                Ok(())
            })
            .await
    }

    /// Adds stored items the catalogue lacks (embedded by the current checkpoint).
    pub async fn add_stored(&self, items: Vec<NewItem>) -> Result<()> {
        let catalogue = self.catalogue.clone();
        self.queue
            .write("reload", move |m| {
                m.add_stored(&items)?;
                replace(&catalogue, m.catalogue());
                Ok(())
            })
            .await
    }
}
