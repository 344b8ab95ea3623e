//! OTLP ingest shared by the gRPC and HTTP receivers: decode off the runtime,
//! append each dataset's batch through the same store path as the Events API, and
//! answer with OTLP's partial-success response.
//!
//! Load shedding is the Events API's: a request holds one of the ingest permits
//! until its rows are durable, and none left (or full buffers in the store) means
//! 429 / `RESOURCE_EXHAUSTED` with a retry delay, never an unbounded queue.

pub mod grpc;
mod response;

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use quarry_ingest::otlp::{
    OtlpBatches, OtlpContext, OtlpFormat, decode_logs, decode_metrics, decode_traces, map_logs,
    map_metrics, map_traces,
};
use quarry_ingest::{IngestError, decode_body};
use tokio::sync::OwnedSemaphorePermit;

pub use response::{encode_response, json_response};

use crate::error::ApiError;
use crate::names;
use crate::state::AppState;

/// Header (HTTP) or metadata key (gRPC) sending every row of a request to one
/// dataset instead of the service's.
pub const DATASET_HEADER: &str = "x-honeycomb-dataset";

/// The three OTLP signals.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    /// `ExportTraceServiceRequest`: spans.
    Traces,
    /// `ExportLogsServiceRequest`: log records.
    Logs,
    /// `ExportMetricsServiceRequest`: metric data points.
    Metrics,
}

/// One export request as received.
pub struct Export {
    /// The environment the key chose.
    pub environment: String,
    /// Which signal the body holds.
    pub signal: Signal,
    /// The body, compressed as `content_encoding` says.
    pub body: Bytes,
    /// `Content-Encoding` of the body (HTTP only; gRPC bodies arrive decompressed).
    pub content_encoding: Option<String>,
    /// Protobuf or JSON.
    pub format: OtlpFormat,
    /// The dataset named by `x-honeycomb-dataset`, if any (not yet validated).
    pub dataset_override: Option<String>,
}

/// What an accepted export request did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Exported {
    /// Rows written (spans, span events, links, log records or data points).
    pub rows: u64,
    /// Items refused (spans, log records or data points).
    pub rejected: u64,
    /// Why the first refused row was refused.
    pub error_message: Option<String>,
}

/// Takes one ingest permit, or refuses the request as overloaded.
pub fn acquire_permit(state: &AppState) -> Result<OwnedSemaphorePermit, ApiError> {
    Arc::clone(&state.ingest_permits)
        .try_acquire_owned()
        .map_err(|_| ApiError::Overloaded("too many ingest requests in flight; retry later".into()))
}

/// Decodes, maps and durably appends one export request.
///
/// Every dataset's batch is appended concurrently (they share the WAL's group
/// commit); the request succeeds only if all of them are durable. A request
/// refused by the store may have written some datasets already, so a client's
/// retry can store those rows twice; a request has one service, and so one
/// dataset, in the common case.
pub async fn export(state: &AppState, export: Export) -> Result<Exported, ApiError> {
    let dataset_override = export
        .dataset_override
        .as_deref()
        .map(names::dataset_name)
        .transpose()?
        .map(str::to_owned);
    let store = Arc::clone(&state.store);
    let limits = state.limits;
    let environment = export.environment.clone();
    let decoded = tokio::task::spawn_blocking(move || -> Result<OtlpBatches, IngestError> {
        let body = decode_body(
            export.content_encoding.as_deref(),
            export.body,
            limits.max_body_bytes,
        )?;
        let ctx = OtlpContext {
            limits: &limits,
            now_ns: now_ns(),
            dataset_override: dataset_override.as_deref(),
        };
        let schema_of = |dataset: &str| store.schema(&environment, dataset);
        match export.signal {
            Signal::Traces => map_traces(&decode_traces(&body, export.format)?, &ctx, &schema_of),
            Signal::Logs => map_logs(&decode_logs(&body, export.format)?, &ctx, &schema_of),
            Signal::Metrics => {
                map_metrics(&decode_metrics(&body, export.format)?, &ctx, &schema_of)
            }
        }
    })
    .await
    .map_err(|error| ApiError::Internal(format!("decoding task failed: {error}")))??;

    let rows: usize = decoded.batches.iter().map(|batch| batch.rows).sum();
    let appends = decoded.batches.into_iter().map(|batch| {
        let store = &state.store;
        let environment = &export.environment;
        async move { store.append(environment, &batch.dataset, batch.batch).await }
    });
    futures::future::try_join_all(appends).await?;
    let rows = rows as u64;
    state.metrics.record_events(rows, decoded.rejected);
    Ok(Exported {
        rows,
        rejected: decoded.rejected,
        error_message: decoded.first_error,
    })
}

/// Now, in nanoseconds since the epoch.
fn now_ns() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since_epoch| {
            i64::try_from(since_epoch.as_nanos()).unwrap_or(i64::MAX)
        })
}
