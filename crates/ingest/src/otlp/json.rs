//! OTLP/JSON request bodies into the protobuf types.
//!
//! Written by hand rather than with `opentelemetry-proto`'s `with-serde` feature,
//! which does not decode OTLP/JSON as the specification writes it: a metric's
//! `gauge`/`sum`/... oneof silently deserializes to nothing, 64-bit counts
//! (`count`, `bucketCounts`, `asInt`) are refused as strings, and some messages
//! refuse missing fields (open-telemetry/opentelemetry-rust#2487, #3527). Here
//! every message follows protobuf's JSON mapping as OTLP specifies it:
//! lowerCamelCase names, every field optional, unknown fields ignored, 64-bit
//! integers as strings or numbers, enums as numbers (or their names), trace and
//! span ids as hex (not base64), `bytesValue` as base64, doubles as numbers or
//! `"NaN"`/`"Infinity"`/`"-Infinity"`.

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1 as common;
use opentelemetry_proto::tonic::logs::v1 as logs;
use opentelemetry_proto::tonic::metrics::v1 as metrics;
use opentelemetry_proto::tonic::resource::v1 as resource;
use opentelemetry_proto::tonic::trace::v1 as trace;
use serde::Deserialize;
use serde::de::{self, DeserializeOwned, Deserializer, Visitor};

use crate::IngestError;

/// Decodes an OTLP/JSON trace export request.
pub(crate) fn traces(body: &[u8]) -> Result<ExportTraceServiceRequest, IngestError> {
    let request: TracesRequest = parse(body)?;
    Ok(ExportTraceServiceRequest {
        resource_spans: request.resource_spans.into_iter().map(Into::into).collect(),
    })
}

/// Decodes an OTLP/JSON logs export request.
pub(crate) fn logs(body: &[u8]) -> Result<ExportLogsServiceRequest, IngestError> {
    let request: LogsRequest = parse(body)?;
    Ok(ExportLogsServiceRequest {
        resource_logs: request.resource_logs.into_iter().map(Into::into).collect(),
    })
}

/// Decodes an OTLP/JSON metrics export request.
pub(crate) fn metrics(body: &[u8]) -> Result<ExportMetricsServiceRequest, IngestError> {
    let request: MetricsRequest = parse(body)?;
    Ok(ExportMetricsServiceRequest {
        resource_metrics: request
            .resource_metrics
            .into_iter()
            .map(Into::into)
            .collect(),
    })
}

fn parse<T: DeserializeOwned>(body: &[u8]) -> Result<T, IngestError> {
    if body.trim_ascii().is_empty() {
        return Err(IngestError::EmptyBody);
    }
    serde_json::from_slice(body).map_err(|error| {
        IngestError::MalformedBody(format!(
            "the body is not a valid OTLP/JSON request: {error}"
        ))
    })
}

fn convert<A, B: From<A>>(items: Vec<A>) -> Vec<B> {
    items.into_iter().map(Into::into).collect()
}

// ---------------------------------------------------------------- scalars

/// A 64-bit unsigned integer: a decimal string or a JSON number.
#[derive(Debug, Default, Clone, Copy)]
struct U64(u64);

/// A 64-bit signed integer: a decimal string or a JSON number.
#[derive(Debug, Default, Clone, Copy)]
struct I64(i64);

/// A double: a number, or a string holding one (`"NaN"`, `"Infinity"`, `"1.5"`).
#[derive(Debug, Default, Clone, Copy)]
struct F64(f64);

/// An enum: its number, or its name as a string (resolved by the message's type).
#[derive(Debug, Default, Clone)]
enum EnumValue {
    #[default]
    Unset,
    Number(i32),
    Name(String),
}

impl EnumValue {
    /// The enum's number; an unknown name counts as 0 (unspecified).
    fn number(self, from_name: fn(&str) -> Option<i32>) -> i32 {
        match self {
            EnumValue::Unset => 0,
            EnumValue::Number(number) => number,
            EnumValue::Name(name) => from_name(&name).unwrap_or(0),
        }
    }
}

/// An id as hex text (OTLP/JSON writes trace and span ids as hex, not base64).
#[derive(Debug, Default, Clone)]
struct HexId(Vec<u8>);

