//! The router: public health/info/metrics routes, API-key routes for scoring,
//! recommendations, items and events, admin-key routes for user data and reload.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use axum::extract::{DefaultBodyLimit, MatchedPath, Path, Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use longtail_interest::Pseudonymiser;
use longtail_rec::Knob;
use tokio::sync::{Mutex, Semaphore};
use utoipa::OpenApi;

use crate::api::*;
use crate::engine::{Engine, ModelPaths, Models, RecRequest};
use crate::error::{ErrorBody, FailureKind, Result, ServeError};
use crate::keys::{Key, ServiceKeys};
use crate::metrics::Metrics;
use crate::store::{Event, Impression, NewItem, Outcome, Store, Write};
use crate::Limits;

/// Shared by every request.
#[derive(Clone)]
pub struct AppState(Arc<Inner>);

struct Inner {
    engine: Engine,
    store: Store,
    metrics: Arc<Metrics>,
    pseudo: Arc<Pseudonymiser>,
    /// The checkpoints and data being served; the lock also makes reloads one at a time.
    models: Mutex<(ModelPaths, PathBuf)>,
    threshold: f32,
    keys: ServiceKeys,
    model_root: PathBuf,
    limits: Limits,
    admission: Admission,
}

/// Places in the model thread's queue: a request that finds none is answered 429 at once
/// instead of waiting behind an unbounded backlog (TEI's semaphore in front of its queue).
#[derive(Clone)]
pub(crate) struct Admission(Arc<Semaphore>);

impl Admission {
    pub(crate) fn new(places: usize) -> Self {
        Self(Arc::new(Semaphore::new(places.max(1))))
    }

    /// A place, held until the permit is dropped; [`ServeError::Overloaded`] when full.
    pub(crate) fn enter(&self) -> Result<tokio::sync::OwnedSemaphorePermit> {
        self.0
            .clone()
            .try_acquire_owned()
            .map_err(|_| ServeError::Overloaded)
    }
}

pub(crate) struct StateParts {
    pub engine: Engine,
    pub store: Store,
    pub metrics: Arc<Metrics>,
    pub pseudo: Arc<Pseudonymiser>,
    pub models: ModelPaths,
    pub data: PathBuf,
    pub threshold: f32,
    pub keys: ServiceKeys,
    pub model_root: PathBuf,
    pub limits: Limits,
}

impl AppState {
    pub(crate) fn limits(&self) -> &Limits {
        &self.0.limits
    }

    pub(crate) fn new(p: StateParts) -> Self {
        Self(Arc::new(Inner {
            engine: p.engine,
            store: p.store,
            metrics: p.metrics,
            pseudo: p.pseudo,
            models: Mutex::new((p.models, p.data)),
            threshold: p.threshold,
            keys: p.keys,
            model_root: p.model_root,
            admission: Admission::new(p.limits.max_concurrent_requests),
            limits: p.limits,
        }))
    }
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "longtail serve",
        description = "Tail scoring, recommendations and feedback events."
    ),
    paths(
        health,
        ready,
        info,
        metrics_route,
        score,
        add_items,
        recommend,
        events,
        get_user,
        delete_user,
        reload
    ),
    components(schemas(
        ScoreRequest,
        ScoreResponse,
        Scored,
        ItemsRequest,
        ItemsResponse,
        RecommendRequest,
        RecommendResponse,
        crate::engine::RecItem,
        EventIn,
        EventsRequest,
        EventsResponse,
        StoredEventBody,
        UserResponse,
        DeleteUserResponse,
        ReloadRequest,
        ReloadResponse,
        InfoResponse,
        Health,
        ErrorBody,
        crate::store::EventKind,
        crate::engine::ModelInfo,
        crate::engine::Version,
        Limits
    ))
)]
struct ApiDoc;

