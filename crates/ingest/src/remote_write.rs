//! Prometheus remote write (v1): a snappy-compressed `prometheus.WriteRequest`
//! becomes an OTLP metrics export request, so that its samples are stored with
//! exactly the mapping of OTLP metrics (`metric.name`, labels as columns,
//! `value`, `metric.series_id`) and one query answers both.
//!
//! The mapping follows the OpenTelemetry Collector's Prometheus receiver:
//! `job` is the resource's `service.name` (and so the dataset),
//! `instance` its `service.instance.id`, every other label a data point
//! attribute. Series of a counter family (by the request's metadata, or the
//! `_total`, `_bucket`, `_count` and `_sum` names of Prometheus's conventions
//! when it has none) are cumulative monotonic sums; the rest are gauges.
//! Prometheus's staleness marker, a NaN of one exact bit pattern, is kept as it
//! is, so PromQL evaluation can end a series where Prometheus would.
//!
//! The messages are declared here with prost's derive rather than generated:
//! remote write v1 is five small, frozen messages, and no kept crate ships them
//! without a client or server attached.

use std::collections::HashMap;

use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value::Value as AnyValueKind;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue};
use opentelemetry_proto::tonic::metrics::v1::metric::Data;
use opentelemetry_proto::tonic::metrics::v1::number_data_point::Value as NumberValue;
use opentelemetry_proto::tonic::metrics::v1::{
    AggregationTemporality, Gauge, Metric, NumberDataPoint, ResourceMetrics, ScopeMetrics, Sum,
};
use opentelemetry_proto::tonic::resource::v1::Resource;
use prost::Message;
use quarry_schema::fields::SERVICE_NAME;

use crate::IngestError;

/// The bit pattern of Prometheus's staleness marker (`value.StaleNaN`).
pub const STALE_NAN_BITS: u64 = 0x7ff0_0000_0000_0002;

/// The label holding a series' metric name.
pub const METRIC_NAME_LABEL: &str = "__name__";
/// The label that becomes the resource's `service.name`.
pub const JOB_LABEL: &str = "job";
/// The label that becomes the resource's `service.instance.id`.
pub const INSTANCE_LABEL: &str = "instance";

const SERVICE_INSTANCE_ID: &str = "service.instance.id";

/// `prometheus.WriteRequest`.
#[derive(Clone, PartialEq, Message)]
pub struct WriteRequest {
    /// The series with their samples.
    #[prost(message, repeated, tag = "1")]
    pub timeseries: Vec<TimeSeries>,
    /// Type, help and unit per metric family, when the sender includes them.
    #[prost(message, repeated, tag = "3")]
    pub metadata: Vec<MetricMetadata>,
}

/// `prometheus.TimeSeries` (exemplars and native histograms are not read).
#[derive(Clone, PartialEq, Message)]
pub struct TimeSeries {
    /// The series' labels, `__name__` among them.
    #[prost(message, repeated, tag = "1")]
    pub labels: Vec<Label>,
    /// Its samples, oldest first.
    #[prost(message, repeated, tag = "2")]
    pub samples: Vec<Sample>,
}

/// `prometheus.Label`.
#[derive(Clone, PartialEq, Message)]
pub struct Label {
    /// The label's name.
    #[prost(string, tag = "1")]
    pub name: String,
    /// Its value.
    #[prost(string, tag = "2")]
    pub value: String,
}

/// `prometheus.Sample`.
#[derive(Clone, PartialEq, Message)]
pub struct Sample {
    /// The value.
    #[prost(double, tag = "1")]
    pub value: f64,
    /// Milliseconds since the Unix epoch.
    #[prost(int64, tag = "2")]
    pub timestamp: i64,
}

/// `prometheus.MetricMetadata`.
#[derive(Clone, PartialEq, Message)]
pub struct MetricMetadata {
    /// `prometheus.MetricMetadata.MetricType`.
    #[prost(int32, tag = "1")]
    pub r#type: i32,
    /// The metric family's name.
    #[prost(string, tag = "2")]
    pub metric_family_name: String,
    /// Its help text.
    #[prost(string, tag = "4")]
    pub help: String,
    /// Its unit.
    #[prost(string, tag = "5")]
    pub unit: String,
}

/// `MetricMetadata.MetricType` values that make a family's series counters.
const COUNTER: i32 = 1;
const HISTOGRAM: i32 = 3;
const GAUGE_HISTOGRAM: i32 = 4;
const SUMMARY: i32 = 5;

