//! The one ingest path: every transport (the Events API, OTLP/HTTP, OTLP/gRPC and,
//! later, stream consumers) hands an [`IngestRequest`] for an environment to the
//! [`IngestService`], which admits it, decodes it off the async runtime, appends
//! its rows durably and reports what happened to each item.
//!
//! Admission: a request holds one of a fixed number of permits from before its
//! body is read until its rows are durable; with none left it is refused at once
//! (429 / `RESOURCE_EXHAUSTED`), so memory under overload is bounded by the
//! permits times the body limit instead of growing with a queue. The store's own
//! buffer limit refuses the same way.
//!
//! Between decoding and the WAL, the environment's [`Pipeline`] applies its
//! quotas (bytes before decoding, events after) and redaction rules, and counts
//! usage; see docs/pipeline.md.
//!
//! Transports only translate: their framing and headers into an [`IngestRequest`],
//! and an [`IngestOutcome`] (or an [`ApiError`]) into their response.

use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use quarry_ingest::otlp::{
    DatasetBatch, OtlpContext, OtlpFormat, decode_logs, decode_metrics, decode_traces, map_logs,
    map_metrics, map_traces,
};
use quarry_ingest::remote_write::{decode_write_request, to_otlp};
use quarry_ingest::{
    DecodeContext, EventDefaults, EventStatus, Limits, decode_batch, decode_body,
    decode_single_event,
};
use quarry_schema::SharedClock;
use quarry_segment_store::Store;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::config::Role;
use crate::error::ApiError;
use crate::metrics::ApiMetrics;
use crate::names;
use crate::pipeline::{Pipeline, batch_bytes};

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

/// What a request's body holds, and where its rows go.
#[derive(Debug, Clone)]
pub enum Payload {
    /// One Honeycomb event (`POST /1/events/{dataset}`): a JSON or msgpack object.
    SingleEvent {
        /// The dataset (validated again here).
        dataset: String,
        /// `Content-Type` of the body.
        content_type: Option<String>,
        /// Event time and sample rate from the transport's headers.
        defaults: EventDefaults,
    },
    /// Honeycomb events (`POST /1/batch/{dataset}`): an array of events.
    EventBatch {
        /// The dataset (validated again here).
        dataset: String,
        /// `Content-Type` of the body.
        content_type: Option<String>,
    },
    /// An OTLP export request; each row goes to its service's dataset.
    Otlp {
        /// Which signal the body holds.
        signal: Signal,
        /// Protobuf or JSON.
        format: OtlpFormat,
        /// A dataset for every row instead of the services' (not yet validated).
        dataset_override: Option<String>,
    },
    /// A Prometheus remote write request (snappy-compressed protobuf); its
    /// samples are stored as OTLP metric points, each in its `job`'s dataset.
    PrometheusRemoteWrite {
        /// A dataset for every row instead of the jobs' (not yet validated).
        dataset_override: Option<String>,
    },
}

impl Payload {
    /// The payload's label on `/metrics`.
    pub fn label(&self) -> &'static str {
        match self {
            Payload::SingleEvent { .. } => "event",
            Payload::EventBatch { .. } => "batch",
            Payload::Otlp {
                signal: Signal::Traces,
                ..
            } => "otlp_traces",
            Payload::Otlp {
                signal: Signal::Logs,
                ..
            } => "otlp_logs",
            Payload::Otlp {
                signal: Signal::Metrics,
                ..
            } => "otlp_metrics",
            Payload::PrometheusRemoteWrite { .. } => "prometheus_remote_write",
        }
    }
}

/// One request as a transport received it.
#[derive(Debug, Clone)]
pub struct IngestRequest {
    /// The environment the request's key chose.
    pub environment: String,
    /// The body, compressed as `content_encoding` says.
    pub body: Bytes,
    /// `gzip`, `deflate`, `zstd` or none.
    pub content_encoding: Option<String>,
    /// What the body holds.
    pub payload: Payload,
}

/// What an admitted request did. Every row counted in `rows` is durable.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct IngestOutcome {
    /// Rows written (events, spans, span events, links, log records or points).
    pub rows: u64,
    /// Items refused (events, spans, log records or data points).
    pub rejected: u64,
    /// Each event's status in request order, for the Events API's payloads (OTLP
    /// reports counts only).
    pub items: Vec<EventStatus>,
    /// Why the first refused item was refused.
    pub first_error: Option<String>,
}