/// The service's routes over `state`.
pub fn router(state: AppState) -> Router {
    let limits = state.0.limits.clone();
    let keyed = Router::new()
        .route("/v1/tail/score", post(score))
        .route("/v1/items", post(add_items))
        .route("/v1/recommend", post(recommend))
        .route("/v1/events", post(events))
        // behind the key as in text-embeddings-inference: it names the checkpoints and store
        .route("/info", get(info))
        .route_layer(middleware::from_fn_with_state(
            state.clone(),
            require_api_key,
        ));
    let admin = Router::new()
        .route("/v1/users/{id}", get(get_user).delete(delete_user))
        .route("/admin/reload", post(reload))
        .route_layer(middleware::from_fn_with_state(
            state.clone(),
            require_admin_key,
        ));
    Router::new()
        .route("/health", get(health))
        .route("/ready", get(ready))
        .route("/metrics", get(metrics_route))
        .route("/openapi.json", get(openapi))
        .merge(keyed)
        .merge(admin)
        .layer(middleware::from_fn_with_state(state.clone(), observe))
        .layer(tower_http::timeout::TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            crate::timeout(&limits),
        ))
        .layer(DefaultBodyLimit::max(limits.max_body_bytes))
        .with_state(state)
}

/// Latency per route and status, failures by kind.
async fn observe(State(s): State<AppState>, req: Request, next: Next) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_string(), |p| p.as_str().to_string());
    let started = Instant::now();
    let response = next.run(req).await;
    let status = response.status();
    s.0.metrics
        .observe_request(&route, status.as_u16(), started.elapsed().as_secs_f64());
    if let Some(kind) = response.extensions().get::<FailureKind>() {
        s.0.metrics.failure(kind.0);
    } else if status.is_client_error() || status.is_server_error() {
        // Rejected before a handler ran (body too large, bad JSON, timeout).
        s.0.metrics.failure("request");
    }
    response
}

type Reply<T> = std::result::Result<Json<T>, ServeError>;

fn presented_key(headers: &HeaderMap) -> Option<&str> {
    if let Some(k) = headers.get("x-api-key").and_then(|v| v.to_str().ok()) {
        return Some(k);
    }
    headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
}

fn key_matches(expected: &Key, headers: &HeaderMap) -> bool {
    presented_key(headers).is_some_and(|k| expected.matches(k))
}

async fn require_api_key(State(s): State<AppState>, req: Request, next: Next) -> Response {
    match &s.0.keys.api {
        Some(key) if !key_matches(key, req.headers()) => ServeError::Unauthorized.into_response(),
        _ => next.run(req).await,
    }
}

async fn require_admin_key(State(s): State<AppState>, req: Request, next: Next) -> Response {
    match &s.0.keys.admin {
        None => ServeError::AdminDisabled.into_response(),
        Some(key) if !key_matches(key, req.headers()) => ServeError::Unauthorized.into_response(),
        _ => next.run(req).await,
    }
}

/// A place in the model thread's queue, or 429.
fn permit(s: &AppState) -> Result<tokio::sync::OwnedSemaphorePermit> {
    s.0.admission.enter()
}

/// The longest id (user, item, event, rec) a request may carry, in bytes: ids are stored and
/// indexed, and nothing real is longer.
const MAX_ID_BYTES: usize = 200;

/// Client timestamps may be at most this far in the future (clock skew); later ones would
/// land in the next `prepare`'s validation or test window.
const MAX_FUTURE_SECONDS: i64 = 86_400;

fn check_id(what: &str, id: &str) -> Result<()> {
    if id.trim().is_empty() || id.len() > MAX_ID_BYTES {
        return Err(ServeError::bad_request(format!(
            "`{what}` must be 1-{MAX_ID_BYTES} bytes, got {}",
            id.len()
        )));
    }
    Ok(())
}

fn check_len(what: &str, n: usize, max: usize) -> Result<()> {
    if n == 0 {
        return Err(ServeError::bad_request(format!("`{what}` is empty")));
    }
    if n > max {
        return Err(ServeError::bad_request(format!(
            "`{what}` has {n} entries; at most {max} per request"
        )));
    }
    Ok(())
}

