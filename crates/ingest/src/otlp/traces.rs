//! Spans, span events and links to rows (Honeycomb's trace mapping).

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::trace::v1::Span;
use opentelemetry_proto::tonic::trace::v1::span::SpanKind;
use opentelemetry_proto::tonic::trace::v1::status::StatusCode;
use prost::Message;
use quarry_schema::DatasetSchema;
use quarry_schema::fields::{
    ANNOTATION_LINK, ANNOTATION_SPAN_EVENT, ANNOTATION_TYPE, DURATION_MS, ERROR, EXCEPTION_EVENT,
    LINK_SPAN_ID, LINK_TRACE_ID, NAME, PARENT_ID, PARENT_NAME, SIGNAL_TRACE, SIGNAL_TYPE, SPAN_ID,
    SPAN_KIND, SPAN_KIND_CLIENT, SPAN_KIND_CONSUMER, SPAN_KIND_INTERNAL, SPAN_KIND_PRODUCER,
    SPAN_KIND_SERVER, SPAN_NUM_EVENTS, SPAN_NUM_LINKS, STATUS_CODE, STATUS_MESSAGE,
    TIME_SINCE_SPAN_START_MS, TRACE_ID, UNSPECIFIED,
};

use super::sink::{Datasets, Sink, UNKNOWN_SERVICE};
use super::tracestate::tracestate_sample_rate;
use super::values::{
    put_attributes, put_bool, put_float, put_id, put_int, put_resource, put_scope, put_text,
};
use super::{OtlpBatches, OtlpContext, time_ns};
use crate::IngestError;
use crate::flat_event::{Checkpoint, FlatEvent};
use crate::sample_rate::DEFAULT_SAMPLE_RATE;

/// Bytes of a trace id and a span id.
const TRACE_ID_BYTES: usize = 16;
const SPAN_ID_BYTES: usize = 8;
const NANOS_PER_MILLI: f64 = 1e6;

/// Maps a trace export request to one batch per dataset.
pub fn map_traces(
    request: &ExportTraceServiceRequest,
    ctx: &OtlpContext,
    schema_of: &dyn Fn(&str) -> Option<DatasetSchema>,
) -> Result<OtlpBatches, IngestError> {
    let resources = request.resource_spans.iter().map(|r| r.resource.as_ref());
    let (datasets, slots) = Datasets::collect(resources, ctx, UNKNOWN_SERVICE, schema_of);
    let mut rows = Rows {
        sink: Sink::new(&datasets, ctx),
        event: FlatEvent::new(ctx.limits),
        now_ns: ctx.now_ns,
    };
    for (resource_spans, &slot) in request.resource_spans.iter().zip(&slots) {
        rows.event.clear();
        let resource_rate = put_resource(&mut rows.event, resource_spans.resource.as_ref());
        let resource_mark = rows.event.checkpoint();
        for scope_spans in &resource_spans.scope_spans {
            rows.event.restore(resource_mark);
            let scope_rate =
                put_scope(&mut rows.event, scope_spans.scope.as_ref()).or(resource_rate);
            let scope = Scope {
                slot,
                mark: rows.event.checkpoint(),
                sample_rate: scope_rate,
            };
            for span in &scope_spans.spans {
                rows.span(span, &scope);
            }
        }
    }
    rows.sink.finish()
}

/// Where the rows of one scope go and what they share.
struct Scope {
    slot: usize,
    /// The event holding the resource's and the scope's fields.
    mark: Checkpoint,
    sample_rate: Option<i64>,
}

struct Rows<'s> {
    sink: Sink<'s>,
    event: FlatEvent,
    now_ns: i64,
}