/// Proof that a request was admitted: hold it until the request's rows are durable.
#[derive(Debug)]
pub struct Admission {
    _permit: OwnedSemaphorePermit,
}

/// Decodes, admits and durably appends ingest requests of every transport.
#[derive(Clone)]
pub struct IngestService {
    store: Arc<Store>,
    limits: Limits,
    permits: Arc<Semaphore>,
    metrics: Arc<ApiMetrics>,
    clock: SharedClock,
    /// Why every request is refused, on a node whose role takes no writes.
    refusal: Option<String>,
    /// Quotas, redaction and usage, when the server has a pipeline.
    pipeline: Option<Arc<Pipeline>>,
}

/// A request decoded by [`IngestService::prepare`], not yet written.
pub struct Prepared {
    decoded: Decoded,
    body_bytes: u64,
    payload: &'static str,
}

impl Prepared {
    /// Rows the request decoded to.
    pub fn rows(&self) -> u64 {
        self.decoded
            .batches
            .iter()
            .map(|batch| batch.rows as u64)
            .sum()
    }

    /// Items the request's decoder refused.
    pub fn rejected(&self) -> u64 {
        self.decoded.rejected
    }

    /// Why the first refused item was refused.
    pub fn first_error(&self) -> Option<&str> {
        self.decoded.first_error.as_deref()
    }
}

/// What was written, for usage and metrics: (dataset, rows, bytes) each, the
/// bodies' bytes, and the items refused.
struct Written {
    datasets: Vec<(String, u64, u64)>,
    body_bytes: u64,
    rejected: u64,
}

/// (dataset, rows, bytes) of each batch, for usage.
fn usage_of<'a>(batches: impl IntoIterator<Item = &'a DatasetBatch>) -> Vec<(String, u64, u64)> {
    batches
        .into_iter()
        .map(|batch| {
            let bytes = batch_bytes(&batch.batch);
            (batch.dataset.clone(), batch.rows as u64, bytes)
        })
        .collect()
}

/// Each dataset's batches, those of one schema concatenated: a stream
/// transaction of many small messages becomes a few WAL entries.
fn merge_by_dataset(
    batches: &[&DatasetBatch],
) -> Result<Vec<(String, arrow::array::RecordBatch)>, ApiError> {
    let mut merged: Vec<(String, Vec<arrow::array::RecordBatch>)> = Vec::new();
    for batch in batches {
        match merged.iter_mut().find(|(dataset, runs)| {
            *dataset == batch.dataset
                && runs
                    .first()
                    .is_some_and(|first| first.schema() == batch.batch.schema())
        }) {
            Some((_, runs)) => runs.push(batch.batch.clone()),
            None => merged.push((batch.dataset.clone(), vec![batch.batch.clone()])),
        }
    }
    merged
        .into_iter()
        .map(|(dataset, runs)| {
            let schema = runs[0].schema();
            let batch = arrow::compute::concat_batches(&schema, &runs)
                .map_err(|error| ApiError::Internal(format!("merging batches: {error}")))?;
            Ok((dataset, batch))
        })
        .collect()
}

/// Rows decoded from one request, by dataset.
struct Decoded {
    batches: Vec<DatasetBatch>,
    rejected: u64,
    items: Vec<EventStatus>,
    first_error: Option<String>,
}

impl IngestService {
    /// A service appending to `store`, admitting `max_in_flight` requests at once.
    pub fn new(
        store: Arc<Store>,
        limits: Limits,
        max_in_flight: usize,
        metrics: Arc<ApiMetrics>,
        clock: SharedClock,
        role: Role,
    ) -> IngestService {
        let refusal = (!role.ingests()).then(|| {
            format!(
                "this node runs with --role {role} and takes no writes; send telemetry to a node with --role ingest or all"
            )
        });
        IngestService {
            store,
            limits,
            permits: Arc::new(Semaphore::new(max_in_flight)),
            metrics,
            clock,
            refusal,
            pipeline: None,
        }
    }

    /// The same service, passing every request through `pipeline`.
    pub fn with_pipeline(self, pipeline: Arc<Pipeline>) -> IngestService {
        IngestService {
            pipeline: Some(pipeline),
            ..self
        }
    }

