//! Errors of the store and the service, and how each becomes an HTTP reply.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
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
    #[error("model: {0}")]
    Model(String),
    #[error("{0}")]
    Startup(String),
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

    pub fn status(&self) -> StatusCode {
        match self {
            Self::Request { status, .. } => *status,
            Self::Unauthorized => StatusCode::UNAUTHORIZED,
            Self::AdminDisabled => StatusCode::FORBIDDEN,
            Self::Overloaded => StatusCode::TOO_MANY_REQUESTS,
            Self::NotReady => StatusCode::SERVICE_UNAVAILABLE,
            Self::Store(StoreError::Closed) => StatusCode::SERVICE_UNAVAILABLE,
            Self::Store(_) | Self::Model(_) | Self::Startup(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The failure kind in metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Request { .. } => "request",
            Self::Unauthorized | Self::AdminDisabled => "auth",
            Self::Overloaded => "overloaded",
            Self::NotReady => "not_ready",
            Self::Store(_) => "store",
            Self::Model(_) => "model",
            Self::Startup(_) => "startup",
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
