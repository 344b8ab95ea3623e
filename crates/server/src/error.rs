//! The crate's one error type and the only place errors become HTTP statuses.
//!
//! Every error of the engine crates (ingest, store, query) and every axum rejection
//! is converted here, so the status a client sees for a given failure is decided in
//! one table (see the tests at the end).

use axum::Json;
use axum::extract::rejection::{BytesRejection, JsonRejection, PathRejection};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use quarry_engine::QueryError;
use quarry_ingest::IngestError;
use quarry_segment_store::StoreError;
use serde_json::json;

/// Seconds a client should wait before retrying an overloaded request.
const RETRY_AFTER_SECS: &str = "1";
/// The same wait, for gRPC's `RetryInfo`.
pub const RETRY_DELAY: std::time::Duration = std::time::Duration::from_secs(1);
/// What a client sees for a 500; the detail goes to the log only.
const INTERNAL_MESSAGE: &str = "internal server error";

/// Everything that can go wrong in the server, at startup or on a request.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// Malformed or invalid input (400).
    #[error("{0}")]
    BadRequest(String),
    /// Missing or unknown `X-Honeycomb-Team` key (401).
    #[error("unknown API key")]
    Unauthorized,
    /// No such dataset or route (404).
    #[error("{0}")]
    NotFound(String),
    /// The request conflicts with existing state, e.g. a name taken (409).
    #[error("{0}")]
    Conflict(String),
    /// The route exists but not with this method (405).
    #[error("method not allowed")]
    MethodNotAllowed,
    /// A body or event beyond its size limit (413).
    #[error("{0}")]
    PayloadTooLarge(String),
    /// An unsupported content encoding or content type (415).
    #[error("{0}")]
    UnsupportedMediaType(String),
    /// The server sheds load; the client should retry (429).
    #[error("{0}")]
    Overloaded(String),
    /// The environment is over one of its quotas (429 with the wait it needs).
    #[error("{message}")]
    QuotaExceeded {
        /// What is over which limit.
        message: String,
        /// How long until a retry can succeed.
        retry_after: std::time::Duration,
    },
    /// The server is shutting down and takes no more work (503).
    #[error("{0}")]
    Unavailable(String),
    /// This node's role does not do that; another node does (421).
    #[error("{0}")]
    WrongRole(String),
    /// A failure that is not the client's fault (500); the message is logged, not sent.
    #[error("{0}")]
    Internal(String),
    /// An invalid configuration file or flag (startup only).
    #[error("configuration: {0}")]
    Config(String),
    /// The server could not start or stop cleanly (startup and shutdown only).
    #[error("{0}")]
    Startup(String),
}

impl ApiError {
    /// The HTTP status of this error.
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::Unauthorized => StatusCode::UNAUTHORIZED,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::Conflict(_) => StatusCode::CONFLICT,
            ApiError::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::Overloaded(_) | ApiError::QuotaExceeded { .. } => {
                StatusCode::TOO_MANY_REQUESTS
            }
            ApiError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::WrongRole(_) => StatusCode::MISDIRECTED_REQUEST,
            ApiError::Internal(_) | ApiError::Config(_) | ApiError::Startup(_) => {
                StatusCode::INTERNAL_SERVER_ERROR
            }
        }
    }

    /// An error for an axum rejection, keeping its status and its message.
    fn from_rejection(status: StatusCode, message: String) -> ApiError {
        match status {
            StatusCode::PAYLOAD_TOO_LARGE => ApiError::PayloadTooLarge(message),
            StatusCode::UNSUPPORTED_MEDIA_TYPE => ApiError::UnsupportedMediaType(message),
            StatusCode::NOT_FOUND => ApiError::NotFound(message),
            status if status.is_client_error() => ApiError::BadRequest(message),
            _ => ApiError::Internal(message),
        }
    }
}

impl ApiError {
    /// What the client is told: the error itself, or a generic message for a
    /// server error (whose detail is logged here instead).
    pub fn client_message(&self) -> String {
        // Unavailable says what the client can do (retry); the rest of the server
        // errors are ours, logged here and not shown.
        if self.status().is_server_error() && !matches!(self, ApiError::Unavailable(_)) {
            tracing::error!(error = %self, "request failed");
            INTERNAL_MESSAGE.to_owned()
        } else {
            self.to_string()
        }
    }