/// Decompresses (snappy's block format, as remote write sends it) and decodes a
/// write request no larger than `max_bytes` once decompressed.
pub fn decode_write_request(body: &[u8], max_bytes: usize) -> Result<WriteRequest, IngestError> {
    let size = snap::raw::decompress_len(body).map_err(|error| {
        IngestError::MalformedBody(format!("the body is not snappy-compressed: {error}"))
    })?;
    if size > max_bytes {
        return Err(IngestError::BodyTooLarge { limit: max_bytes });
    }
    let raw = snap::raw::Decoder::new()
        .decompress_vec(body)
        .map_err(|error| {
            IngestError::MalformedBody(format!("the body is not snappy-compressed: {error}"))
        })?;
    WriteRequest::decode(raw.as_slice()).map_err(|error| {
        IngestError::MalformedBody(format!(
            "the body is not a Prometheus remote write request (prometheus.WriteRequest): {error}"
        ))
    })
}

/// The OTLP export request holding `request`'s samples: one resource per
/// (`job`, `instance`), one metric per series.
pub fn to_otlp(request: &WriteRequest) -> ExportMetricsServiceRequest {
    let counter_families: HashMap<&str, bool> = request
        .metadata
        .iter()
        .map(|family| {
            let counts = matches!(
                family.r#type,
                COUNTER | HISTOGRAM | GAUGE_HISTOGRAM | SUMMARY
            );
            (family.metric_family_name.as_str(), counts)
        })
        .collect();
    let mut resources: Vec<ResourceMetrics> = Vec::new();
    let mut resource_of: HashMap<(Option<&str>, Option<&str>), usize> = HashMap::new();
    for series in &request.timeseries {
        if series.samples.is_empty() {
            continue;
        }
        let label = |name: &str| {
            series
                .labels
                .iter()
                .find(|label| label.name == name)
                .map(|label| label.value.as_str())
        };
        let (job, instance) = (label(JOB_LABEL), label(INSTANCE_LABEL));
        let slot = *resource_of.entry((job, instance)).or_insert_with(|| {
            resources.push(resource_metrics(job, instance));
            resources.len() - 1
        });
        let name = label(METRIC_NAME_LABEL).unwrap_or_default();
        let attributes: Vec<KeyValue> = series
            .labels
            .iter()
            .filter(|label| {
                !matches!(
                    label.name.as_str(),
                    METRIC_NAME_LABEL | JOB_LABEL | INSTANCE_LABEL
                ) && !label.value.is_empty()
            })
            .map(|label| text_attribute(&label.name, &label.value))
            .collect();
        let points = series
            .samples
            .iter()
            .map(|sample| NumberDataPoint {
                attributes: attributes.clone(),
                time_unix_nano: u64::try_from(sample.timestamp)
                    .unwrap_or(0)
                    .saturating_mul(1_000_000),
                value: Some(NumberValue::AsDouble(sample.value)),
                ..Default::default()
            })
            .collect();
        let data = if is_counter(name, &counter_families, label("quantile").is_some()) {
            Data::Sum(Sum {
                data_points: points,
                aggregation_temporality: AggregationTemporality::Cumulative as i32,
                is_monotonic: true,
            })
        } else {
            Data::Gauge(Gauge {
                data_points: points,
            })
        };
        if let Some(scope) = resources[slot].scope_metrics.first_mut() {
            scope.metrics.push(Metric {
                name: name.to_owned(),
                data: Some(data),
                ..Default::default()
            });
        }
    }
    ExportMetricsServiceRequest {
        resource_metrics: resources,
    }
}

/// Whether a series named `name` counts up: its family is a counter, histogram
/// or summary (save a summary's quantiles), by metadata or else by name.
fn is_counter(name: &str, families: &HashMap<&str, bool>, is_quantile: bool) -> bool {
    if is_quantile {
        return false;
    }
    if let Some(&counts) = families.get(name) {
        return counts;
    }
    for suffix in ["_total", "_bucket", "_count", "_sum"] {
        if let Some(family) = name.strip_suffix(suffix) {
            if let Some(&counts) = families.get(family) {
                return counts;
            }
            if families.is_empty() || suffix == "_total" {
                return true;
            }
        }
    }
    false
}

fn resource_metrics(job: Option<&str>, instance: Option<&str>) -> ResourceMetrics {
    let attributes = [(SERVICE_NAME, job), (SERVICE_INSTANCE_ID, instance)]
        .into_iter()
        .filter_map(|(key, value)| value.map(|value| text_attribute(key, value)))
        .collect();
    ResourceMetrics {
        resource: Some(Resource {
            attributes,
            ..Default::default()
        }),
        scope_metrics: vec![ScopeMetrics::default()],
        ..Default::default()
    }
}