impl Rows<'_> {
    /// The span's row, then (if it was accepted) one row per span event and link.
    fn span(&mut self, span: &Span, scope: &Scope) {
        self.event.restore(scope.mark);
        if let Err(error) = self
            .sink
            .check_size(span.encoded_len())
            .and_then(|()| check_ids(span))
        {
            self.sink.reject(&error);
            return;
        }
        let event = &mut self.event;
        let start_ns = time_ns(span.start_time_unix_nano).unwrap_or(self.now_ns);
        // Exception attributes first, so the span's own attributes win over them.
        for span_event in span.events.iter().filter(|e| e.name == EXCEPTION_EVENT) {
            put_attributes(event, &span_event.attributes);
        }
        // A stated rate wins over the head sampler's threshold, which says the same.
        let sample_rate = put_attributes(event, &span.attributes)
            .or(scope.sample_rate)
            .or_else(|| tracestate_sample_rate(&span.trace_state))
            .unwrap_or(DEFAULT_SAMPLE_RATE);
        put_id(event, TRACE_ID, &span.trace_id);
        put_id(event, SPAN_ID, &span.span_id);
        put_id(event, PARENT_ID, &span.parent_span_id);
        put_text(event, NAME, &span.name);
        put_text(event, SPAN_KIND, kind_name(span.kind));
        let duration_ns = span
            .end_time_unix_nano
            .saturating_sub(span.start_time_unix_nano);
        put_float(event, DURATION_MS, duration_ns as f64 / NANOS_PER_MILLI);
        let (code, message) = span
            .status
            .as_ref()
            .map_or((0, ""), |status| (status.code, status.message.as_str()));
        put_int(event, STATUS_CODE, i64::from(code));
        if !message.is_empty() {
            put_text(event, STATUS_MESSAGE, message);
        }
        if code == StatusCode::Error as i32 {
            put_bool(event, ERROR, true);
        }
        put_int(event, SPAN_NUM_EVENTS, count(span.events.len()));
        put_int(event, SPAN_NUM_LINKS, count(span.links.len()));
        event.own_string(SIGNAL_TYPE, SIGNAL_TRACE);
        if !self.sink.append(scope.slot, event, start_ns, sample_rate) {
            return;
        }

        for span_event in &span.events {
            let event = &mut self.event;
            event.restore(scope.mark);
            put_attributes(event, &span_event.attributes);
            self.annotation(span, ANNOTATION_SPAN_EVENT);
            let event = &mut self.event;
            put_text(event, NAME, &span_event.name);
            let time = time_ns(span_event.time_unix_nano).unwrap_or(start_ns);
            let since_start_ns = i128::from(time) - i128::from(start_ns);
            event.own_float(
                TIME_SINCE_SPAN_START_MS,
                since_start_ns as f64 / NANOS_PER_MILLI,
            );
            if !self.sink.append(scope.slot, &self.event, time, sample_rate) {
                self.sink.note(&IngestError::MalformedBody(format!(
                    "an event of span {:?} was refused",
                    span.name
                )));
            }
        }
        for link in &span.links {
            let event = &mut self.event;
            event.restore(scope.mark);
            put_attributes(event, &link.attributes);
            self.annotation(span, ANNOTATION_LINK);
            let event = &mut self.event;
            put_id(event, LINK_TRACE_ID, &link.trace_id);
            put_id(event, LINK_SPAN_ID, &link.span_id);
            if !self
                .sink
                .append(scope.slot, &self.event, start_ns, sample_rate)
            {
                self.sink.note(&IngestError::MalformedBody(format!(
                    "a link of span {:?} was refused",
                    span.name
                )));
            }
        }
    }

    /// The fields every span event and link row has: its span and its kind.
    fn annotation(&mut self, span: &Span, annotation_type: &str) {
        let event = &mut self.event;
        put_id(event, TRACE_ID, &span.trace_id);
        put_id(event, PARENT_ID, &span.span_id);
        put_text(event, PARENT_NAME, &span.name);
        event.own_string(ANNOTATION_TYPE, annotation_type);
        event.own_string(SIGNAL_TYPE, SIGNAL_TRACE);
    }
}