#[utoipa::path(get, path = "/health", responses((status = 200, body = Health)))]
async fn health(State(s): State<AppState>) -> Reply<Health> {
    // The process is worth keeping only while its model thread runs.
    if !s.0.engine.is_alive() {
        return Err(ServeError::Model("the model thread has stopped".into()));
    }
    Ok(Json(Health {
        status: "ok".into(),
    }))
}

/// Ready: the models are loaded (their smoke test passed at load) and the store takes writes.
#[utoipa::path(get, path = "/ready", responses((status = 200, body = Health), (status = 503, body = ErrorBody)))]
async fn ready(State(s): State<AppState>) -> Reply<Health> {
    // Not a job on the model thread: a probe must not wait behind a forward pass.
    if !s.0.engine.is_alive() {
        return Err(ServeError::NotReady);
    }
    s.0.store.check_writable().await?;
    Ok(Json(Health {
        status: "ready".into(),
    }))
}

#[utoipa::path(get, path = "/info", responses((status = 200, body = InfoResponse)))]
async fn info(State(s): State<AppState>) -> Reply<InfoResponse> {
    Ok(Json(InfoResponse {
        version: env!("CARGO_PKG_VERSION").into(),
        models: s.0.engine.info().await?.relative_to(&s.0.model_root),
        store: s.0.store.url.redacted(),
        limits: s.0.limits.clone(),
    }))
}

#[utoipa::path(get, path = "/metrics", responses((status = 200, description = "Prometheus text format", body = String)))]
async fn metrics_route(State(s): State<AppState>) -> impl IntoResponse {
    (
        [("content-type", "text/plain; version=0.0.4")],
        s.0.metrics.render(),
    )
}

async fn openapi() -> Json<utoipa::openapi::OpenApi> {
    Json(ApiDoc::openapi())
}

fn listing_id(l: &serde_json::Map<String, serde_json::Value>) -> Option<String> {
    longtail_infer::rows::id_text(l.get("item_id"))
}

/// p_tail and label per listing, as `longtail score` gives for the same rows.
#[utoipa::path(post, path = "/v1/tail/score", request_body = ScoreRequest,
    responses((status = 200, body = ScoreResponse), (status = 400, body = ErrorBody), (status = 429, body = ErrorBody)),
    security(("api_key" = [])))]
async fn score(State(s): State<AppState>, Json(req): Json<ScoreRequest>) -> Reply<ScoreResponse> {
    check_len("listings", req.listings.len(), s.0.limits.max_listings)?;
    let place = permit(&s)?;
    // The ids are taken first, so the listings move to the model thread without a copy.
    let ids: Vec<Option<String>> = req.listings.iter().map(listing_id).collect();
    let scored = s.0.engine.score(req.listings, place).await?;
    Ok(Json(ScoreResponse {
        results: ids
            .into_iter()
            .zip(scored)
            .map(|(item_id, (p_tail, label))| Scored {
                item_id,
                p_tail,
                label,
            })
            .collect(),
    }))
}

/// Adds listings to the catalogue: scored, embedded, committed to the store, then
/// recommendable (answered after all three).
#[utoipa::path(post, path = "/v1/items", request_body = ItemsRequest,
    responses((status = 200, body = ItemsResponse), (status = 409, body = ErrorBody)),
    security(("api_key" = [])))]