    /// The limits bodies and events are held to.
    pub fn limits(&self) -> Limits {
        self.limits
    }

    /// Admits one request, or refuses it as overloaded when every permit is taken.
    pub fn admit(&self) -> Result<Admission, ApiError> {
        if let Some(refusal) = &self.refusal {
            return Err(ApiError::WrongRole(refusal.clone()));
        }
        Arc::clone(&self.permits)
            .try_acquire_owned()
            .map(|permit| Admission { _permit: permit })
            .map_err(|_| {
                ApiError::Overloaded("too many ingest requests in flight; retry later".into())
            })
    }

    /// Decodes `request` and appends its rows; returns once they are durable.
    ///
    /// Every dataset's rows are appended concurrently (they share the WAL's group
    /// commit) and the request succeeds only if all of them are durable. A request
    /// refused by the store may have written some datasets already, so a client's
    /// retry can store those rows twice; an OTLP request has one service, and so
    /// one dataset, in the common case. A single event that cannot be decoded
    /// fails the request (and counts as one refused event); a batch's bad events
    /// are refused one by one.
    pub async fn ingest(
        &self,
        _admission: &Admission,
        request: IngestRequest,
    ) -> Result<IngestOutcome, ApiError> {
        let started = Instant::now();
        let payload = request.payload.label();
        let environment = request.environment.clone();
        let body_bytes = request.body.len() as u64;
        if let Some(pipeline) = &self.pipeline {
            pipeline.admit_request(&environment, body_bytes)?;
        }
        let decoded = self.decode_counted(request).await?;
        let rows: usize = decoded.batches.iter().map(|batch| batch.rows).sum();
        if let Some(pipeline) = &self.pipeline {
            // Refused whole and before any append: nothing of it is acknowledged.
            pipeline.admit_events(&environment, rows as u64)?;
        }
        let written = usage_of(&decoded.batches);
        // Tail sampling: buffered spans are durable in its journal when it answers.
        let batches = match &self.pipeline {
            Some(pipeline) => pipeline.sample(&environment, decoded.batches).await?,
            None => decoded.batches,
        };
        let appends = batches.into_iter().map(|batch| {
            let (store, environment) = (&self.store, &environment);
            async move { store.append(environment, &batch.dataset, batch.batch).await }
        });
        futures::future::try_join_all(appends).await?;
        let written = Written {
            datasets: written,
            body_bytes,
            rejected: decoded.rejected,
        };
        self.record_written(&environment, &written, started, payload);
        Ok(IngestOutcome {
            rows: rows as u64,
            rejected: decoded.rejected,
            items: decoded.items,
            first_error: decoded.first_error,
        })
    }

    /// Decodes `request` without writing it: a stream source gathers several
    /// messages into one [`IngestService::ingest_transaction`].
    pub async fn prepare(&self, request: IngestRequest) -> Result<Prepared, ApiError> {
        let payload = request.payload.label();
        let body_bytes = request.body.len() as u64;
        let decoded = self.decode_counted(request).await?;
        Ok(Prepared {
            decoded,
            body_bytes,
            payload,
        })
    }

    /// Appends prepared requests' rows together with stream positions, as one
    /// transaction (see [`Store::append_transaction`]): after a crash, either
    /// all of it is durable or none of it. Quotas see the requests as one.
    pub async fn ingest_transaction(
        &self,
        _admission: &Admission,
        environment: &str,
        prepared: &[&Prepared],
        positions: quarry_segment_store::SourcePositions,
    ) -> Result<IngestOutcome, ApiError> {
        let started = Instant::now();
        let body_bytes: u64 = prepared.iter().map(|part| part.body_bytes).sum();
        let rows: u64 = prepared.iter().map(|part| part.rows()).sum();
        if let Some(pipeline) = &self.pipeline {
            pipeline.admit_request(environment, body_bytes)?;
            pipeline.admit_events(environment, rows)?;
        }
        let batches: Vec<&DatasetBatch> = prepared
            .iter()
            .flat_map(|part| &part.decoded.batches)
            .collect();
        let written = usage_of(batches.iter().copied());
        self.store
            .append_transaction(environment, merge_by_dataset(&batches)?, positions)
            .await?;
        let payload = prepared.first().map_or("transaction", |part| part.payload);
        let rejected = prepared.iter().map(|part| part.decoded.rejected).sum();
        let written = Written {
            datasets: written,
            body_bytes,
            rejected,
        };
        self.record_written(environment, &written, started, payload);
        Ok(IngestOutcome {
            rows,
            rejected,
            items: Vec::new(),
            first_error: prepared
                .iter()
                .find_map(|part| part.decoded.first_error.clone()),
        })
    }

