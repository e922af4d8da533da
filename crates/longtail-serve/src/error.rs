//! Errors of the store and the service, and how each becomes an HTTP reply. An error caused
//! by another one (a library's, the file system's, a thread's) keeps it as its typed
//! `source()`; its message is the same text the service always answered.

use std::sync::Arc;

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use longtail_infer::InferError;
use longtail_interest::InterestError;
use longtail_rec::KnobError;
use serde::Serialize;

#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    #[error("store URL {0}")]
    Url(String),
    #[error("store: {0}")]
    Backend(String),
    /// A write broke a unique key (an `event_id` or `item_id` already stored): recognised by
    /// the database's own code (SQLite's extended result code, PostgreSQL's SQLSTATE 23505),
    /// never by its message text.
    #[error("store: {0}")]
    UniqueViolation(String),
    #[error("store: stored data is damaged: {0}")]
    Corrupt(String),
    #[error("store: cannot start a thread: {0}")]
    Thread(String),
    #[error("store: closed (the service is shutting down)")]
    Closed,
}

impl StoreError {
    /// A write broke a unique key (see [`StoreError::UniqueViolation`]).
    pub fn is_unique_violation(&self) -> bool {
        matches!(self, Self::UniqueViolation(_))
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The request is wrong: 400 (or 404/422 by `status`).
    #[error("{message}")]
    Request { status: StatusCode, message: String },
    #[error("missing or wrong API key")]
    Unauthorized,
    #[error("this route needs --admin-key, which the server was started without")]
    AdminDisabled,
    #[error("the inference queue is full; retry later")]
    Overloaded,
    #[error("the model is not loaded yet")]
    NotReady,
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A model failure told by a message alone.
    #[error("model: {0}")]
    Model(String),
    /// A startup (or offline command) failure told by a message alone.
    #[error("{0}")]
    Startup(String),
    /// The classifier failed: loading, its smoke test, scoring new items.
    #[error("{}", shown(.stage, .context, .source))]
    Infer {
        stage: Stage,
        context: String,
        #[source]
        source: InferError,
    },
    /// One scoring batch failed: every request of the batch gets this, sharing the error.
    #[error("model: {0}")]
    Batch(#[from] Arc<InferError>),
    /// The recommender or the text encoder failed, or refused a request's items.
    #[error("{}", shown(.stage, .context, .source))]
    Interest {
        stage: Stage,
        context: String,
        #[source]
        source: InterestError,
    },
    /// A file (a checkpoint's, the data's, an export's) could not be read, hashed or written.
    #[error("{}", shown(.stage, .context, .source))]
    Fs {
        stage: Stage,
        context: String,
        #[source]
        source: longtail_fs::FsError,
    },
    /// An I/O failure: a thread that cannot start, a socket, a file.
    #[error("{}", shown(.stage, .context, .source))]
    Io {
        stage: Stage,
        context: String,
        #[source]
        source: std::io::Error,
    },
    /// Blocking work (a model load, the store's opening) ended without an answer.
    #[error("{}", shown(.stage, .context, .source))]
    Join {
        stage: Stage,
        context: String,
        #[source]
        source: tokio::task::JoinError,
    },
    /// A CSV file (an export's base interactions) could not be read.
    #[error("{}", shown(.stage, .context, .source))]
    Csv {
        stage: Stage,
        context: String,
        #[source]
        source: csv::Error,
    },
    /// The request's tail knob is invalid (400).
    #[error("{0}")]
    Knob(#[from] KnobError),
    /// A reload failed; the previous models keep serving (422).
    #[error("reload failed, the previous models keep serving: {0}")]
    Reload(#[source] Box<ServeError>),
}

/// Where an error with a typed source arose: it sets the message's prefix, the HTTP status
/// and the failure kind, as [`ServeError::Model`], [`ServeError::Startup`] and
/// [`ServeError::Request`] do for errors told by a message alone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// Loading or running the models: `model: …`, 500, kind `model`.
    Model,
    /// Starting the service, or an offline command: 500, kind `startup`.
    Startup,
    /// The models refused what the request asked: this status, kind `request`.
    Request(StatusCode),
}

impl Stage {
    fn status(self) -> StatusCode {
        match self {
            Self::Model | Self::Startup => StatusCode::INTERNAL_SERVER_ERROR,
            Self::Request(status) => status,
        }
    }

    fn kind(self) -> &'static str {
        match self {
            Self::Model => "model",
            Self::Startup => "startup",
            Self::Request(_) => "request",
        }
    }
}

/// `[model: ][CONTEXT: ]SOURCE`.
fn shown(stage: &Stage, context: &str, source: &dyn std::fmt::Display) -> String {
    let prefix = if *stage == Stage::Model {
        "model: "
    } else {
        ""
    };
    if context.is_empty() {
        format!("{prefix}{source}")
    } else {
        format!("{prefix}{context}: {source}")
    }
}

/// An error the service wraps as the typed source of a [`ServeError`].
pub trait Cause: Sized {
    /// The [`ServeError`] this error causes at `stage`, its message prefixed by `context`
    /// (none when empty).
    fn at(self, stage: Stage, context: String) -> ServeError;
}

macro_rules! cause {
    ($($ty:ty => $variant:ident),* $(,)?) => {$(
        impl Cause for $ty {
            fn at(self, stage: Stage, context: String) -> ServeError {
                ServeError::$variant { stage, context, source: self }
            }
        }
    )*};
}

cause! {
    InferError => Infer,
    InterestError => Interest,
    longtail_fs::FsError => Fs,
    std::io::Error => Io,
    tokio::task::JoinError => Join,
    csv::Error => Csv,
}

pub type Result<T, E = ServeError> = std::result::Result<T, E>;

impl ServeError {
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::Request {
            status: StatusCode::BAD_REQUEST,
            message: message.into(),
        }
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::Request {
            status: StatusCode::NOT_FOUND,
            message: message.into(),
        }
    }

    /// A model failure caused by `source`: `model: CONTEXT: SOURCE` (500).
    pub fn model(context: impl Into<String>, source: impl Cause) -> Self {
        source.at(Stage::Model, context.into())
    }

    /// A startup failure caused by `source`: `CONTEXT: SOURCE` (500).
    pub fn startup(context: impl Into<String>, source: impl Cause) -> Self {
        source.at(Stage::Startup, context.into())
    }

    /// A request the models refuse, for the reason `source` gives: `CONTEXT: SOURCE`.
    pub fn refused(status: StatusCode, context: impl Into<String>, source: impl Cause) -> Self {
        source.at(Stage::Request(status), context.into())
    }

    pub fn status(&self) -> StatusCode {
        match self {
            Self::Request { status, .. } => *status,
            Self::Unauthorized => StatusCode::UNAUTHORIZED,
            Self::AdminDisabled => StatusCode::FORBIDDEN,
            Self::Overloaded => StatusCode::TOO_MANY_REQUESTS,
            Self::NotReady => StatusCode::SERVICE_UNAVAILABLE,
            Self::Store(StoreError::Closed) => StatusCode::SERVICE_UNAVAILABLE,
            Self::Store(_) | Self::Model(_) | Self::Startup(_) | Self::Batch(_) => {
                StatusCode::INTERNAL_SERVER_ERROR
            }
            Self::Knob(_) => StatusCode::BAD_REQUEST,
            Self::Reload(_) => StatusCode::UNPROCESSABLE_ENTITY,
            Self::Infer { stage, .. }
            | Self::Interest { stage, .. }
            | Self::Fs { stage, .. }
            | Self::Io { stage, .. }
            | Self::Join { stage, .. }
            | Self::Csv { stage, .. } => stage.status(),
        }
    }

    /// The failure kind in metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Request { .. } | Self::Knob(_) | Self::Reload(_) => "request",
            Self::Unauthorized | Self::AdminDisabled => "auth",
            Self::Overloaded => "overloaded",
            Self::NotReady => "not_ready",
            Self::Store(_) => "store",
            Self::Model(_) | Self::Batch(_) => "model",
            Self::Startup(_) => "startup",
            Self::Infer { stage, .. }
            | Self::Interest { stage, .. }
            | Self::Fs { stage, .. }
            | Self::Io { stage, .. }
            | Self::Join { stage, .. }
            | Self::Csv { stage, .. } => stage.kind(),
        }
    }
}