async fn add_items(
    State(s): State<AppState>,
    Json(req): Json<ItemsRequest>,
) -> Reply<ItemsResponse> {
    check_len("items", req.items.len(), s.0.limits.max_listings)?;
    for id in req.items.iter().filter_map(listing_id) {
        check_id("item_id", &id)?;
    }
    let place = permit(&s)?;
    let listings: Vec<String> = req
        .items
        .iter()
        .map(|l| serde_json::to_string(l).expect("a JSON object always serialises"))
        .collect();
    let embedded = s.0.engine.embed(req.items, place).await?;
    let now = crate::now();
    let stored: Vec<NewItem> = embedded
        .iter()
        .zip(listings)
        .map(|(e, listing)| NewItem {
            item_id: e.item_id.clone(),
            listing,
            p_tail: e.p_tail,
            label: e.label.clone(),
            embedding: e.embedding.clone(),
            timestamp: now,
            seq: 0,
        })
        .collect();
    // Two requests adding the same id at once both pass the catalogue check; the store's
    // unique key lets one win and the other is the same 409 as a known id.
    s.0.store
        .write(Write::Items(stored))
        .await
        .map_err(|e| match e {
            e if e.is_unique_violation() => ServeError::Request {
                status: StatusCode::CONFLICT,
                message: format!("an item of this request was added meanwhile: {e}"),
            },
            e => e.into(),
        })?;
    let out = embedded
        .iter()
        .map(|e| Scored {
            item_id: Some(e.item_id.clone()),
            p_tail: e.p_tail,
            label: e.label.clone(),
        })
        .collect();
    s.0.engine.insert(embedded).await?;
    Ok(Json(ItemsResponse { items: out }))
}

fn knob(req: &RecommendRequest) -> Result<Option<Knob>> {
    Ok(Knob::from_options(req.tail_weight, req.tail_share)?)
}

/// Recommendations from the user's stored history (or an explicit one). Dismissed items
/// never come back; each click or purchase changes the next list.
#[utoipa::path(post, path = "/v1/recommend", request_body = RecommendRequest,
    responses((status = 200, body = RecommendResponse), (status = 400, body = ErrorBody)),
    security(("api_key" = [])))]
async fn recommend(
    State(s): State<AppState>,
    Json(req): Json<RecommendRequest>,
) -> Reply<RecommendResponse> {
    let limits = &s.0.limits;
    let k = req.k.unwrap_or(10);
    if k == 0 || k > limits.max_k {
        return Err(ServeError::bad_request(format!(
            "`k` must be in 1..={}",
            limits.max_k
        )));
    }
    if req.user_id.is_none() && req.history.is_none() {
        return Err(ServeError::bad_request("give `user_id` or `history`"));
    }
    if let Some(u) = &req.user_id {
        check_id("user_id", u)?;
    }
    if let Some(h) = &req.history {
        check_len("history", h.len(), limits.max_history)?;
    }
    if req.exclude.len() > limits.max_history {
        return Err(ServeError::bad_request("`exclude` is too long"));
    }
    let knob = knob(&req)?;
    let place = permit(&s)?;
    let user = req.user_id.as_deref().map(|u| s.0.pseudo.apply(u));
    let events = match &user {
        Some(u) => s.0.store.user(u).await?.events,
        None => Vec::new(),
    };
    let answer =
        s.0.engine
            .recommend(
                RecRequest {
                    user: user.clone(),
                    history: req.history,
                    events,
                    exclude: req.exclude,
                    k,
                    knob,
                },
                place,
            )
            .await?;
    let rec_id = new_rec_id();
    if let Some(u) = &user {
        // What was shown, for exposure correction later; not part of the reply's promise.
        let impression = Impression {
            rec_id: rec_id.clone(),
            user: u.clone(),
            items: answer.items.iter().map(|i| i.item_id.clone()).collect(),
            timestamp: crate::now(),
        };
        let store = s.0.store.clone();
        let metrics = s.0.metrics.clone();
        tokio::spawn(async move {
            if store.write(Write::Impression(impression)).await.is_err() {
                metrics.failure("store");
            }
        });
    }
    Ok(Json(RecommendResponse {
        rec_id,
        user,
        history_len: answer.history_len,
        items: answer.items,
    }))
}

fn new_rec_id() -> String {
    let bytes: [u8; 16] = rand::random();
    format!("r_{}", hex::encode(bytes))
}