    /// Decodes a request, counting a single event that fails as refused.
    async fn decode_counted(&self, request: IngestRequest) -> Result<Decoded, ApiError> {
        let single_event = matches!(request.payload, Payload::SingleEvent { .. });
        let decoded = self.decode(request).await;
        if decoded.is_err() && single_event {
            self.metrics.record_events(0, 1);
        }
        decoded
    }

    /// Usage and metrics of rows just made durable.
    fn record_written(
        &self,
        environment: &str,
        written: &Written,
        started: Instant,
        payload: &'static str,
    ) {
        if let Some(pipeline) = &self.pipeline {
            pipeline.record_usage(
                environment,
                &written.datasets,
                written.body_bytes,
                self.clock.now_ns(),
            );
        }
        let rows = written.datasets.iter().map(|(_, rows, _)| rows).sum();
        self.metrics.record_events(rows, written.rejected);
        self.metrics
            .record_ingest(payload, started.elapsed().as_secs_f64());
    }

    /// Decompresses and decodes the body on the blocking pool (CPU-bound work
    /// stays off the async runtime).
    async fn decode(&self, request: IngestRequest) -> Result<Decoded, ApiError> {
        let IngestRequest {
            environment,
            body,
            content_encoding,
            payload,
        } = request;
        let dataset_override = match &payload {
            Payload::Otlp {
                dataset_override: Some(dataset),
                ..
            }
            | Payload::PrometheusRemoteWrite {
                dataset_override: Some(dataset),
            } => Some(names::dataset_name(dataset)?.to_owned()),
            Payload::SingleEvent { dataset, .. } | Payload::EventBatch { dataset, .. } => {
                names::dataset_name(dataset)?;
                None
            }
            Payload::Otlp { .. } | Payload::PrometheusRemoteWrite { .. } => None,
        };
        let store = Arc::clone(&self.store);
        let limits = self.limits;
        let now_ns = self.clock.now_ns();
        let pipeline = self.pipeline.clone();
        tokio::task::spawn_blocking(move || -> Result<Decoded, ApiError> {
            let body = decode_body(content_encoding.as_deref(), body, limits.max_body_bytes)?;
            let mut decoded = match payload {
                Payload::SingleEvent {
                    dataset,
                    content_type,
                    defaults,
                } => {
                    let schema = store.schema(&environment, &dataset);
                    let context = DecodeContext {
                        schema: schema.as_ref(),
                        limits: &limits,
                        now_ns,
                    };
                    let batch =
                        decode_single_event(&body, content_type.as_deref(), &defaults, &context)?;
                    Decoded {
                        batches: vec![DatasetBatch {
                            rows: batch.num_rows(),
                            dataset,
                            batch,
                        }],
                        rejected: 0,
                        items: vec![EventStatus::Accepted],
                        first_error: None,
                    }
                }
                Payload::EventBatch {
                    dataset,
                    content_type,
                } => {
                    let schema = store.schema(&environment, &dataset);
                    let context = DecodeContext {
                        schema: schema.as_ref(),
                        limits: &limits,
                        now_ns,
                    };
                    let decoded = decode_batch(&body, content_type.as_deref(), &context)?;
                    let mut rejected = 0;
                    let mut first_error = None;
                    for status in &decoded.statuses {
                        if let EventStatus::Rejected { error } = status {
                            rejected += 1;
                            first_error.get_or_insert_with(|| error.clone());
                        }
                    }
                    let batches = decoded
                        .batch
                        .map(|batch| DatasetBatch {
                            rows: batch.num_rows(),
                            dataset,
                            batch,
                        })
                        .into_iter()
                        .collect();
                    Decoded {
                        batches,
                        rejected,
                        items: decoded.statuses,
                        first_error,
                    }
                }
                Payload::PrometheusRemoteWrite { .. } => {
                    let request = decode_write_request(&body, limits.max_body_bytes)?;
                    let context = OtlpContext {
                        limits: &limits,
                        now_ns,
                        dataset_override: dataset_override.as_deref(),
                    };
                    let schema_of = |dataset: &str| store.schema(&environment, dataset);
                    let mapped = map_metrics(&to_otlp(&request), &context, &schema_of)?;
                    Decoded {
                        batches: mapped.batches,
                        rejected: mapped.rejected,
                        items: Vec::new(),
                        first_error: mapped.first_error,
                    }
                }
                Payload::Otlp { signal, format, .. } => {
                    let context = OtlpContext {
                        limits: &limits,
                        now_ns,
                        dataset_override: dataset_override.as_deref(),
                    };
                    let schema_of = |dataset: &str| store.schema(&environment, dataset);
                    let mapped = match signal {
                        Signal::Traces => {
                            map_traces(&decode_traces(&body, format)?, &context, &schema_of)
                        }
                        Signal::Logs => {
                            map_logs(&decode_logs(&body, format)?, &context, &schema_of)
                        }
                        Signal::Metrics => {
                            map_metrics(&decode_metrics(&body, format)?, &context, &schema_of)
                        }
                    }?;
                    Decoded {
                        batches: mapped.batches,
                        rejected: mapped.rejected,
                        items: Vec::new(),
                        first_error: mapped.first_error,
                    }
                }
            };
            // Redacted here, still off the runtime and before anything is written.
            if let Some(pipeline) = pipeline {
                decoded.batches = pipeline.redact(&environment, decoded.batches)?;
            }
            Ok(decoded)
        })
        .await
        .map_err(|error| ApiError::Internal(format!("decoding task failed: {error}")))?
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::TestApp;

    fn batch_request(body: &str) -> IngestRequest {
        IngestRequest {
            environment: "default".into(),
            body: Bytes::from(body.to_owned()),
            content_encoding: None,
            payload: Payload::EventBatch {
                dataset: "shop".into(),
                content_type: Some("application/json".into()),
            },
        }
    }

    #[tokio::test]
    async fn admission_is_bounded_and_released_with_the_admission() {
        let app = TestApp::start(|config| config.max_concurrent_ingest = 2).await;
        let first = app.state.ingest.admit().unwrap();
        let _second = app.state.ingest.admit().unwrap();
        assert!(matches!(
            app.state.ingest.admit(),
            Err(ApiError::Overloaded(_))
        ));
        drop(first);
        assert!(app.state.ingest.admit().is_ok());
    }

    #[tokio::test]
    async fn a_batch_reports_each_item_and_writes_only_the_good_ones() {
        let app = TestApp::start(|_| {}).await;
        let admission = app.state.ingest.admit().unwrap();
        let outcome = app
            .state
            .ingest
            .ingest(
                &admission,
                batch_request(r#"[{"data":{"n":1}}, 7, {"data":{"n":2}}]"#),
            )
            .await
            .unwrap();
        assert_eq!(outcome.rows, 2);
        assert_eq!(outcome.rejected, 1);
        assert_eq!(outcome.items.len(), 3);
        assert_eq!(outcome.items[0], EventStatus::Accepted);
        let EventStatus::Rejected { error } = &outcome.items[1] else {
            panic!("item 1 accepted: {outcome:?}")
        };
        assert_eq!(outcome.first_error.as_ref(), Some(error));
        let datasets = app.state.store.datasets("default");
        let names: Vec<&str> = datasets.iter().map(|info| info.name.as_str()).collect();
        assert_eq!(names, ["shop"]);
    }

    #[tokio::test]
    async fn a_bad_dataset_override_is_refused_before_decoding() {
        let app = TestApp::start(|_| {}).await;
        let admission = app.state.ingest.admit().unwrap();
        let request = IngestRequest {
            environment: "default".into(),
            body: Bytes::from_static(b"not protobuf"),
            content_encoding: None,
            payload: Payload::Otlp {
                signal: Signal::Logs,
                format: OtlpFormat::Protobuf,
                dataset_override: Some("bad/name".into()),
            },
        };
        let error = app
            .state
            .ingest
            .ingest(&admission, request)
            .await
            .unwrap_err();
        assert!(matches!(error, ApiError::BadRequest(_)), "{error:?}");
        assert!(error.to_string().contains("bad/name"), "{error}");
    }
}
