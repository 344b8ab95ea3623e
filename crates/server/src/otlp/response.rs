//! OTLP export responses: empty on full success, `partial_success` when items
//! were refused (with the count and the first reason), as the specification asks.

use opentelemetry_proto::tonic::collector::logs::v1::{
    ExportLogsPartialSuccess, ExportLogsServiceResponse,
};
use opentelemetry_proto::tonic::collector::metrics::v1::{
    ExportMetricsPartialSuccess, ExportMetricsServiceResponse,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTracePartialSuccess, ExportTraceServiceResponse,
};
use prost::Message;
use serde_json::{Value, json};

use crate::ingest_service::{IngestOutcome, Signal};

/// Whether the response carries a `partial_success` field.
fn partial(exported: &IngestOutcome) -> bool {
    exported.rejected > 0 || exported.first_error.is_some()
}

fn rejected(exported: &IngestOutcome) -> i64 {
    i64::try_from(exported.rejected).unwrap_or(i64::MAX)
}

/// The protobuf response to an export of `signal`.
pub fn encode_response(signal: Signal, exported: &IngestOutcome) -> Vec<u8> {
    let error_message = exported.first_error.clone().unwrap_or_default();
    let partial = partial(exported);
    match signal {
        Signal::Traces => ExportTraceServiceResponse {
            partial_success: partial.then(|| ExportTracePartialSuccess {
                rejected_spans: rejected(exported),
                error_message,
            }),
        }
        .encode_to_vec(),
        Signal::Logs => ExportLogsServiceResponse {
            partial_success: partial.then(|| ExportLogsPartialSuccess {
                rejected_log_records: rejected(exported),
                error_message,
            }),
        }
        .encode_to_vec(),
        Signal::Metrics => ExportMetricsServiceResponse {
            partial_success: partial.then(|| ExportMetricsPartialSuccess {
                rejected_data_points: rejected(exported),
                error_message,
            }),
        }
        .encode_to_vec(),
    }
}

/// The OTLP/JSON response to an export of `signal` (64-bit counts as strings).
pub fn json_response(signal: Signal, exported: &IngestOutcome) -> Value {
    if !partial(exported) {
        return json!({});
    }
    let count_key = match signal {
        Signal::Traces => "rejectedSpans",
        Signal::Logs => "rejectedLogRecords",
        Signal::Metrics => "rejectedDataPoints",
    };
    json!({
        "partialSuccess": {
            count_key: exported.rejected.to_string(),
            "errorMessage": exported.first_error.clone().unwrap_or_default(),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn full_success_is_empty_and_refusals_are_partial() {
        let ok = IngestOutcome {
            rows: 3,
            ..IngestOutcome::default()
        };
        assert!(encode_response(Signal::Traces, &ok).is_empty());
        assert_eq!(json_response(Signal::Logs, &ok), json!({}));
        let partial = IngestOutcome {
            rows: 1,
            rejected: 2,
            first_error: Some("too many fields".into()),
            ..IngestOutcome::default()
        };
        let decoded =
            ExportTraceServiceResponse::decode(&encode_response(Signal::Traces, &partial)[..])
                .unwrap();
        let success = decoded.partial_success.unwrap();
        assert_eq!(success.rejected_spans, 2);
        assert_eq!(success.error_message, "too many fields");
        let decoded =
            ExportMetricsServiceResponse::decode(&encode_response(Signal::Metrics, &partial)[..])
                .unwrap();
        assert_eq!(decoded.partial_success.unwrap().rejected_data_points, 2);
        assert_eq!(
            json_response(Signal::Logs, &partial),
            json!({"partialSuccess": {"rejectedLogRecords": "2", "errorMessage": "too many fields"}})
        );
    }
}