    /// How long a refused client should wait before retrying (gRPC `RetryInfo`).
    pub fn retry_delay(&self) -> std::time::Duration {
        match self {
            ApiError::QuotaExceeded { retry_after, .. } => *retry_after,
            _ => RETRY_DELAY,
        }
    }

    /// The `Retry-After` value of an overloaded or unavailable response.
    pub fn retry_after(&self) -> Option<HeaderValue> {
        if let ApiError::QuotaExceeded { retry_after, .. } = self {
            // Whole seconds, rounded up: a client retrying sooner is refused again.
            let seconds = retry_after.as_secs_f64().ceil().max(1.0) as u64;
            return Some(HeaderValue::from(seconds));
        }
        matches!(
            self.status(),
            StatusCode::TOO_MANY_REQUESTS | StatusCode::SERVICE_UNAVAILABLE
        )
        .then(|| HeaderValue::from_static(RETRY_AFTER_SECS))
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        let message = self.client_message();
        let mut response = (status, Json(json!({ "error": message }))).into_response();
        if let Some(retry_after) = self.retry_after() {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, retry_after);
        }
        response
    }
}

impl From<IngestError> for ApiError {
    fn from(error: IngestError) -> Self {
        let message = error.to_string();
        match error {
            IngestError::EmptyBody
            | IngestError::MalformedBody(_)
            | IngestError::TooManyFields { .. }
            | IngestError::ColumnBudgetExceeded { .. }
            | IngestError::InvalidTime(_)
            | IngestError::InvalidSampleRate(_) => ApiError::BadRequest(message),
            IngestError::UnsupportedEncoding(_)
            | IngestError::UnsupportedContentType(_)
            | IngestError::UnsupportedOtlpContentType(_) => ApiError::UnsupportedMediaType(message),
            IngestError::BodyTooLarge { .. } | IngestError::EventTooLarge { .. } => {
                ApiError::PayloadTooLarge(message)
            }
            IngestError::Arrow(_) => ApiError::Internal(message),
        }
    }
}

