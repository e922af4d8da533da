//! longtail-serve: the HTTP service, in the shape of text-embeddings-inference. An axum
//! router in front of one model thread ([`engine`]) that batches scoring requests; a durable
//! event store ([`store`]: SQLite by default, PostgreSQL for replicas) whose feedback changes
//! the next recommendation list; hot reload of checkpoints; Prometheus metrics; graceful
//! shutdown that drains requests and flushes the store.
//!
//! ```no_run
//! # async fn f(cfg: longtail_serve::ServeConfig) -> Result<(), longtail_serve::ServeError> {
//! longtail_serve::serve(cfg, std::future::pending()).await
//! # }
//! ```

#![forbid(unsafe_code)]

pub mod api;
mod backend;
pub mod engine;
pub mod error;
pub mod export;
pub mod keys;
mod listener;
pub mod metrics;
mod models;
mod queue;
mod routes;
pub mod store;

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use longtail_interest::Pseudonymiser;
use serde::Serialize;

pub use engine::{Engine, ModelPaths, Models};
pub use error::{ServeError, StoreError};
pub use keys::{KeyError, ServiceKeys};
pub use routes::{router, AppState};
pub use store::{Store, StoreUrl};

/// Request limits (all enforced before a request reaches the model thread).
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Limits {
    pub max_body_bytes: usize,
    pub max_listings: usize,
    pub max_events: usize,
    pub max_history: usize,
    pub max_k: usize,
    /// Requests waiting for or in the model thread; more are answered 429.
    pub max_concurrent_requests: usize,
    /// Token budget of one scoring batch.
    pub max_batch_tokens: usize,
    pub timeout_seconds: u64,
    /// Open sockets at most; more wait in the kernel's backlog.
    pub max_connections: usize,
    /// A client must send a request's headers within this many seconds, and an idle
    /// keep-alive socket is closed after it (slow clients cannot hold sockets).
    pub header_read_timeout_seconds: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_body_bytes: 2 << 20,
            max_listings: 256,
            max_events: 1000,
            max_history: 1000,
            max_k: 200,
            max_concurrent_requests: 512,
            max_batch_tokens: 8192,
            timeout_seconds: 30,
            max_connections: 1024,
            header_read_timeout_seconds: 15,
        }
    }
}

/// Everything `longtail serve` needs, validated by the binary.
pub struct ServeConfig {
    pub models: ModelPaths,
    pub data: PathBuf,
    pub store: StoreUrl,
    pub bind: SocketAddr,
    pub keys: ServiceKeys,
    /// The directory `/admin/reload` paths must lie under (canonical); `/info` shows paths
    /// relative to it.
    pub model_root: PathBuf,
    pub pseudonymiser: Pseudonymiser,
    /// p_tail at or above this gets the tail label (as `longtail score --threshold`).
    pub threshold: f32,
    pub limits: Limits,
}

/// Loads the models, opens the store and serves until `shutdown` resolves; then stops
/// accepting, finishes the requests in flight, commits every queued write and returns.
pub async fn serve(
    config: ServeConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    let listener = tokio::net::TcpListener::bind(config.bind)
        .await
        .map_err(|e| ServeError::startup(format!("cannot listen on {}", config.bind), e))?;
    let (state, threads) = start(config).await?;
    eprintln!(
        "longtail serve: listening on http://{}",
        listener
            .local_addr()
            .map_err(|e| ServeError::startup("", e))?
    );
    let connections = listener::ConnectionLimits {
        max_connections: state.limits().max_connections,
        header_read_timeout: Duration::from_secs(state.limits().header_read_timeout_seconds.max(1)),
        shutdown_grace: timeout(state.limits()),
    };
    let app = router(state);
    listener::serve_connections(listener, app, connections, shutdown).await;
    eprintln!("longtail serve: draining done; committing queued writes");
    threads.join();
    eprintln!("longtail serve: stopped");
    Ok(())
}

/// The background threads of a running service.
pub struct Threads {
    store: store::StoreThreads,
    model: std::thread::JoinHandle<()>,
}

impl Threads {
    /// Waits for the threads; returns once every handle to them ([`AppState`]) is dropped.
    pub fn join(self) {
        self.store.join();
        let _ = self.model.join();
    }
}

/// Opens the store, loads the models (with the items the store holds) and starts the model
/// thread: the state a [`router`] serves.
pub async fn start(config: ServeConfig) -> Result<(AppState, Threads), ServeError> {
    let metrics = Arc::new(metrics::Metrics::default());
    let m = metrics.clone();
    // Off the async threads: the PostgreSQL client blocks on its own runtime.
    let url = config.store.clone();
    let (store, store_threads) =
        tokio::task::spawn_blocking(move || Store::open(&url, move || m.commit()))
            .await
            .map_err(|e| ServeError::startup("", e))??;
    let added = store.items().await?;
    let erased: std::collections::HashSet<String> = store.erased().await?.into_iter().collect();
    let pseudo = Arc::new(config.pseudonymiser);
    let (paths, data, threshold) = (config.models.clone(), config.data.clone(), config.threshold);
    let p = pseudo.clone();
    let models = tokio::task::spawn_blocking(move || {
        Models::load(&paths, &data, &p, threshold, &added, &erased)
    })
    .await
    .map_err(|e| ServeError::startup("", e))??;
    eprintln!(
        "longtail serve: {} items ({} added while serving), {} users in the data; store {}",
        models.info.items,
        models.info.added_items,
        models.info.users_in_data,
        config.store.redacted()
    );
    let (engine, model_thread) =
        Engine::start(models, config.limits.max_batch_tokens, metrics.clone())?;
    let state = AppState::new(routes::StateParts {
        engine,
        store,
        metrics,
        pseudo,
        models: config.models,
        data: config.data,
        threshold: config.threshold,
        keys: config.keys,
        model_root: config.model_root,
        limits: config.limits,
    });
    Ok((
        state,
        Threads {
            store: store_threads,
            model: model_thread,
        },
    ))
}

/// Resolves on SIGTERM or Ctrl-C.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
    eprintln!("longtail serve: shutdown requested");
}

/// Seconds since the Unix epoch.
pub(crate) fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

pub(crate) fn timeout(limits: &Limits) -> Duration {
    Duration::from_secs(limits.timeout_seconds.max(1))
}
