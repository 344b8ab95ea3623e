//! OTLP trace export requests (protobuf) from the generator's spans, for
//! benchmarking OTLP ingest: one request per service holding `batch_size` spans,
//! each span with [`SPAN_ATTRIBUTES`] attributes (the generator's own, padded with
//! synthetic ones), under a resource shaped like an OpenTelemetry SDK's.

use std::collections::VecDeque;

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value::Value;
use opentelemetry_proto::tonic::common::v1::{AnyValue, InstrumentationScope, KeyValue};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::span::SpanKind;
use opentelemetry_proto::tonic::trace::v1::status::StatusCode;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span, Status};
use prost::Message;
use quarry_schema::fields::{
    DURATION_MS, ERROR, NAME, PARENT_ID, SERVICE_NAME, SPAN_ID, SPAN_KIND, TELEMETRY_SDK_LANGUAGE,
    TELEMETRY_SDK_NAME, TELEMETRY_SDK_VERSION, TRACE_ID,
};

use crate::event::{Event, EventKind, FieldValue};
use crate::generator::Generator;
use crate::topology::SERVICES;

/// Attributes per span (the generator's, padded with synthetic ones).
pub const SPAN_ATTRIBUTES: usize = 20;
const NANOS_PER_MILLI: f64 = 1e6;

/// One encoded `ExportTraceServiceRequest` of one service.
#[derive(Debug, Clone)]
pub struct OtlpBody {
    /// The service (and so the dataset).
    pub dataset: &'static str,
    /// The protobuf encoding of the request.
    pub body: Vec<u8>,
    /// Spans in the request.
    pub spans: usize,
}

/// The generator's spans (its log records are skipped) as OTLP request bodies.
pub struct OtlpBodies {
    generator: Generator,
    batch_size: usize,
    open: Vec<(&'static str, Vec<Span>)>,
    ready: VecDeque<OtlpBody>,
    serial: u64,
    done: bool,
}

impl OtlpBodies {
    /// Bodies of `batch_size` spans from `generator`.
    pub fn new(generator: Generator, batch_size: usize) -> Self {
        OtlpBodies {
            generator,
            batch_size: batch_size.max(1),
            open: SERVICES.iter().map(|s| (s.name, Vec::new())).collect(),
            ready: VecDeque::new(),
            serial: 0,
            done: false,
        }
    }

    /// The generator, to read what it made.
    pub fn into_inner(self) -> Generator {
        self.generator
    }

    fn add(&mut self, event: &Event) {
        let Some(span) = span_of(event, self.serial) else {
            return;
        };
        self.serial += 1;
        let slot = match self
            .open
            .iter()
            .position(|(name, _)| *name == event.dataset)
        {
            Some(slot) => slot,
            None => {
                self.open.push((event.dataset, Vec::new()));
                self.open.len() - 1
            }
        };
        let (dataset, spans) = &mut self.open[slot];
        spans.push(span);
        if spans.len() >= self.batch_size {
            let spans = std::mem::take(spans);
            self.ready.push_back(body(dataset, spans));
        }
    }
}

impl Iterator for OtlpBodies {
    type Item = OtlpBody;

    fn next(&mut self) -> Option<OtlpBody> {
        loop {
            if let Some(body) = self.ready.pop_front() {
                return Some(body);
            }
            if self.done {
                return None;
            }
            match self.generator.next() {
                Some(event) => self.add(&event),
                None => {
                    self.done = true;
                    for (dataset, spans) in &mut self.open {
                        if !spans.is_empty() {
                            let spans = std::mem::take(spans);
                            self.ready.push_back(body(dataset, spans));
                        }
                    }
                }
            }
        }
    }
}

/// The request of one service's spans, encoded.
fn body(dataset: &'static str, spans: Vec<Span>) -> OtlpBody {
    let count = spans.len();
    let request = ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: Some(Resource {
                attributes: vec![
                    kv(SERVICE_NAME, Value::StringValue(dataset.to_owned())),
                    kv(TELEMETRY_SDK_LANGUAGE, Value::StringValue("rust".into())),
                    kv(
                        TELEMETRY_SDK_NAME,
                        Value::StringValue("opentelemetry".into()),
                    ),
                    kv(TELEMETRY_SDK_VERSION, Value::StringValue("0.31.0".into())),
                ],
                ..Default::default()
            }),
            scope_spans: vec![ScopeSpans {
                scope: Some(InstrumentationScope {
                    name: "quarry-load".into(),
                    version: env!("CARGO_PKG_VERSION").into(),
                    ..Default::default()
                }),
                spans,
                ..Default::default()
            }],
            ..Default::default()
        }],
    };
    OtlpBody {
        dataset,
        body: request.encode_to_vec(),
        spans: count,
    }
}