fn text_attribute(key: &str, value: &str) -> KeyValue {
    KeyValue {
        key: key.to_owned(),
        value: Some(AnyValue {
            value: Some(AnyValueKind::StringValue(value.to_owned())),
        }),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn series(labels: &[(&str, &str)], samples: &[(f64, i64)]) -> TimeSeries {
        TimeSeries {
            labels: labels
                .iter()
                .map(|(name, value)| Label {
                    name: (*name).into(),
                    value: (*value).into(),
                })
                .collect(),
            samples: samples
                .iter()
                .map(|&(value, timestamp)| Sample { value, timestamp })
                .collect(),
        }
    }

    fn compressed(request: &WriteRequest) -> Vec<u8> {
        snap::raw::Encoder::new()
            .compress_vec(&request.encode_to_vec())
            .unwrap()
    }

    #[test]
    fn series_group_by_job_and_instance_and_labels_become_attributes() {
        let request = WriteRequest {
            timeseries: vec![
                series(
                    &[
                        ("__name__", "http_requests_total"),
                        ("job", "api"),
                        ("instance", "a:9090"),
                        ("code", "200"),
                    ],
                    &[(3.0, 1_000), (5.0, 16_000)],
                ),
                series(
                    &[("__name__", "up"), ("job", "api"), ("instance", "a:9090")],
                    &[(1.0, 1_000)],
                ),
                series(
                    &[("__name__", "up"), ("job", "db"), ("instance", "b:9100")],
                    &[(0.0, 1_000)],
                ),
            ],
            metadata: vec![],
        };
        let decoded = decode_write_request(&compressed(&request), 1 << 20).unwrap();
        let otlp = to_otlp(&decoded);
        assert_eq!(otlp.resource_metrics.len(), 2);
        let api = &otlp.resource_metrics[0];
        let resource = &api.resource.as_ref().unwrap().attributes;
        assert_eq!(resource[0].key, "service.name");
        assert_eq!(
            resource[0].value.as_ref().unwrap().value,
            Some(AnyValueKind::StringValue("api".into()))
        );
        let metrics = &api.scope_metrics[0].metrics;
        assert_eq!(metrics.len(), 2);
        let Some(Data::Sum(counter)) = &metrics[0].data else {
            panic!("a _total series is a sum: {:?}", metrics[0].data);
        };
        assert!(counter.is_monotonic);
        assert_eq!(counter.data_points.len(), 2);
        assert_eq!(counter.data_points[1].time_unix_nano, 16_000_000_000);
        assert_eq!(counter.data_points[0].attributes.len(), 1);
        assert_eq!(counter.data_points[0].attributes[0].key, "code");
        assert!(matches!(metrics[1].data, Some(Data::Gauge(_))));
    }

    #[test]
    fn metadata_decides_what_counts_up() {
        let families = HashMap::from([("queue_depth", false), ("rpc_duration_seconds", true)]);
        assert!(!is_counter("queue_depth", &families, false));
        assert!(is_counter("rpc_duration_seconds_bucket", &families, false));
        assert!(!is_counter("rpc_duration_seconds", &families, true));
        assert!(is_counter("jobs_total", &families, false));
        assert!(!is_counter("temperature_sum", &families, false));
    }

    #[test]
    fn bodies_that_are_not_remote_write_are_refused_clearly() {
        let error = decode_write_request(b"\xff\xff\xff\xff\xff\xff", 1 << 20).unwrap_err();
        assert!(error.to_string().contains("snappy"), "{error}");
        let not_proto = snap::raw::Encoder::new()
            .compress_vec(b"\x0a\xff\xff\xff")
            .unwrap();
        let error = decode_write_request(&not_proto, 1 << 20).unwrap_err();
        assert!(error.to_string().contains("WriteRequest"), "{error}");
        let big = compressed(&WriteRequest {
            timeseries: vec![series(&[("__name__", "x")], &[(1.0, 1); 100])],
            metadata: vec![],
        });
        assert!(matches!(
            decode_write_request(&big, 64),
            Err(IngestError::BodyTooLarge { limit: 64 })
        ));
    }

    #[test]
    fn the_staleness_marker_keeps_its_bits() {
        let stale = f64::from_bits(STALE_NAN_BITS);
        let request = WriteRequest {
            timeseries: vec![series(&[("__name__", "up")], &[(stale, 1)])],
            metadata: vec![],
        };
        let otlp = to_otlp(&decode_write_request(&compressed(&request), 1 << 20).unwrap());
        let Some(Data::Gauge(gauge)) = &otlp.resource_metrics[0].scope_metrics[0].metrics[0].data
        else {
            panic!("a gauge");
        };
        let Some(NumberValue::AsDouble(value)) = gauge.data_points[0].value else {
            panic!("a double");
        };
        assert_eq!(value.to_bits(), STALE_NAN_BITS);
    }
}