/// Refuses a span whose ids are not 16 and 8 bytes (the parent id may be absent).
fn check_ids(span: &Span) -> Result<(), IngestError> {
    let problem = if span.trace_id.len() != TRACE_ID_BYTES {
        Some(("trace_id", TRACE_ID_BYTES, span.trace_id.len()))
    } else if span.span_id.len() != SPAN_ID_BYTES {
        Some(("span_id", SPAN_ID_BYTES, span.span_id.len()))
    } else if !span.parent_span_id.is_empty() && span.parent_span_id.len() != SPAN_ID_BYTES {
        Some(("parent_span_id", SPAN_ID_BYTES, span.parent_span_id.len()))
    } else {
        None
    };
    match problem {
        None => Ok(()),
        Some((field, expected, got)) => Err(IngestError::MalformedBody(format!(
            "span {:?} has an invalid {field}: {expected} bytes expected, got {got}",
            span.name
        ))),
    }
}

/// `span.kind` as Honeycomb writes it: the kind's name in lower case.
fn kind_name(kind: i32) -> &'static str {
    match SpanKind::try_from(kind) {
        Ok(SpanKind::Internal) => SPAN_KIND_INTERNAL,
        Ok(SpanKind::Server) => SPAN_KIND_SERVER,
        Ok(SpanKind::Client) => SPAN_KIND_CLIENT,
        Ok(SpanKind::Producer) => SPAN_KIND_PRODUCER,
        Ok(SpanKind::Consumer) => SPAN_KIND_CONSUMER,
        Ok(SpanKind::Unspecified) | Err(_) => UNSPECIFIED,
    }
}

