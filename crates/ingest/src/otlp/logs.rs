//! Log records to rows: severity, body (a map body flattened under `body.`), and
//! the trace linkage of the span they were written in.

use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::logs::v1::LogRecord;
use prost::Message;
use quarry_schema::DatasetSchema;
use quarry_schema::fields::{
    BODY, PARENT_ID, SEVERITY, SEVERITY_CODE, SEVERITY_TEXT, SIGNAL_LOG, SIGNAL_TYPE, TRACE_ID,
};

use super::sink::{Datasets, Sink, UNKNOWN_LOG_SOURCE};
use super::values::{
    put_attributes, put_id, put_int, put_resource, put_scope, put_text, put_value,
};
use super::{OtlpBatches, OtlpContext, time_ns};
use crate::IngestError;
use crate::flat_event::FlatEvent;
use crate::sample_rate::DEFAULT_SAMPLE_RATE;

/// Maps a logs export request to one batch per dataset.
pub fn map_logs(
    request: &ExportLogsServiceRequest,
    ctx: &OtlpContext,
    schema_of: &dyn Fn(&str) -> Option<DatasetSchema>,
) -> Result<OtlpBatches, IngestError> {
    let resources = request.resource_logs.iter().map(|r| r.resource.as_ref());
    let (datasets, slots) = Datasets::collect(resources, ctx, UNKNOWN_LOG_SOURCE, schema_of);
    let mut sink = Sink::new(&datasets, ctx);
    let mut event = FlatEvent::new(ctx.limits);
    for (resource_logs, &slot) in request.resource_logs.iter().zip(&slots) {
        event.clear();
        let resource_rate = put_resource(&mut event, resource_logs.resource.as_ref());
        let resource_mark = event.checkpoint();
        for scope_logs in &resource_logs.scope_logs {
            event.restore(resource_mark);
            let scope_rate = put_scope(&mut event, scope_logs.scope.as_ref()).or(resource_rate);
            let scope_mark = event.checkpoint();
            for record in &scope_logs.log_records {
                event.restore(scope_mark);
                if let Err(error) = sink.check_size(record.encoded_len()) {
                    sink.reject(&error);
                    continue;
                }
                let sample_rate = put_record(&mut event, record)
                    .or(scope_rate)
                    .unwrap_or(DEFAULT_SAMPLE_RATE);
                let time = time_ns(record.time_unix_nano)
                    .or_else(|| time_ns(record.observed_time_unix_nano))
                    .unwrap_or(ctx.now_ns);
                sink.append(slot, &event, time, sample_rate);
            }
        }
    }
    sink.finish()
}

/// Records a log record's fields; returns the sample rate its attributes state.
fn put_record(event: &mut FlatEvent, record: &LogRecord) -> Option<i64> {
    let sample_rate = put_attributes(event, &record.attributes);
    if let Some(body) = record.body.as_ref() {
        // A map body flattens to `body.<key>`, like a nested attribute.
        let mark = event.enter(BODY);
        put_value(event, body, 1);
        event.leave(mark);
    }
    put_text(event, SEVERITY, severity(record.severity_number));
    put_int(event, SEVERITY_CODE, i64::from(record.severity_number));
    if !record.severity_text.is_empty() {
        put_text(event, SEVERITY_TEXT, &record.severity_text);
    }
    put_id(event, TRACE_ID, &record.trace_id);
    put_id(event, PARENT_ID, &record.span_id);
    event.own_string(SIGNAL_TYPE, SIGNAL_LOG);
    sample_rate
}

/// The severity's level in lower case, from its number (OpenTelemetry's ranges).
fn severity(number: i32) -> &'static str {
    match number {
        1..=4 => "trace",
        5..=8 => "debug",
        9..=12 => "info",
        13..=16 => "warn",
        17..=20 => "error",
        21..=24 => "fatal",
        _ => "unspecified",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Limits;
    use crate::otlp::test_support::*;
    use opentelemetry_proto::tonic::common::v1::KeyValueList;
    use opentelemetry_proto::tonic::common::v1::any_value::Value;
    use opentelemetry_proto::tonic::logs::v1::{ResourceLogs, ScopeLogs};
    use quarry_schema::SAMPLE_RATE;

    const TIME: u64 = 1_714_564_800_000_000_000;

    fn request(service: Option<&str>, records: Vec<LogRecord>) -> ExportLogsServiceRequest {
        ExportLogsServiceRequest {
            resource_logs: vec![ResourceLogs {
                resource: resource(service, vec![]),
                scope_logs: vec![ScopeLogs {
                    log_records: records,
                    ..Default::default()
                }],
                ..Default::default()
            }],
        }
    }

    #[test]
    fn records_map_with_severity_body_and_trace_linkage() {
        let in_span = LogRecord {
            time_unix_nano: TIME,
            severity_number: 17,
            severity_text: "ERROR".into(),
            body: Some(any(Value::StringValue("payment failed".into()))),
            attributes: vec![
                kv("attempt", Value::IntValue(3)),
                kv("sampleRate", Value::IntValue(2)),
            ],
            trace_id: vec![0xab; 16],
            span_id: vec![0xcd; 8],
            ..Default::default()
        };
        let map_body = LogRecord {
            observed_time_unix_nano: TIME + 1,
            severity_number: 9,
            body: Some(any(Value::KvlistValue(KeyValueList {
                values: vec![text("user", "u1"), kv("ms", Value::DoubleValue(1.5))],
            }))),
            ..Default::default()
        };
        let no_time = LogRecord::default();
        let limits = Limits::default();
        let decoded = map_logs(
            &request(Some("billing"), vec![in_span, map_body, no_time]),
            &context(&limits),
            &|_| None,
        )
        .unwrap();
        let batch = batch(&decoded, "billing");
        assert_eq!(batch.num_rows(), 3);
        assert_eq!(times(batch), [TIME as i64, TIME as i64 + 1, NOW]);
        assert_eq!(
            strings(batch, "severity"),
            some(&["error", "info", "unspecified"])
        );
        assert_eq!(ints(batch, "severity_code"), [Some(17), Some(9), Some(0)]);
        assert_eq!(
            strings(batch, "severity_text"),
            [Some("ERROR".into()), None, None]
        );
        assert_eq!(
            strings(batch, "body"),
            [Some("payment failed".into()), None, None]
        );
        assert_eq!(strings(batch, "body.user"), [None, Some("u1".into()), None]);
        assert_eq!(floats(batch, "body.ms"), [None, Some(1.5), None]);
        assert_eq!(strings(batch, "trace.trace_id")[0], Some("ab".repeat(16)));
        assert_eq!(strings(batch, "trace.parent_id")[0], Some("cd".repeat(8)));
        assert_eq!(ints(batch, "attempt")[0], Some(3));
        assert_eq!(ints(batch, SAMPLE_RATE), [Some(2), Some(1), Some(1)]);
        assert_eq!(strings(batch, "meta.signal_type"), some(&["log"; 3]));
    }

    #[test]
    fn logs_without_a_service_go_to_unknown_log_source() {
        let limits = Limits::default();
        let decoded = map_logs(
            &request(None, vec![LogRecord::default()]),
            &context(&limits),
            &|_| None,
        )
        .unwrap();
        assert_eq!(batch(&decoded, "unknown_log_source").num_rows(), 1);
    }

    #[test]
    fn severities() {
        assert_eq!(severity(0), "unspecified");
        assert_eq!(severity(4), "trace");
        assert_eq!(severity(8), "debug");
        assert_eq!(severity(13), "warn");
        assert_eq!(severity(24), "fatal");
        assert_eq!(severity(99), "unspecified");
    }
}