/// Stores feedback events; answered only after the commit (idempotent on `event_id`).
#[utoipa::path(post, path = "/v1/events", request_body = EventsRequest,
    responses((status = 200, body = EventsResponse), (status = 400, body = ErrorBody)),
    security(("api_key" = [])))]
async fn events(
    State(s): State<AppState>,
    Json(req): Json<EventsRequest>,
) -> Reply<EventsResponse> {
    check_len("events", req.events.len(), s.0.limits.max_events)?;
    let ids: Vec<String> = req.events.iter().map(|e| e.item_id.clone()).collect();
    let known = s.0.engine.known_items(&ids);
    let unknown_items = known.iter().filter(|&&k| !k).count();
    let mut out = Vec::with_capacity(req.events.len());
    let latest = crate::now() + MAX_FUTURE_SECONDS;
    for e in req.events {
        check_id("event_id", &e.event_id)?;
        check_id("user_id", &e.user_id)?;
        check_id("item_id", &e.item_id)?;
        if let Some(r) = &e.rec_id {
            check_id("rec_id", r)?;
        }
        if let Some(t) = e.timestamp.filter(|&t| t < 0 || t > latest) {
            return Err(ServeError::bad_request(format!(
                "event `{}`: timestamp {t} is before 1970 or more than a day in the future",
                e.event_id
            )));
        }
        out.push(Event {
            event_id: e.event_id,
            user: s.0.pseudo.apply(&e.user_id),
            item_id: e.item_id,
            kind: e.kind,
            timestamp: e.timestamp.unwrap_or_else(crate::now),
            rec_id: e.rec_id,
        });
    }
    let Outcome::Events(new) = s.0.store.write(Write::Events(out)).await? else {
        return Err(ServeError::Model(
            "the store answered an event write oddly".into(),
        ));
    };
    let committed = new.iter().filter(|&&n| n).count();
    s.0.metrics.events_committed(committed);
    Ok(Json(EventsResponse {
        committed,
        duplicates: new.len() - committed,
        unknown_items,
    }))
}

/// The pseudonym a `/v1/users/{id}` path names: a pseudonym as it is (`u_` and 32 hex digits,
/// as exports and replies show it), any other id pseudonymised.
fn pseudonym_of(s: &AppState, id: &str) -> String {
    if s.0.pseudo.is_keyed() && Pseudonymiser::looks_pseudonymous(id) {
        id.to_string()
    } else {
        s.0.pseudo.apply(id)
    }
}

/// What is stored about a user (`id`: the raw id, or its pseudonym).
#[utoipa::path(get, path = "/v1/users/{id}", params(("id" = String, Path)),
    responses((status = 200, body = UserResponse)), security(("admin_key" = [])))]
async fn get_user(State(s): State<AppState>, Path(id): Path<String>) -> Reply<UserResponse> {
    let user = pseudonym_of(&s, &id);
    let data = s.0.store.user(&user).await?;
    Ok(Json(UserResponse {
        user,
        events: data
            .events
            .into_iter()
            .map(|e| StoredEventBody {
                event_id: e.event.event_id,
                item_id: e.event.item_id,
                kind: e.event.kind,
                timestamp: e.event.timestamp,
                rec_id: e.event.rec_id,
            })
            .collect(),
        impressions: data.impressions,
    }))
}

/// Erases a user (`id`: the raw id, or its pseudonym): their events and impressions, their
/// history from `--data`; a tombstone keeps exports, reloads and later impressions from
/// bringing any of it back.
#[utoipa::path(delete, path = "/v1/users/{id}", params(("id" = String, Path)),
    responses((status = 200, body = DeleteUserResponse)), security(("admin_key" = [])))]
async fn delete_user(
    State(s): State<AppState>,
    Path(id): Path<String>,
) -> Reply<DeleteUserResponse> {
    let user = pseudonym_of(&s, &id);
    let Outcome::Deleted(n) = s.0.store.write(Write::DeleteUser(user.clone())).await? else {
        return Err(ServeError::Model(
            "the store answered a delete oddly".into(),
        ));
    };
    // The tombstone is committed; the in-memory history from --data goes too.
    s.0.engine.forget(user.clone()).await?;
    Ok(Json(DeleteUserResponse {
        user,
        deleted_rows: n,
    }))
}