/// A count as an int field.
fn count(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Limits;
    use crate::otlp::test_support::*;
    use opentelemetry_proto::tonic::common::v1::InstrumentationScope;
    use opentelemetry_proto::tonic::common::v1::any_value::Value;
    use opentelemetry_proto::tonic::trace::v1::span::{Event, Link};
    use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Status};
    use quarry_schema::{SAMPLE_RATE, conform_batch};

    const START: u64 = 1_714_564_800_000_000_000;
    const TRACE: [u8; 16] = [0xAB; 16];

    fn span(id: u8, parent: Option<u8>) -> Span {
        Span {
            trace_id: TRACE.to_vec(),
            span_id: vec![id; 8],
            parent_span_id: parent.map(|p| vec![p; 8]).unwrap_or_default(),
            name: format!("op-{id}"),
            kind: SpanKind::Server as i32,
            start_time_unix_nano: START,
            end_time_unix_nano: START + 12_500_000,
            ..Default::default()
        }
    }

    fn request(service: Option<&str>, spans: Vec<Span>) -> ExportTraceServiceRequest {
        ExportTraceServiceRequest {
            resource_spans: vec![ResourceSpans {
                resource: resource(
                    service,
                    vec![text("host.name", "h1"), kv("shared", Value::IntValue(1))],
                ),
                scope_spans: vec![ScopeSpans {
                    scope: Some(InstrumentationScope {
                        name: "my.lib".into(),
                        version: "1.2".into(),
                        attributes: vec![kv("shared", Value::IntValue(2))],
                        ..Default::default()
                    }),
                    spans,
                    ..Default::default()
                }],
                ..Default::default()
            }],
        }
    }

    fn map(request: &ExportTraceServiceRequest, limits: &Limits) -> OtlpBatches {
        map_traces(request, &context(limits), &|_| None).unwrap()
    }

    #[test]
    fn a_span_becomes_a_row_with_honeycomb_fields() {
        let mut root = span(1, None);
        root.attributes = vec![
            kv("shared", Value::IntValue(3)),
            kv("http.status_code", Value::IntValue(500)),
            text("name", "attribute loses to the span name"),
        ];
        root.status = Some(Status {
            message: "boom".into(),
            code: StatusCode::Error as i32,
        });
        let child = span(2, Some(1));
        let limits = Limits::default();
        let decoded = map(&request(Some("checkout"), vec![root, child]), &limits);
        assert_eq!(decoded.rejected, 0);
        let batch = batch(&decoded, "checkout");
        assert_eq!(batch.num_rows(), 2);
        let trace = "ab".repeat(16);
        assert_eq!(strings(batch, "trace.trace_id"), some(&[&trace, &trace]));
        assert_eq!(
            strings(batch, "trace.span_id"),
            some(&["0101010101010101", "0202020202020202"])
        );
        assert_eq!(
            strings(batch, "trace.parent_id"),
            [None, Some("0101010101010101".to_owned())]
        );
        assert_eq!(strings(batch, "name"), some(&["op-1", "op-2"]));
        assert_eq!(strings(batch, "span.kind"), some(&["server", "server"]));
        assert_eq!(floats(batch, "duration_ms"), [Some(12.5), Some(12.5)]);
        assert_eq!(ints(batch, "status_code"), [Some(2), Some(0)]);
        assert_eq!(
            strings(batch, "status_message"),
            [Some("boom".to_owned()), None]
        );
        assert_eq!(bools(batch, "error"), [Some(true), None]);
        assert_eq!(
            strings(batch, "service.name"),
            some(&["checkout", "checkout"])
        );
        assert_eq!(strings(batch, "library.name"), some(&["my.lib", "my.lib"]));
        assert_eq!(strings(batch, "library.version"), some(&["1.2", "1.2"]));
        // Resource, then scope, then span attributes: later ones win.
        assert_eq!(ints(batch, "shared"), [Some(3), Some(2)]);
        assert_eq!(ints(batch, "http.status_code"), [Some(500), None]);
        assert_eq!(ints(batch, "span.num_events"), [Some(0), Some(0)]);
        assert_eq!(
            strings(batch, "meta.signal_type"),
            some(&["trace", "trace"])
        );
        assert_eq!(times(batch), [START as i64, START as i64]);
        assert_eq!(ints(batch, SAMPLE_RATE), [Some(1), Some(1)]);
        let mut schema = DatasetSchema::default();
        assert_eq!(&conform_batch(batch.clone(), &mut schema).unwrap(), batch);
    }

    #[test]
    fn a_tracestate_threshold_is_the_rate_unless_an_attribute_states_one() {
        let mut head_sampled = span(1, None);
        head_sampled.trace_state = "ot=th:c".into();
        let mut stated = span(2, Some(1));
        stated.trace_state = "ot=th:c".into();
        stated.attributes = vec![kv("sampleRate", Value::IntValue(3))];
        let limits = Limits::default();
        let decoded = map(&request(Some("shop"), vec![head_sampled, stated]), &limits);
        let batch = batch(&decoded, "shop");
        assert_eq!(ints(batch, SAMPLE_RATE), [Some(4), Some(3)]);
    }

    #[test]
    fn events_and_links_are_rows_and_exceptions_are_copied() {
        let mut root = span(1, None);
        root.attributes = vec![
            text("exception.type", "span's own value wins"),
            kv("sampleRate", Value::IntValue(5)),
        ];
        root.events = vec![
            Event {
                time_unix_nano: START + 2_000_000,
                name: "cache miss".into(),
                attributes: vec![text("key", "k1")],
                ..Default::default()
            },
            Event {
                time_unix_nano: START + 3_000_000,
                name: "exception".into(),
                attributes: vec![
                    text("exception.message", "division by zero"),
                    text("exception.type", "ZeroDivisionError"),
                    kv("exception.escaped", Value::BoolValue(true)),
                ],
                ..Default::default()
            },
        ];
        root.links = vec![Link {
            trace_id: vec![0x11; 16],
            span_id: vec![0x22; 8],
            attributes: vec![text("link.why", "batch")],
            ..Default::default()
        }];
        let limits = Limits::default();
        let decoded = map(&request(Some("api"), vec![root]), &limits);
        let batch = batch(&decoded, "api");
        assert_eq!(batch.num_rows(), 4);
        let parent = Some("0101010101010101".to_owned());
        assert_eq!(
            strings(batch, "meta.annotation_type"),
            [
                None,
                Some("span_event".into()),
                Some("span_event".into()),
                Some("link".into())
            ]
        );
        assert_eq!(
            strings(batch, "trace.parent_id"),
            [None, parent.clone(), parent.clone(), parent]
        );
        assert_eq!(
            strings(batch, "name"),
            [
                Some("op-1".into()),
                Some("cache miss".into()),
                Some("exception".into()),
                None
            ]
        );
        assert_eq!(
            strings(batch, "parent_name")[1..],
            some(&["op-1", "op-1", "op-1"])
        );
        assert_eq!(
            floats(batch, "meta.time_since_span_start_ms"),
            [None, Some(2.0), Some(3.0), None]
        );
        assert_eq!(
            times(batch),
            [
                START as i64,
                START as i64 + 2_000_000,
                START as i64 + 3_000_000,
                START as i64
            ]
        );
        assert_eq!(
            strings(batch, "exception.message")[0],
            Some("division by zero".into())
        );
        assert_eq!(
            strings(batch, "exception.type")[0],
            Some("span's own value wins".into())
        );
        assert_eq!(bools(batch, "exception.escaped")[0], Some(true));
        assert_eq!(
            strings(batch, "trace.link.trace_id")[3],
            Some("11".repeat(16))
        );
        assert_eq!(
            strings(batch, "trace.link.span_id")[3],
            Some("22".repeat(8))
        );
        assert_eq!(strings(batch, "link.why")[3], Some("batch".into()));
        assert_eq!(strings(batch, "key")[1], Some("k1".into()));
        assert_eq!(ints(batch, "span.num_events")[0], Some(2));
        assert_eq!(ints(batch, "span.num_links")[0], Some(1));
        // The span's sample rate applies to its events and links; the attribute is gone.
        assert_eq!(ints(batch, SAMPLE_RATE), [Some(5); 4]);
        assert!(!has_column(batch, "sampleRate"));
        assert_eq!(strings(batch, "meta.signal_type"), some(&["trace"; 4]));
        assert_eq!(strings(batch, "service.name"), some(&["api"; 4]));
    }

    #[test]
    fn services_choose_datasets_and_bad_spans_are_refused_alone() {
        let mut bad = span(3, None);
        bad.trace_id = vec![1, 2, 3];
        let mut request = request(Some("a"), vec![span(1, None), bad]);
        let mut other = request.resource_spans[0].clone();
        other.resource = resource(None, vec![]);
        other.scope_spans[0].spans = vec![span(2, None)];
        request.resource_spans.push(other);
        let limits = Limits::default();
        let decoded = map(&request, &limits);
        assert_eq!(decoded.rejected, 1);
        let error = decoded.first_error.as_deref().unwrap();
        assert!(error.contains("invalid trace_id"), "{error}");
        assert_eq!(batch(&decoded, "a").num_rows(), 1);
        assert_eq!(batch(&decoded, "unknown_service").num_rows(), 1);

        let ctx = OtlpContext {
            dataset_override: Some("everything"),
            ..context(&limits)
        };
        let decoded = map_traces(&request, &ctx, &|_| None).unwrap();
        assert_eq!(decoded.batches.len(), 1);
        assert_eq!(batch(&decoded, "everything").num_rows(), 2);
    }

    #[test]
    fn limits_refuse_single_spans() {
        let mut wide = span(1, None);
        wide.attributes = (0..10)
            .map(|i| kv(&format!("a{i}"), Value::IntValue(i)))
            .collect();
        let limits = Limits {
            max_fields_per_event: 15,
            ..Limits::default()
        };
        let decoded = map(&request(Some("a"), vec![wide, span(2, None)]), &limits);
        assert_eq!(decoded.rejected, 1);
        assert_eq!(batch(&decoded, "a").num_rows(), 1);
        assert!(decoded.first_error.as_deref().unwrap().contains("fields"));
    }

    #[test]
    fn user_meta_attributes_are_renamed() {
        let mut root = span(1, None);
        root.attributes = vec![text("meta.signal_type", "mine")];
        let limits = Limits::default();
        let decoded = map(&request(Some("a"), vec![root]), &limits);
        let batch = batch(&decoded, "a");
        assert_eq!(strings(batch, "meta.signal_type"), some(&["trace"]));
        assert_eq!(strings(batch, "meta.signal_type#user"), some(&["mine"]));
    }
}