macro_rules! integer_visitor {
    ($name:ident, $target:ty, $expecting:literal) => {
        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                struct V;
                impl<'de> Visitor<'de> for V {
                    type Value = $target;
                    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                        f.write_str($expecting)
                    }
                    fn visit_u64<E: de::Error>(self, v: u64) -> Result<$target, E> {
                        <$target>::try_from(v)
                            .map_err(|_| E::custom(format!("{v} is out of range")))
                    }
                    fn visit_i64<E: de::Error>(self, v: i64) -> Result<$target, E> {
                        <$target>::try_from(v)
                            .map_err(|_| E::custom(format!("{v} is out of range")))
                    }
                    fn visit_f64<E: de::Error>(self, v: f64) -> Result<$target, E> {
                        // JSON writers may print large integers as 1e18: whole floats only.
                        if v.fract() == 0.0
                            && v >= <$target>::MIN as f64
                            && v <= <$target>::MAX as f64
                        {
                            Ok(v as $target)
                        } else {
                            Err(E::custom(format!("{v} is not an integer")))
                        }
                    }
                    fn visit_str<E: de::Error>(self, v: &str) -> Result<$target, E> {
                        v.trim()
                            .parse()
                            .map_err(|_| E::custom(format!("{v:?} is not an integer")))
                    }
                    fn visit_unit<E: de::Error>(self) -> Result<$target, E> {
                        Ok(0)
                    }
                }
                deserializer.deserialize_any(V).map($name)
            }
        }
    };
}

integer_visitor!(
    U64,
    u64,
    "an unsigned 64-bit integer (number or decimal string)"
);
integer_visitor!(
    I64,
    i64,
    "a signed 64-bit integer (number or decimal string)"
);

impl<'de> Deserialize<'de> for F64 {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = f64;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a number (or \"NaN\", \"Infinity\", \"-Infinity\")")
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<f64, E> {
                Ok(v as f64)
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<f64, E> {
                Ok(v as f64)
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<f64, E> {
                Ok(v)
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<f64, E> {
                match v.trim() {
                    "NaN" => Ok(f64::NAN),
                    "Infinity" => Ok(f64::INFINITY),
                    "-Infinity" => Ok(f64::NEG_INFINITY),
                    other => other
                        .parse()
                        .map_err(|_| E::custom(format!("{v:?} is not a number"))),
                }
            }
            fn visit_unit<E: de::Error>(self) -> Result<f64, E> {
                Ok(0.0)
            }
        }
        deserializer.deserialize_any(V).map(F64)
    }
}

impl<'de> Deserialize<'de> for EnumValue {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = EnumValue;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an enum number or name")
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<EnumValue, E> {
                i32::try_from(v)
                    .map(EnumValue::Number)
                    .map_err(|_| E::custom(format!("enum value {v} is out of range")))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<EnumValue, E> {
                i32::try_from(v)
                    .map(EnumValue::Number)
                    .map_err(|_| E::custom(format!("enum value {v} is out of range")))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<EnumValue, E> {
                Ok(EnumValue::Name(v.to_owned()))
            }
            fn visit_unit<E: de::Error>(self) -> Result<EnumValue, E> {
                Ok(EnumValue::Unset)
            }
        }
        deserializer.deserialize_any(V)
    }
}

impl<'de> Deserialize<'de> for HexId {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = Option::<String>::deserialize(deserializer)?.unwrap_or_default();
        hex::decode(text.trim())
            .map(HexId)
            .map_err(|error| de::Error::custom(format!("id {text:?} is not hex: {error}")))
    }
}

/// `bytesValue`: base64 text.
fn base64_bytes<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<u8>, D::Error> {
    let text = String::deserialize(deserializer)?;
    BASE64
        .decode(text.trim())
        .map_err(|error| de::Error::custom(format!("bytesValue is not base64: {error}")))
}

// ---------------------------------------------------------------- common

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
struct AnyValue {
    string_value: Option<String>,
    bool_value: Option<bool>,
    int_value: Option<I64>,
    double_value: Option<F64>,
    array_value: Option<ArrayValue>,
    kvlist_value: Option<KeyValueList>,
    #[serde(deserialize_with = "optional_base64")]
    bytes_value: Option<Vec<u8>>,
}