/// A generated span event as an OTLP span; `None` for log records.
pub fn span_of(event: &Event, serial: u64) -> Option<Span> {
    if event.kind != EventKind::Span {
        return None;
    }
    let start = u64::try_from(event.time_ns).unwrap_or(0);
    let mut span = Span {
        kind: SpanKind::Server as i32,
        start_time_unix_nano: start,
        end_time_unix_nano: start,
        ..Default::default()
    };
    for (name, value) in &event.fields {
        match (*name, value) {
            (TRACE_ID, FieldValue::Str(id)) => span.trace_id = hex::decode(id).ok()?,
            (SPAN_ID, FieldValue::Str(id)) => span.span_id = hex::decode(id).ok()?,
            (PARENT_ID, FieldValue::Str(id)) => {
                span.parent_span_id = hex::decode(id).ok()?;
            }
            (NAME, FieldValue::Str(text)) => span.name = text.clone(),
            (DURATION_MS, FieldValue::Float(ms)) => {
                span.end_time_unix_nano = start + (ms * NANOS_PER_MILLI) as u64;
            }
            (ERROR, FieldValue::Bool(true)) => {
                span.status = Some(Status {
                    message: "error".into(),
                    code: StatusCode::Error as i32,
                });
            }
            (SERVICE_NAME | SPAN_KIND | ERROR, _) => {}
            (name, value) => span.attributes.push(kv(name, any_of(value))),
        }
    }
    let mut pad = 0;
    while span.attributes.len() < SPAN_ATTRIBUTES {
        let value = match pad % 4 {
            0 => Value::StringValue(format!("value-{}", (serial + pad) % 1000)),
            1 => Value::IntValue(i64::try_from((serial * 7 + pad) % 100_000).unwrap_or(0)),
            2 => Value::DoubleValue(((serial + pad) % 1000) as f64 / 8.0),
            _ => Value::BoolValue((serial + pad).is_multiple_of(3)),
        };
        span.attributes
            .push(kv(&format!("bench.attr_{pad}"), value));
        pad += 1;
    }
    Some(span)
}

fn any_of(value: &FieldValue) -> Value {
    match value {
        FieldValue::Str(text) => Value::StringValue(text.clone()),
        FieldValue::Int(number) => Value::IntValue(*number),
        FieldValue::Float(number) => Value::DoubleValue(*number),
        FieldValue::Bool(flag) => Value::BoolValue(*flag),
    }
}

fn kv(key: &str, value: Value) -> KeyValue {
    KeyValue {
        key: key.to_owned(),
        value: Some(AnyValue { value: Some(value) }),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::GeneratorConfig;

    #[test]
    fn bodies_hold_batches_of_spans_with_twenty_attributes() {
        let config = GeneratorConfig::new(7, 2_000, 1_700_000_000_000_000_000);
        let bodies: Vec<OtlpBody> = OtlpBodies::new(Generator::new(config).unwrap(), 100).collect();
        let spans: usize = bodies.iter().map(|b| b.spans).sum();
        assert!(spans > 0 && spans < 2_000, "{spans}");
        for body in &bodies {
            assert!(body.spans <= 100);
            let request = ExportTraceServiceRequest::decode(&body.body[..]).unwrap();
            let resource = &request.resource_spans[0];
            let service = &resource.resource.as_ref().unwrap().attributes[0];
            assert_eq!(
                service.value.as_ref().unwrap().value,
                Some(Value::StringValue(body.dataset.to_owned()))
            );
            for span in &resource.scope_spans[0].spans {
                assert_eq!(span.trace_id.len(), 16);
                assert_eq!(span.span_id.len(), 8);
                assert_eq!(span.attributes.len(), SPAN_ATTRIBUTES);
                assert!(span.end_time_unix_nano >= span.start_time_unix_nano);
            }
        }
    }
}