/// Loads new checkpoints beside the running ones, validates them (load + smoke forward pass,
/// with every item added while serving), and swaps them in between two requests. On failure
/// the old models keep serving and the reply says why.
#[utoipa::path(post, path = "/admin/reload", request_body = ReloadRequest,
    responses((status = 200, body = ReloadResponse), (status = 422, body = ErrorBody)),
    security(("admin_key" = [])))]
async fn reload(
    State(s): State<AppState>,
    body: Option<Json<ReloadRequest>>,
) -> Reply<ReloadResponse> {
    let req = body.map(|Json(r)| r).unwrap_or_default();
    let started = Instant::now();
    let root = &s.0.model_root;
    let confined = |p: Option<String>| p.map(|p| confine(root, &p)).transpose();
    let (classifier, interest, plan, data) = (
        confined(req.classifier)?,
        confined(req.interest)?,
        confined(req.plan)?,
        confined(req.data)?,
    );
    let mut current = s.0.models.lock().await;
    let (old, old_data) = &*current;
    let paths = ModelPaths {
        classifier: classifier.unwrap_or_else(|| old.classifier.clone()),
        interest: interest.unwrap_or_else(|| old.interest.clone()),
        plan: plan.or_else(|| old.plan.clone()),
        precision: old.precision,
        device: old.device.clone(),
    };
    let data = data.unwrap_or_else(|| old_data.clone());
    let added = s.0.store.items().await?;
    let known_seq = added.iter().map(|i| i.seq).max().unwrap_or(0);
    let erased: std::collections::HashSet<String> = s.0.store.erased().await?.into_iter().collect();
    let (p, d, pseudo, threshold) = (
        paths.clone(),
        data.clone(),
        s.0.pseudo.clone(),
        s.0.threshold,
    );
    let loaded = tokio::task::spawn_blocking(move || {
        Models::load(&p, &d, &pseudo, threshold, &added, &erased)
    })
    .await
    .map_err(|e| ServeError::model("", e))?;
    let models = loaded.map_err(|e| ServeError::Reload(Box::new(e)))?;
    let mut info = s.0.engine.swap(models).await?;
    // Items acknowledged by /v1/items while the new models loaded went into the old ones;
    // the new ones get them here (later ones reach the new models directly).
    let late: Vec<NewItem> =
        s.0.store
            .items()
            .await?
            .into_iter()
            .filter(|i| i.seq > known_seq)
            .collect();
    if !late.is_empty() {
        s.0.engine.add_stored(late).await?;
        info = s.0.engine.info().await?;
    }
    *current = (paths, data);
    s.0.metrics.reload();
    Ok(Json(ReloadResponse {
        reloaded: true,
        info: serde_json::to_value(info.relative_to(root)).unwrap_or_default(),
        seconds: started.elapsed().as_secs_f64(),
    }))
}

/// A reload path, canonical and under the model root (a key holder may name only what the
/// operator put there; `..` and links out of the root are resolved before the check).
fn confine(root: &std::path::Path, requested: &str) -> Result<PathBuf> {
    let full = std::path::Path::new(requested)
        .canonicalize()
        .map_err(|e| {
            ServeError::refused(
                StatusCode::UNPROCESSABLE_ENTITY,
                format!("reload failed, the previous models keep serving: {requested}"),
                e,
            )
        })?;
    if !full.starts_with(root) {
        return Err(ServeError::Request {
            status: StatusCode::FORBIDDEN,
            message: format!(
                "{requested} is outside the model root; reload takes only directories under it \
                 (serve --model-root)"
            ),
        });
    }
    Ok(full)
}

#[cfg(test)]
#[path = "routes_tests.rs"]
mod tests;