/// The error body every route answers with.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    pub error: String,
    /// `request`, `auth`, `overloaded`, `not_ready`, `store` or `model`.
    pub kind: String,
}

/// The failure kind an error reply carries as a response extension, for the metrics layer.
#[derive(Debug, Clone, Copy)]
pub struct FailureKind(pub &'static str);

impl IntoResponse for ServeError {
    fn into_response(self) -> Response {
        let kind = self.kind();
        let body = ErrorBody {
            error: self.to_string(),
            kind: kind.to_string(),
        };
        let mut r = (self.status(), Json(body)).into_response();
        r.extensions_mut().insert(FailureKind(kind));
        r
    }
}

#[cfg(test)]
mod tests {
    use std::error::Error as _;

    use super::*;

    #[test]
    fn a_typed_source_keeps_the_message_status_and_kind() {
        let e = ServeError::model("ckpt", InferError::Invalid("bad weights".into()));
        assert_eq!(e.to_string(), "model: ckpt: bad weights");
        assert_eq!(
            (e.status(), e.kind()),
            (StatusCode::INTERNAL_SERVER_ERROR, "model")
        );
        let source = e.source().and_then(|s| s.downcast_ref::<InferError>());
        assert!(matches!(source, Some(InferError::Invalid(_))), "{e:?}");

        let e = ServeError::startup("", std::io::Error::other("no port"));
        assert_eq!(e.to_string(), "no port");
        assert_eq!(e.kind(), "startup");
        assert!(e.source().unwrap().is::<std::io::Error>());

        let refused = ServeError::refused(
            StatusCode::BAD_REQUEST,
            "",
            InterestError::invalid("dimension"),
        );
        assert_eq!(refused.to_string(), "dimension");
        assert_eq!(
            (refused.status(), refused.kind()),
            (StatusCode::BAD_REQUEST, "request")
        );

        // A failed reload wraps the load's error; the chain reaches the library's.
        let e = ServeError::Reload(Box::new(ServeError::model(
            "",
            InterestError::invalid("no index"),
        )));
        assert_eq!(
            e.to_string(),
            "reload failed, the previous models keep serving: model: no index"
        );
        assert_eq!(
            (e.status(), e.kind()),
            (StatusCode::UNPROCESSABLE_ENTITY, "request")
        );
        let inner = e.source().unwrap().source().unwrap();
        assert!(inner.is::<InterestError>());

        let batch = ServeError::from(Arc::new(InferError::Invalid("oom".into())));
        assert_eq!(batch.to_string(), "model: oom");
        assert_eq!(batch.kind(), "model");

        let knob = ServeError::from(KnobError::Both);
        assert_eq!(knob.status(), StatusCode::BAD_REQUEST);
        assert!(knob.source().unwrap().is::<KnobError>());
    }
}
