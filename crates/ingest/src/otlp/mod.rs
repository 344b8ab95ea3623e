//! OTLP (OpenTelemetry protocol) traces, logs and metrics to columnar batches.
//!
//! A request body is decoded ([`decode_traces`], [`decode_logs`], [`decode_metrics`])
//! from protobuf or OTLP/JSON ([`OtlpFormat`]) into the generated protobuf types of
//! `opentelemetry-proto`, then mapped ([`map_traces`], [`map_logs`], [`map_metrics`])
//! straight into one Arrow batch per dataset with the same builder, typing rules
//! and limits as the Events API. The mapping is Honeycomb's (see docs/otlp.md):
//!
//! - a span is a row (`trace.trace_id`, `trace.span_id`, `trace.parent_id`, `name`,
//!   `span.kind`, `duration_ms`, `status_code`, `error`, ...); each span event and
//!   link is a row of its own (`meta.annotation_type`), and the attributes of an
//!   `exception` event are also copied onto its span;
//! - a log record is a row (`severity`, `body`, the trace linkage);
//! - a metric data point is a row (`metric.name`, `metric.kind`, `value`, ...);
//! - resource attributes, then the scope, then the item's attributes are fields,
//!   later ones overwriting earlier ones; a `sampleRate` attribute is the row's
//!   sample rate (else a span's `tracestate` threshold `ot=th:`, see
//!   [`tracestate_sample_rate`]); the dataset is the service name unless the
//!   request overrides it.
//!
//! A bad item (too many fields, an invalid id, ...) is refused alone and counted
//! for the OTLP partial-success response; a body that cannot be decoded at all
//! fails the request.

mod json;
mod logs;
mod metrics;
mod series;
mod sink;
#[cfg(test)]
mod test_support;
mod traces;
mod tracestate;
mod values;

use arrow::array::RecordBatch;
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use prost::Message;

pub use logs::map_logs;
pub use metrics::map_metrics;
pub use sink::{UNKNOWN_LOG_SOURCE, UNKNOWN_SERVICE};
pub use traces::map_traces;
pub use tracestate::tracestate_sample_rate;

use crate::{IngestError, Limits};

/// The two encodings of OTLP request bodies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OtlpFormat {
    /// Binary protobuf (`application/x-protobuf`), and always over gRPC.
    Protobuf,
    /// OTLP/JSON (`application/json`): protobuf's JSON mapping with hex ids.
    Json,
}

impl OtlpFormat {
    /// The format of an OTLP/HTTP body from its `Content-Type`; anything else
    /// (or none) is refused, as the OTLP specification asks (415).
    pub fn from_content_type(content_type: Option<&str>) -> Result<OtlpFormat, IngestError> {
        let raw = content_type.unwrap_or("");
        let essence = raw.split(';').next().unwrap_or("").trim();
        if essence.eq_ignore_ascii_case("application/x-protobuf")
            || essence.eq_ignore_ascii_case("application/protobuf")
        {
            Ok(OtlpFormat::Protobuf)
        } else if essence.eq_ignore_ascii_case("application/json") {
            Ok(OtlpFormat::Json)
        } else {
            Err(IngestError::UnsupportedOtlpContentType(
                raw.trim().to_owned(),
            ))
        }
    }

    /// The `Content-Type` of bodies in this format.
    pub fn content_type(self) -> &'static str {
        match self {
            OtlpFormat::Protobuf => "application/x-protobuf",
            OtlpFormat::Json => "application/json",
        }
    }
}

/// What mapping needs besides the request.
#[derive(Debug, Clone, Copy)]
pub struct OtlpContext<'a> {
    /// The limits to enforce per row.
    pub limits: &'a Limits,
    /// Time of rows whose item states none, in ns since the epoch.
    pub now_ns: i64,
    /// The dataset of every row (`x-honeycomb-dataset`), instead of the service name.
    pub dataset_override: Option<&'a str>,
}

/// The rows of one dataset.
#[derive(Debug)]
pub struct DatasetBatch {
    /// The dataset.
    pub dataset: String,
    /// Its rows.
    pub batch: RecordBatch,
    /// `batch.num_rows()`.
    pub rows: usize,
}

/// A mapped request: batches per dataset and what was refused.
#[derive(Debug)]
pub struct OtlpBatches {
    /// One batch per dataset with rows, in order of first appearance.
    pub batches: Vec<DatasetBatch>,
    /// Items refused (spans, log records or data points), for partial success.
    pub rejected: u64,
    /// Why the first refused row was refused.
    pub first_error: Option<String>,
}

/// Decodes an `ExportTraceServiceRequest` body.
pub fn decode_traces(
    body: &[u8],
    format: OtlpFormat,
) -> Result<ExportTraceServiceRequest, IngestError> {
    match format {
        OtlpFormat::Protobuf => decode_protobuf(body),
        OtlpFormat::Json => json::traces(body),
    }
}

/// Decodes an `ExportLogsServiceRequest` body.
pub fn decode_logs(
    body: &[u8],
    format: OtlpFormat,
) -> Result<ExportLogsServiceRequest, IngestError> {
    match format {
        OtlpFormat::Protobuf => decode_protobuf(body),
        OtlpFormat::Json => json::logs(body),
    }
}

/// Decodes an `ExportMetricsServiceRequest` body.
pub fn decode_metrics(
    body: &[u8],
    format: OtlpFormat,
) -> Result<ExportMetricsServiceRequest, IngestError> {
    match format {
        OtlpFormat::Protobuf => decode_protobuf(body),
        OtlpFormat::Json => json::metrics(body),
    }
}

fn decode_protobuf<M: Message + Default>(body: &[u8]) -> Result<M, IngestError> {
    M::decode(body).map_err(|error| {
        IngestError::MalformedBody(format!(
            "the body is not a valid OTLP protobuf message: {error}"
        ))
    })
}

/// A `u64` time in ns as the `i64` of the timestamp column; 0 (unset) or beyond
/// year 2262 means "not given".
fn time_ns(ns: u64) -> Option<i64> {
    i64::try_from(ns).ok().filter(|&ns| ns > 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_types() {
        let format = |ct: Option<&str>| OtlpFormat::from_content_type(ct);
        assert_eq!(
            format(Some("application/x-protobuf")).unwrap(),
            OtlpFormat::Protobuf
        );
        assert_eq!(
            format(Some("application/protobuf")).unwrap(),
            OtlpFormat::Protobuf
        );
        assert_eq!(
            format(Some("Application/JSON; charset=utf-8")).unwrap(),
            OtlpFormat::Json
        );
        for bad in [
            None,
            Some("text/plain"),
            Some("application/msgpack"),
            Some(""),
        ] {
            assert!(
                matches!(format(bad), Err(IngestError::UnsupportedOtlpContentType(_))),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn malformed_protobuf_is_refused() {
        let error = decode_traces(&[0x0a, 0xff, 0xff], OtlpFormat::Protobuf).unwrap_err();
        assert!(matches!(error, IngestError::MalformedBody(_)), "{error}");
        // An empty body is a valid, empty request.
        let empty = decode_traces(&[], OtlpFormat::Protobuf).unwrap();
        assert!(empty.resource_spans.is_empty());
    }

    #[test]
    fn times() {
        assert_eq!(time_ns(0), None);
        assert_eq!(time_ns(5), Some(5));
        assert_eq!(time_ns(u64::MAX), None);
    }
}