fn optional_base64<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<Vec<u8>>, D::Error> {
    base64_bytes(deserializer).map(Some)
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct ArrayValue {
    values: Vec<AnyValue>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct KeyValueList {
    values: Vec<KeyValue>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct KeyValue {
    key: String,
    value: Option<AnyValue>,
}

impl From<AnyValue> for common::AnyValue {
    fn from(value: AnyValue) -> Self {
        use common::any_value::Value;
        let value = if let Some(text) = value.string_value {
            Some(Value::StringValue(text))
        } else if let Some(flag) = value.bool_value {
            Some(Value::BoolValue(flag))
        } else if let Some(number) = value.int_value {
            Some(Value::IntValue(number.0))
        } else if let Some(number) = value.double_value {
            Some(Value::DoubleValue(number.0))
        } else if let Some(array) = value.array_value {
            Some(Value::ArrayValue(common::ArrayValue {
                values: convert(array.values),
            }))
        } else if let Some(list) = value.kvlist_value {
            Some(Value::KvlistValue(common::KeyValueList {
                values: convert(list.values),
            }))
        } else {
            value.bytes_value.map(Value::BytesValue)
        };
        common::AnyValue { value }
    }
}

impl From<KeyValue> for common::KeyValue {
    fn from(kv: KeyValue) -> Self {
        common::KeyValue {
            key: kv.key,
            value: kv.value.map(Into::into),
            ..Default::default()
        }
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
struct Resource {
    attributes: Vec<KeyValue>,
    dropped_attributes_count: u32,
}

impl From<Resource> for resource::Resource {
    fn from(r: Resource) -> Self {
        resource::Resource {
            attributes: convert(r.attributes),
            dropped_attributes_count: r.dropped_attributes_count,
            ..Default::default()
        }
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
struct Scope {
    name: String,
    version: String,
    attributes: Vec<KeyValue>,
    dropped_attributes_count: u32,
}

impl From<Scope> for common::InstrumentationScope {
    fn from(s: Scope) -> Self {
        common::InstrumentationScope {
            name: s.name,
            version: s.version,
            attributes: convert(s.attributes),
            dropped_attributes_count: s.dropped_attributes_count,
        }
    }
}

// ---------------------------------------------------------------- traces

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
struct TracesRequest {
    resource_spans: Vec<ResourceSpans>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
struct ResourceSpans {
    resource: Option<Resource>,
    scope_spans: Vec<ScopeSpans>,
    schema_url: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
struct ScopeSpans {
    scope: Option<Scope>,
    spans: Vec<Span>,
    schema_url: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
struct Span {
    trace_id: HexId,
    span_id: HexId,
    trace_state: String,
    parent_span_id: HexId,
    flags: u32,
    name: String,
    kind: EnumValue,
    start_time_unix_nano: U64,
    end_time_unix_nano: U64,
    attributes: Vec<KeyValue>,
    dropped_attributes_count: u32,
    events: Vec<SpanEvent>,
    dropped_events_count: u32,
    links: Vec<SpanLink>,
    dropped_links_count: u32,
    status: Option<Status>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
struct SpanEvent {
    time_unix_nano: U64,
    name: String,
    attributes: Vec<KeyValue>,
    dropped_attributes_count: u32,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
struct SpanLink {
    trace_id: HexId,
    span_id: HexId,
    trace_state: String,
    attributes: Vec<KeyValue>,
    dropped_attributes_count: u32,
    flags: u32,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
struct Status {
    message: String,
    code: EnumValue,
}

impl From<ResourceSpans> for trace::ResourceSpans {
    fn from(r: ResourceSpans) -> Self {
        trace::ResourceSpans {
            resource: r.resource.map(Into::into),
            scope_spans: convert(r.scope_spans),
            schema_url: r.schema_url,
        }
    }
}

impl From<ScopeSpans> for trace::ScopeSpans {
    fn from(s: ScopeSpans) -> Self {
        trace::ScopeSpans {
            scope: s.scope.map(Into::into),
            spans: convert(s.spans),
            schema_url: s.schema_url,
        }
    }
}

impl From<Span> for trace::Span {
    fn from(s: Span) -> Self {
        trace::Span {
            trace_id: s.trace_id.0,
            span_id: s.span_id.0,
            trace_state: s.trace_state,
            parent_span_id: s.parent_span_id.0,
            flags: s.flags,
            name: s.name,
            kind: s
                .kind
                .number(|name| trace::span::SpanKind::from_str_name(name).map(|k| k as i32)),
            start_time_unix_nano: s.start_time_unix_nano.0,
            end_time_unix_nano: s.end_time_unix_nano.0,
            attributes: convert(s.attributes),
            dropped_attributes_count: s.dropped_attributes_count,
            events: convert(s.events),
            dropped_events_count: s.dropped_events_count,
            links: convert(s.links),
            dropped_links_count: s.dropped_links_count,
            status: s.status.map(|status| trace::Status {
                message: status.message,
                code: status.code.number(|name| {
                    trace::status::StatusCode::from_str_name(name).map(|c| c as i32)
                }),
            }),
        }
    }
}

impl From<SpanEvent> for trace::span::Event {
    fn from(e: SpanEvent) -> Self {
        trace::span::Event {
            time_unix_nano: e.time_unix_nano.0,
            name: e.name,
            attributes: convert(e.attributes),
            dropped_attributes_count: e.dropped_attributes_count,
        }
    }
}

impl From<SpanLink> for trace::span::Link {
    fn from(l: SpanLink) -> Self {
        trace::span::Link {
            trace_id: l.trace_id.0,
            span_id: l.span_id.0,
            trace_state: l.trace_state,
            attributes: convert(l.attributes),
            dropped_attributes_count: l.dropped_attributes_count,
            flags: l.flags,
        }
    }
}

// ---------------------------------------------------------------- logs

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
struct LogsRequest {
    resource_logs: Vec<ResourceLogs>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
struct ResourceLogs {
    resource: Option<Resource>,
    scope_logs: Vec<ScopeLogs>,
    schema_url: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
struct ScopeLogs {
    scope: Option<Scope>,
    log_records: Vec<LogRecord>,
    schema_url: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
struct LogRecord {
    time_unix_nano: U64,
    observed_time_unix_nano: U64,
    severity_number: EnumValue,
    severity_text: String,
    body: Option<AnyValue>,
    attributes: Vec<KeyValue>,
    dropped_attributes_count: u32,
    flags: u32,
    trace_id: HexId,
    span_id: HexId,
    event_name: String,
}

impl From<ResourceLogs> for logs::ResourceLogs {
    fn from(r: ResourceLogs) -> Self {
        logs::ResourceLogs {
            resource: r.resource.map(Into::into),
            scope_logs: convert(r.scope_logs),
            schema_url: r.schema_url,
        }
    }
}

impl From<ScopeLogs> for logs::ScopeLogs {
    fn from(s: ScopeLogs) -> Self {
        logs::ScopeLogs {
            scope: s.scope.map(Into::into),
            log_records: convert(s.log_records),
            schema_url: s.schema_url,
        }
    }
}

impl From<LogRecord> for logs::LogRecord {
    fn from(r: LogRecord) -> Self {
        logs::LogRecord {
            time_unix_nano: r.time_unix_nano.0,
            observed_time_unix_nano: r.observed_time_unix_nano.0,
            severity_number: r
                .severity_number
                .number(|name| logs::SeverityNumber::from_str_name(name).map(|s| s as i32)),
            severity_text: r.severity_text,
            body: r.body.map(Into::into),
            attributes: convert(r.attributes),
            dropped_attributes_count: r.dropped_attributes_count,
            flags: r.flags,
            trace_id: r.trace_id.0,
            span_id: r.span_id.0,
            event_name: r.event_name,
        }
    }
}

// ---------------------------------------------------------------- metrics

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
struct MetricsRequest {
    resource_metrics: Vec<ResourceMetrics>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
struct ResourceMetrics {
    resource: Option<Resource>,
    scope_metrics: Vec<ScopeMetrics>,
    schema_url: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
struct ScopeMetrics {
    scope: Option<Scope>,
    metrics: Vec<Metric>,
    schema_url: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
struct Metric {
    name: String,
    description: String,
    unit: String,
    gauge: Option<Gauge>,
    sum: Option<Sum>,
    histogram: Option<Histogram>,
    exponential_histogram: Option<ExponentialHistogram>,
    summary: Option<Summary>,
    metadata: Vec<KeyValue>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
struct Gauge {
    data_points: Vec<NumberDataPoint>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
struct Sum {
    data_points: Vec<NumberDataPoint>,
    aggregation_temporality: EnumValue,
    is_monotonic: bool,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
struct Histogram {
    data_points: Vec<HistogramDataPoint>,
    aggregation_temporality: EnumValue,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
struct ExponentialHistogram {
    data_points: Vec<ExponentialHistogramDataPoint>,
    aggregation_temporality: EnumValue,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
struct Summary {
    data_points: Vec<SummaryDataPoint>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
struct NumberDataPoint {
    attributes: Vec<KeyValue>,
    start_time_unix_nano: U64,
    time_unix_nano: U64,
    as_double: Option<F64>,
    as_int: Option<I64>,
    flags: u32,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
struct HistogramDataPoint {
    attributes: Vec<KeyValue>,
    start_time_unix_nano: U64,
    time_unix_nano: U64,
    count: U64,
    sum: Option<F64>,
    bucket_counts: Vec<U64>,
    explicit_bounds: Vec<F64>,
    flags: u32,
    min: Option<F64>,
    max: Option<F64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
struct ExponentialHistogramDataPoint {
    attributes: Vec<KeyValue>,
    start_time_unix_nano: U64,
    time_unix_nano: U64,
    count: U64,
    sum: Option<F64>,
    scale: i32,
    zero_count: U64,
    positive: Option<Buckets>,
    negative: Option<Buckets>,
    flags: u32,
    min: Option<F64>,
    max: Option<F64>,
    zero_threshold: F64,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
struct Buckets {
    offset: i32,
    bucket_counts: Vec<U64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
struct SummaryDataPoint {
    attributes: Vec<KeyValue>,
    start_time_unix_nano: U64,
    time_unix_nano: U64,
    count: U64,
    sum: F64,
    quantile_values: Vec<ValueAtQuantile>,
    flags: u32,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct ValueAtQuantile {
    quantile: F64,
    value: F64,
}

fn temporality(value: EnumValue) -> i32 {
    value.number(|name| metrics::AggregationTemporality::from_str_name(name).map(|t| t as i32))
}

fn counts(values: Vec<U64>) -> Vec<u64> {
    values.into_iter().map(|v| v.0).collect()
}

impl From<ResourceMetrics> for metrics::ResourceMetrics {
    fn from(r: ResourceMetrics) -> Self {
        metrics::ResourceMetrics {
            resource: r.resource.map(Into::into),
            scope_metrics: convert(r.scope_metrics),
            schema_url: r.schema_url,
        }
    }
}

impl From<ScopeMetrics> for metrics::ScopeMetrics {
    fn from(s: ScopeMetrics) -> Self {
        metrics::ScopeMetrics {
            scope: s.scope.map(Into::into),
            metrics: convert(s.metrics),
            schema_url: s.schema_url,
        }
    }
}

impl From<Metric> for metrics::Metric {
    fn from(m: Metric) -> Self {
        use metrics::metric::Data;
        let data = if let Some(gauge) = m.gauge {
            Some(Data::Gauge(metrics::Gauge {
                data_points: convert(gauge.data_points),
            }))
        } else if let Some(sum) = m.sum {
            Some(Data::Sum(metrics::Sum {
                data_points: convert(sum.data_points),
                aggregation_temporality: temporality(sum.aggregation_temporality),
                is_monotonic: sum.is_monotonic,
            }))
        } else if let Some(histogram) = m.histogram {
            Some(Data::Histogram(metrics::Histogram {
                data_points: convert(histogram.data_points),
                aggregation_temporality: temporality(histogram.aggregation_temporality),
            }))
        } else if let Some(histogram) = m.exponential_histogram {
            Some(Data::ExponentialHistogram(metrics::ExponentialHistogram {
                data_points: convert(histogram.data_points),
                aggregation_temporality: temporality(histogram.aggregation_temporality),
            }))
        } else {
            m.summary.map(|summary| {
                Data::Summary(metrics::Summary {
                    data_points: convert(summary.data_points),
                })
            })
        };
        metrics::Metric {
            name: m.name,
            description: m.description,
            unit: m.unit,
            metadata: convert(m.metadata),
            data,
        }
    }
}

impl From<NumberDataPoint> for metrics::NumberDataPoint {
    fn from(p: NumberDataPoint) -> Self {
        use metrics::number_data_point::Value;
        let value = match (p.as_double, p.as_int) {
            (Some(number), _) => Some(Value::AsDouble(number.0)),
            (None, Some(number)) => Some(Value::AsInt(number.0)),
            (None, None) => None,
        };
        metrics::NumberDataPoint {
            attributes: convert(p.attributes),
            start_time_unix_nano: p.start_time_unix_nano.0,
            time_unix_nano: p.time_unix_nano.0,
            flags: p.flags,
            value,
            ..Default::default()
        }
    }
}

impl From<HistogramDataPoint> for metrics::HistogramDataPoint {
    fn from(p: HistogramDataPoint) -> Self {
        metrics::HistogramDataPoint {
            attributes: convert(p.attributes),
            start_time_unix_nano: p.start_time_unix_nano.0,
            time_unix_nano: p.time_unix_nano.0,
            count: p.count.0,
            sum: p.sum.map(|v| v.0),
            bucket_counts: counts(p.bucket_counts),
            explicit_bounds: p.explicit_bounds.into_iter().map(|v| v.0).collect(),
            flags: p.flags,
            min: p.min.map(|v| v.0),
            max: p.max.map(|v| v.0),
            ..Default::default()
        }
    }
}

impl From<Buckets> for metrics::exponential_histogram_data_point::Buckets {
    fn from(b: Buckets) -> Self {
        metrics::exponential_histogram_data_point::Buckets {
            offset: b.offset,
            bucket_counts: counts(b.bucket_counts),
        }
    }
}

impl From<ExponentialHistogramDataPoint> for metrics::ExponentialHistogramDataPoint {
    fn from(p: ExponentialHistogramDataPoint) -> Self {
        metrics::ExponentialHistogramDataPoint {
            attributes: convert(p.attributes),
            start_time_unix_nano: p.start_time_unix_nano.0,
            time_unix_nano: p.time_unix_nano.0,
            count: p.count.0,
            sum: p.sum.map(|v| v.0),
            scale: p.scale,
            zero_count: p.zero_count.0,
            positive: p.positive.map(Into::into),
            negative: p.negative.map(Into::into),
            flags: p.flags,
            min: p.min.map(|v| v.0),
            max: p.max.map(|v| v.0),
            zero_threshold: p.zero_threshold.0,
            ..Default::default()
        }
    }
}

impl From<SummaryDataPoint> for metrics::SummaryDataPoint {
    fn from(p: SummaryDataPoint) -> Self {
        metrics::SummaryDataPoint {
            attributes: convert(p.attributes),
            start_time_unix_nano: p.start_time_unix_nano.0,
            time_unix_nano: p.time_unix_nano.0,
            count: p.count.0,
            sum: p.sum.0,
            quantile_values: p
                .quantile_values
                .into_iter()
                .map(|q| metrics::summary_data_point::ValueAtQuantile {
                    quantile: q.quantile.0,
                    value: q.value.0,
                })
                .collect(),
            flags: p.flags,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::otlp::test_support::{any, kv, text};
    use common::any_value::Value;

    #[test]
    fn traces_decode_like_protobuf() {
        let body = r#"{"resourceSpans":[{
            "resource":{"attributes":[{"key":"service.name","value":{"stringValue":"cart"}}]},
            "scopeSpans":[{"scope":{"name":"lib","version":"1"},"spans":[{
                "traceId":"5B8EFFF798038103D269B633813FC60C","spanId":"eee19b7ec3c1b174",
                "parentSpanId":"","name":"GET /","kind":2,
                "startTimeUnixNano":"1544712660000000000","endTimeUnixNano":1544712661000000000,
                "attributes":[
                    {"key":"s","value":{"stringValue":"x"}},
                    {"key":"i","value":{"intValue":"-42"}},
                    {"key":"i2","value":{"intValue":7}},
                    {"key":"d","value":{"doubleValue":"Infinity"}},
                    {"key":"b","value":{"boolValue":true}},
                    {"key":"bytes","value":{"bytesValue":"3q2+7w=="}},
                    {"key":"arr","value":{"arrayValue":{"values":[{"intValue":"1"},{"stringValue":"a"}]}}},
                    {"key":"map","value":{"kvlistValue":{"values":[{"key":"k","value":{"doubleValue":1.5}}]}}},
                    {"key":"empty","value":{}}],
                "events":[{"timeUnixNano":"1544712660500000000","name":"exception",
                           "attributes":[{"key":"exception.message","value":{"stringValue":"boom"}}]}],
                "links":[{"traceId":"00000000000000000000000000000001","spanId":"0000000000000002"}],
                "status":{"code":"STATUS_CODE_ERROR","message":"bad"},
                "unknownField":{"ignored":true}
            }]}]
        }]}"#;
        let request = traces(body.as_bytes()).unwrap();
        let resource = request.resource_spans[0].resource.as_ref().unwrap();
        assert_eq!(resource.attributes, vec![text("service.name", "cart")]);
        let scope_spans = &request.resource_spans[0].scope_spans[0];
        assert_eq!(scope_spans.scope.as_ref().unwrap().name, "lib");
        let span = &scope_spans.spans[0];
        assert_eq!(
            span.trace_id,
            hex::decode("5b8efff798038103d269b633813fc60c").unwrap()
        );
        assert_eq!(span.span_id, hex::decode("eee19b7ec3c1b174").unwrap());
        assert!(span.parent_span_id.is_empty());
        assert_eq!(span.kind, trace::span::SpanKind::Server as i32);
        assert_eq!(span.start_time_unix_nano, 1_544_712_660_000_000_000);
        assert_eq!(span.end_time_unix_nano, 1_544_712_661_000_000_000);
        let expected = vec![
            text("s", "x"),
            kv("i", Value::IntValue(-42)),
            kv("i2", Value::IntValue(7)),
            kv("d", Value::DoubleValue(f64::INFINITY)),
            kv("b", Value::BoolValue(true)),
            kv("bytes", Value::BytesValue(vec![0xde, 0xad, 0xbe, 0xef])),
            kv(
                "arr",
                Value::ArrayValue(common::ArrayValue {
                    values: vec![any(Value::IntValue(1)), any(Value::StringValue("a".into()))],
                }),
            ),
            kv(
                "map",
                Value::KvlistValue(common::KeyValueList {
                    values: vec![kv("k", Value::DoubleValue(1.5))],
                }),
            ),
            common::KeyValue {
                key: "empty".into(),
                value: Some(common::AnyValue { value: None }),
                ..Default::default()
            },
        ];
        assert_eq!(span.attributes, expected);
        assert_eq!(span.events[0].name, "exception");
        assert_eq!(span.events[0].time_unix_nano, 1_544_712_660_500_000_000);
        assert_eq!(span.links[0].span_id, vec![0, 0, 0, 0, 0, 0, 0, 2]);
        let status = span.status.as_ref().unwrap();
        assert_eq!(status.code, trace::status::StatusCode::Error as i32);
        assert_eq!(status.message, "bad");
    }

    #[test]
    fn logs_decode() {
        let body = r#"{"resourceLogs":[{"scopeLogs":[{"logRecords":[{
            "timeUnixNano":"1544712660300000000","severityNumber":10,"severityText":"Information",
            "traceId":"5b8efff798038103d269b633813fc60c","spanId":"eee19b7ec3c1b174",
            "body":{"kvlistValue":{"values":[{"key":"msg","value":{"stringValue":"hi"}}]}},
            "attributes":[{"key":"n","value":{"intValue":"3"}}]}]}]}]}"#;
        let request = logs(body.as_bytes()).unwrap();
        let record = &request.resource_logs[0].scope_logs[0].log_records[0];
        assert_eq!(record.time_unix_nano, 1_544_712_660_300_000_000);
        assert_eq!(record.severity_number, 10);
        assert_eq!(record.severity_text, "Information");
        assert_eq!(record.span_id, hex::decode("eee19b7ec3c1b174").unwrap());
        assert_eq!(
            record.body,
            Some(any(Value::KvlistValue(common::KeyValueList {
                values: vec![text("msg", "hi")]
            })))
        );
        assert_eq!(record.attributes, vec![kv("n", Value::IntValue(3))]);
    }

    #[test]
    fn metrics_decode_with_string_counts_and_every_kind() {
        use metrics::metric::Data;
        let body = r#"{"resourceMetrics":[{"scopeMetrics":[{"metrics":[
            {"name":"c","sum":{"aggregationTemporality":2,"isMonotonic":true,
                "dataPoints":[{"asInt":"12","timeUnixNano":"5"}]}},
            {"name":"g","gauge":{"dataPoints":[{"asDouble":2.5}]}},
            {"name":"h","histogram":{"aggregationTemporality":"AGGREGATION_TEMPORALITY_DELTA",
                "dataPoints":[{"count":"6","sum":12.5,"bucketCounts":["1","2",3],
                               "explicitBounds":[1,5],"min":0.5,"max":9}]}},
            {"name":"e","exponentialHistogram":{"aggregationTemporality":2,
                "dataPoints":[{"count":"3","scale":2,"zeroCount":"1",
                               "positive":{"offset":-1,"bucketCounts":["1","1"]}}]}},
            {"name":"s","summary":{"dataPoints":[{"count":"10","sum":20,
                "quantileValues":[{"quantile":0.5,"value":1.5}]}]}}
        ]}]}]}"#;
        let request = metrics(body.as_bytes()).unwrap();
        let metrics = &request.resource_metrics[0].scope_metrics[0].metrics;
        let Some(Data::Sum(sum)) = &metrics[0].data else {
            panic!("{:?}", metrics[0])
        };
        assert!(sum.is_monotonic);
        assert_eq!(sum.aggregation_temporality, 2);
        assert_eq!(
            sum.data_points[0].value,
            Some(metrics::number_data_point::Value::AsInt(12))
        );
        assert_eq!(sum.data_points[0].time_unix_nano, 5);
        let Some(Data::Gauge(gauge)) = &metrics[1].data else {
            panic!("{:?}", metrics[1])
        };
        assert_eq!(
            gauge.data_points[0].value,
            Some(metrics::number_data_point::Value::AsDouble(2.5))
        );
        let Some(Data::Histogram(histogram)) = &metrics[2].data else {
            panic!("{:?}", metrics[2])
        };
        assert_eq!(histogram.aggregation_temporality, 1);
        let point = &histogram.data_points[0];
        assert_eq!(
            (point.count, point.sum, point.min, point.max),
            (6, Some(12.5), Some(0.5), Some(9.0))
        );
        assert_eq!(point.bucket_counts, [1, 2, 3]);
        assert_eq!(point.explicit_bounds, [1.0, 5.0]);
        let Some(Data::ExponentialHistogram(exponential)) = &metrics[3].data else {
            panic!("{:?}", metrics[3])
        };
        let point = &exponential.data_points[0];
        assert_eq!((point.count, point.scale, point.zero_count), (3, 2, 1));
        assert_eq!(point.positive.as_ref().unwrap().bucket_counts, [1, 1]);
        let Some(Data::Summary(summary)) = &metrics[4].data else {
            panic!("{:?}", metrics[4])
        };
        assert_eq!(summary.data_points[0].count, 10);
        assert_eq!(summary.data_points[0].quantile_values[0].value, 1.5);
    }

    #[test]
    fn malformed_json_is_refused_with_a_reason() {
        for (body, needle) in [
            ("", "empty"),
            ("[", "not a valid OTLP/JSON"),
            (
                r#"{"resourceSpans":[{"scopeSpans":[{"spans":[{"traceId":"xyz"}]}]}]}"#,
                "not hex",
            ),
            (
                r#"{"resourceSpans":[{"scopeSpans":[{"spans":[{"startTimeUnixNano":"soon"}]}]}]}"#,
                "not an integer",
            ),
            (r#"{"resourceSpans":{"oops":1}}"#, "not a valid OTLP/JSON"),
        ] {
            let error = traces(body.as_bytes()).unwrap_err().to_string();
            assert!(error.contains(needle), "{body}: {error}");
        }
        assert!(traces(b"{}").unwrap().resource_spans.is_empty());
    }
}
