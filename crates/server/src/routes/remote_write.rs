//! Prometheus remote write: `POST /api/v1/write` (v1, snappy-compressed
//! protobuf). Prometheus's `remote_write` sends here with the API key in
//! `headers: {X-Honeycomb-Team: …}`; the samples become metric rows as OTLP
//! metrics do (quarry_ingest::remote_write), acknowledged with 204 once durable.
//!
//! Errors keep remote write's contract: 4xx for a request that can never
//! succeed (Prometheus drops it), 429 and 5xx for one worth retrying.

use axum::body::Bytes;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::{HeaderMap, StatusCode, header};

use crate::auth::Environment;
use crate::error::ApiError;
use crate::ingest_service::{IngestRequest, Payload};
use crate::otlp::DATASET_HEADER;
use crate::routes::otlp::header_text;
use crate::state::AppState;

/// The `proto` of remote write 2.0's content type, which Quarry does not read.
const REMOTE_WRITE_V2: &str = "io.prometheus.write.v2.request";

/// `POST /api/v1/write`.
pub async fn write(
    State(state): State<AppState>,
    Environment(environment): Environment,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<StatusCode, ApiError> {
    check_content(&headers)?;
    let admission = state.ingest.admit()?;
    let request = IngestRequest {
        environment,
        body: body?,
        // Snappy is remote write's framing, undone by its decoder.
        content_encoding: None,
        payload: Payload::PrometheusRemoteWrite {
            dataset_override: header_text(&headers, DATASET_HEADER).map(str::to_owned),
        },
    };
    state.ingest.ingest(&admission, request).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Refuses bodies other than remote write 1.0's protobuf in snappy.
fn check_content(headers: &HeaderMap) -> Result<(), ApiError> {
    if let Some(encoding) = header_text(headers, header::CONTENT_ENCODING.as_str())
        && !encoding.eq_ignore_ascii_case("snappy")
    {
        return Err(ApiError::UnsupportedMediaType(format!(
            "unsupported Content-Encoding {encoding:?} for remote write: send snappy"
        )));
    }
    let content_type = header_text(headers, header::CONTENT_TYPE.as_str()).unwrap_or_default();
    let lowered = content_type.to_ascii_lowercase();
    if !lowered.is_empty() && !lowered.starts_with("application/x-protobuf") {
        return Err(ApiError::UnsupportedMediaType(format!(
            "unsupported Content-Type {content_type:?} for remote write: send application/x-protobuf"
        )));
    }
    if lowered.contains(REMOTE_WRITE_V2) {
        return Err(ApiError::UnsupportedMediaType(
            "remote write 2.0 (io.prometheus.write.v2.Request) is not supported: configure protobuf_message: prometheus.WriteRequest".into(),
        ));
    }
    Ok(())
}