impl From<crate::pipeline::PipelineError> for ApiError {
    fn from(error: crate::pipeline::PipelineError) -> Self {
        use crate::pipeline::PipelineError;
        let message = error.to_string();
        match error.retry_after() {
            Some(retry_after) => ApiError::QuotaExceeded {
                message,
                retry_after,
            },
            None => match error {
                PipelineError::Invalid(_) => ApiError::BadRequest(message),
                PipelineError::Conflict => ApiError::Conflict(message),
                PipelineError::Sampling(crate::pipeline::sampling::SamplingError::Full {
                    ..
                }) => ApiError::Overloaded(message),
                _ => ApiError::Internal(message),
            },
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(error: StoreError) -> Self {
        let message = error.to_string();
        match error {
            StoreError::Overloaded(_) => ApiError::Overloaded(message),
            StoreError::InvalidBatch(_) | StoreError::InvalidName { .. } => {
                ApiError::BadRequest(message)
            }
            StoreError::Wal { .. }
            | StoreError::WalCorrupt { .. }
            | StoreError::ObjectStore(_)
            | StoreError::Manifest(_)
            | StoreError::Compaction(_)
            | StoreError::Parquet(_)
            | StoreError::Arrow(_) => ApiError::Internal(message),
            StoreError::ShutDown => ApiError::Unavailable(message),
            StoreError::NotLeaseHolder => ApiError::Conflict(message),
        }
    }
}

impl From<QueryError> for ApiError {
    fn from(error: QueryError) -> Self {
        let message = error.to_string();
        match error {
            QueryError::InvalidQuery(_)
            | QueryError::InvalidSpec(_)
            | QueryError::TooComplex(_) => ApiError::BadRequest(message),
            QueryError::DatasetNotFound(_) => ApiError::NotFound(message),
            QueryError::ResourcesExhausted(_) => ApiError::Overloaded(message),
            QueryError::WorkerUnreachable(_) | QueryError::IngestUnavailable(_) => {
                ApiError::Unavailable(message)
            }
            QueryError::Execution(_) => ApiError::Internal(message),
            QueryError::RollupNotFound(_) => ApiError::NotFound(message),
            QueryError::RollupExists(_) => ApiError::Conflict(message),
        }
    }
}

impl From<JsonRejection> for ApiError {
    fn from(rejection: JsonRejection) -> Self {
        ApiError::from_rejection(rejection.status(), rejection.body_text())
    }
}

impl From<PathRejection> for ApiError {
    fn from(rejection: PathRejection) -> Self {
        ApiError::from_rejection(rejection.status(), rejection.body_text())
    }
}

impl From<BytesRejection> for ApiError {
    fn from(rejection: BytesRejection) -> Self {
        ApiError::from_rejection(rejection.status(), rejection.body_text())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status_of(error: impl Into<ApiError>) -> u16 {
        error.into().status().as_u16()
    }

    #[test]
    fn ingest_errors_map_to_statuses() {
        assert_eq!(status_of(IngestError::EmptyBody), 400);
        assert_eq!(status_of(IngestError::MalformedBody("x".into())), 400);
        assert_eq!(
            status_of(IngestError::UnsupportedEncoding("br".into())),
            415
        );
        assert_eq!(
            status_of(IngestError::UnsupportedContentType("text/xml".into())),
            415
        );
        assert_eq!(status_of(IngestError::BodyTooLarge { limit: 10 }), 413);
        assert_eq!(
            status_of(IngestError::EventTooLarge {
                size: 20,
                limit: 10
            }),
            413
        );
        assert_eq!(
            status_of(IngestError::TooManyFields { count: 3, limit: 2 }),
            400
        );
        assert_eq!(
            status_of(IngestError::ColumnBudgetExceeded { limit: 2 }),
            400
        );
        assert_eq!(status_of(IngestError::InvalidTime("yesterday".into())), 400);
        assert_eq!(status_of(IngestError::InvalidSampleRate("-1".into())), 400);
        let arrow = arrow::error::ArrowError::ComputeError("boom".into());
        assert_eq!(status_of(IngestError::Arrow(arrow)), 500);
    }

    #[test]
    fn store_errors_map_to_statuses() {
        assert_eq!(status_of(StoreError::Overloaded("full".into())), 429);
        let conform = quarry_schema::ConformError::MissingTimestamp;
        assert_eq!(status_of(StoreError::InvalidBatch(conform)), 400);
        assert_eq!(
            status_of(StoreError::InvalidName {
                name: "a/b".into(),
                reason: "slash"
            }),
            400
        );
        assert_eq!(status_of(StoreError::Manifest("lost".into())), 500);
        assert_eq!(status_of(StoreError::ShutDown), 503);
        let io = std::io::Error::other("disk");
        assert_eq!(
            status_of(StoreError::Wal {
                path: "w".into(),
                source: io
            }),
            500
        );
    }

    #[test]
    fn query_errors_map_to_statuses() {
        assert_eq!(status_of(QueryError::InvalidQuery("SELEC".into())), 400);
        assert_eq!(status_of(QueryError::TooComplex("deep".into())), 400);
        assert_eq!(status_of(QueryError::DatasetNotFound("nope".into())), 404);
        assert_eq!(
            status_of(QueryError::ResourcesExhausted("memory".into())),
            429
        );
        assert_eq!(status_of(QueryError::Execution("boom".into())), 500);
        assert_eq!(
            status_of(QueryError::WorkerUnreachable("worker gone".into())),
            503
        );
    }

    #[tokio::test]
    async fn responses_are_json_and_overload_says_when_to_retry() {
        let response = ApiError::Overloaded("busy".into()).into_response();
        assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(response.headers()[header::RETRY_AFTER], "1");
        let body = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .unwrap();
        assert_eq!(body, r#"{"error":"busy"}"#);
    }

    #[tokio::test]
    async fn internal_details_stay_in_the_log() {
        let response = ApiError::Internal("disk /var/secret failed".into()).into_response();
        assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
        let body = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .unwrap();
        assert_eq!(body, r#"{"error":"internal server error"}"#);
    }
}
