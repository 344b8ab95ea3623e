//! Metric data points to rows: one row per point of a sum, gauge, histogram,
//! exponential histogram or summary, with its temporality and monotonicity.
//!
//! Number points store their value in `value` as a float whatever the point's
//! type, so that int counters and float gauges of one service share one column
//! (an int column would send every float to a `value#float` sibling).

use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::common::v1::KeyValue;
use opentelemetry_proto::tonic::metrics::v1::exponential_histogram_data_point::Buckets;
use opentelemetry_proto::tonic::metrics::v1::metric::Data;
use opentelemetry_proto::tonic::metrics::v1::number_data_point::Value as NumberValue;
use opentelemetry_proto::tonic::metrics::v1::{
    AggregationTemporality, ExponentialHistogramDataPoint, HistogramDataPoint, Metric,
    NumberDataPoint, SummaryDataPoint,
};
use prost::Message;
use quarry_schema::DatasetSchema;
use quarry_schema::fields::{
    METRIC_BUCKET_COUNTS, METRIC_COUNT, METRIC_DESCRIPTION, METRIC_EXPLICIT_BOUNDS, METRIC_KIND,
    METRIC_KIND_EXPONENTIAL_HISTOGRAM, METRIC_KIND_GAUGE, METRIC_KIND_HISTOGRAM, METRIC_KIND_SUM,
    METRIC_KIND_SUMMARY, METRIC_MAX, METRIC_MIN, METRIC_MONOTONIC, METRIC_NAME,
    METRIC_NEGATIVE_BUCKET_COUNTS, METRIC_NEGATIVE_OFFSET, METRIC_POSITIVE_BUCKET_COUNTS,
    METRIC_POSITIVE_OFFSET, METRIC_QUANTILES, METRIC_SCALE, METRIC_SERIES_ID,
    METRIC_START_TIME_UNIX_NANO, METRIC_SUM, METRIC_TEMPORALITY, METRIC_TEMPORALITY_CUMULATIVE,
    METRIC_TEMPORALITY_DELTA, METRIC_UNIT, METRIC_ZERO_COUNT, METRIC_ZERO_THRESHOLD, SIGNAL_METRIC,
    SIGNAL_TYPE, UNSPECIFIED, VALUE,
};

use super::series;
use super::sink::{Datasets, Sink, UNKNOWN_SERVICE};
use super::values::{
    put_attributes, put_bool, put_float, put_int, put_json_numbers, put_resource, put_scope,
    put_text, put_uint,
};
use super::{OtlpBatches, OtlpContext, time_ns};
use crate::IngestError;
use crate::flat_event::{Checkpoint, FlatEvent};
use crate::sample_rate::DEFAULT_SAMPLE_RATE;

/// Maps a metrics export request to one batch per dataset.
pub fn map_metrics(
    request: &ExportMetricsServiceRequest,
    ctx: &OtlpContext,
    schema_of: &dyn Fn(&str) -> Option<DatasetSchema>,
) -> Result<OtlpBatches, IngestError> {
    let resources = request.resource_metrics.iter().map(|r| r.resource.as_ref());
    let (datasets, slots) = Datasets::collect(resources, ctx, UNKNOWN_SERVICE, schema_of);
    let mut rows = Rows {
        sink: Sink::new(&datasets, ctx),
        event: FlatEvent::new(ctx.limits),
        now_ns: ctx.now_ns,
    };
    for (resource_metrics, &slot) in request.resource_metrics.iter().zip(&slots) {
        rows.event.clear();
        let resource_rate = put_resource(&mut rows.event, resource_metrics.resource.as_ref());
        let resource_mark = rows.event.checkpoint();
        let resource = series::resource_digest(resource_metrics.resource.as_ref());
        for scope_metrics in &resource_metrics.scope_metrics {
            rows.event.restore(resource_mark);
            let sample_rate =
                put_scope(&mut rows.event, scope_metrics.scope.as_ref()).or(resource_rate);
            let scope = Scope {
                slot,
                mark: rows.event.checkpoint(),
                sample_rate,
                resource,
                scope: series::scope_digest(scope_metrics.scope.as_ref()),
            };
            for metric in &scope_metrics.metrics {
                rows.metric(metric, &scope);
            }
        }
    }
    rows.sink.finish()
}

struct Scope {
    slot: usize,
    mark: Checkpoint,
    sample_rate: Option<i64>,
    /// Series identity of the resource and of the scope (see [`series`]).
    resource: u64,
    scope: u64,
}

struct Rows<'s> {
    sink: Sink<'s>,
    event: FlatEvent,
    now_ns: i64,
}

/// What every data point has.
struct Point<'p> {
    attributes: &'p [KeyValue],
    start_time_unix_nano: u64,
    time_unix_nano: u64,
    encoded_len: usize,
}

impl Rows<'_> {
    fn metric(&mut self, metric: &Metric, scope: &Scope) {
        match &metric.data {
            None => {}
            Some(Data::Gauge(gauge)) => {
                for point in &gauge.data_points {
                    self.row(
                        metric,
                        METRIC_KIND_GAUGE,
                        scope,
                        &number_point(point),
                        |event| {
                            put_number(event, point);
                        },
                    );
                }
            }
            Some(Data::Sum(sum)) => {
                for point in &sum.data_points {
                    self.row(
                        metric,
                        METRIC_KIND_SUM,
                        scope,
                        &number_point(point),
                        |event| {
                            put_temporality(event, sum.aggregation_temporality);
                            put_bool(event, METRIC_MONOTONIC, sum.is_monotonic);
                            put_number(event, point);
                        },
                    );
                }
            }
            Some(Data::Histogram(histogram)) => {
                for point in &histogram.data_points {
                    let common = histogram_point(point);
                    self.row(metric, METRIC_KIND_HISTOGRAM, scope, &common, |event| {
                        put_temporality(event, histogram.aggregation_temporality);
                        put_histogram(event, point);
                    });
                }
            }
            Some(Data::ExponentialHistogram(histogram)) => {
                for point in &histogram.data_points {
                    let common = exponential_point(point);
                    self.row(
                        metric,
                        METRIC_KIND_EXPONENTIAL_HISTOGRAM,
                        scope,
                        &common,
                        |event| {
                            put_temporality(event, histogram.aggregation_temporality);
                            put_exponential(event, point);
                        },
                    );
                }
            }
            Some(Data::Summary(summary)) => {
                for point in &summary.data_points {
                    self.row(
                        metric,
                        METRIC_KIND_SUMMARY,
                        scope,
                        &summary_point(point),
                        |event| {
                            put_summary(event, point);
                        },
                    );
                }
            }
        }
    }

    /// One data point's row: its attributes, the metric's fields, then `values`.
    fn row(
        &mut self,
        metric: &Metric,
        kind: &str,
        scope: &Scope,
        point: &Point,
        values: impl FnOnce(&mut FlatEvent),
    ) {
        let event = &mut self.event;
        event.restore(scope.mark);
        if let Err(error) = self.sink.check_size(point.encoded_len) {
            self.sink.reject(&error);
            return;
        }
        let sample_rate = put_attributes(event, point.attributes)
            .or(scope.sample_rate)
            .unwrap_or(DEFAULT_SAMPLE_RATE);
        put_text(event, METRIC_NAME, &metric.name);
        put_text(event, METRIC_KIND, kind);
        let series = series::series_id(scope.resource, scope.scope, &metric.name, point.attributes);
        put_text(event, METRIC_SERIES_ID, &series);
        if !metric.description.is_empty() {
            put_text(event, METRIC_DESCRIPTION, &metric.description);
        }
        if !metric.unit.is_empty() {
            put_text(event, METRIC_UNIT, &metric.unit);
        }
        if let Some(start) = time_ns(point.start_time_unix_nano) {
            put_int(event, METRIC_START_TIME_UNIX_NANO, start);
        }
        values(event);
        event.own_string(SIGNAL_TYPE, SIGNAL_METRIC);
        let time = time_ns(point.time_unix_nano).unwrap_or(self.now_ns);
        self.sink.append(scope.slot, event, time, sample_rate);
    }
}

fn number_point(point: &NumberDataPoint) -> Point<'_> {
    Point {
        attributes: &point.attributes,
        start_time_unix_nano: point.start_time_unix_nano,
        time_unix_nano: point.time_unix_nano,
        encoded_len: point.encoded_len(),
    }
}

fn histogram_point(point: &HistogramDataPoint) -> Point<'_> {
    Point {
        attributes: &point.attributes,
        start_time_unix_nano: point.start_time_unix_nano,
        time_unix_nano: point.time_unix_nano,
        encoded_len: point.encoded_len(),
    }
}

fn exponential_point(point: &ExponentialHistogramDataPoint) -> Point<'_> {
    Point {
        attributes: &point.attributes,
        start_time_unix_nano: point.start_time_unix_nano,
        time_unix_nano: point.time_unix_nano,
        encoded_len: point.encoded_len(),
    }
}

fn summary_point(point: &SummaryDataPoint) -> Point<'_> {
    Point {
        attributes: &point.attributes,
        start_time_unix_nano: point.start_time_unix_nano,
        time_unix_nano: point.time_unix_nano,
        encoded_len: point.encoded_len(),
    }
}

/// `value`: the point's number as a float (see the module docs).
fn put_number(event: &mut FlatEvent, point: &NumberDataPoint) {
    match point.value {
        Some(NumberValue::AsDouble(value)) => put_float(event, VALUE, value),
        Some(NumberValue::AsInt(value)) => put_float(event, VALUE, value as f64),
        None => {}
    }
}

/// `metric.temporality`: `delta`, `cumulative` or `unspecified`.
fn put_temporality(event: &mut FlatEvent, temporality: i32) {
    let name = match AggregationTemporality::try_from(temporality) {
        Ok(AggregationTemporality::Delta) => METRIC_TEMPORALITY_DELTA,
        Ok(AggregationTemporality::Cumulative) => METRIC_TEMPORALITY_CUMULATIVE,
        Ok(AggregationTemporality::Unspecified) | Err(_) => UNSPECIFIED,
    };
    put_text(event, METRIC_TEMPORALITY, name);
}

/// Count, sum, min and max, shared by histograms and summaries.
fn put_aggregates(
    event: &mut FlatEvent,
    count: u64,
    sum: Option<f64>,
    min: Option<f64>,
    max: Option<f64>,
) {
    put_uint(event, METRIC_COUNT, count);
    for (key, value) in [(METRIC_SUM, sum), (METRIC_MIN, min), (METRIC_MAX, max)] {
        if let Some(value) = value {
            put_float(event, key, value);
        }
    }
}

fn put_histogram(event: &mut FlatEvent, point: &HistogramDataPoint) {
    put_aggregates(event, point.count, point.sum, point.min, point.max);
    put_json_numbers(event, METRIC_BUCKET_COUNTS, &point.bucket_counts);
    put_json_numbers(event, METRIC_EXPLICIT_BOUNDS, &point.explicit_bounds);
}

fn put_exponential(event: &mut FlatEvent, point: &ExponentialHistogramDataPoint) {
    put_aggregates(event, point.count, point.sum, point.min, point.max);
    put_int(event, METRIC_SCALE, i64::from(point.scale));
    put_uint(event, METRIC_ZERO_COUNT, point.zero_count);
    put_float(event, METRIC_ZERO_THRESHOLD, point.zero_threshold);
    put_buckets(
        event,
        [METRIC_POSITIVE_OFFSET, METRIC_POSITIVE_BUCKET_COUNTS],
        point.positive.as_ref(),
    );
    put_buckets(
        event,
        [METRIC_NEGATIVE_OFFSET, METRIC_NEGATIVE_BUCKET_COUNTS],
        point.negative.as_ref(),
    );
}

/// The offset and bucket counts of one side of an exponential histogram, under
/// the `[offset, bucket_counts]` names of that side.
fn put_buckets(event: &mut FlatEvent, [offset, counts]: [&str; 2], buckets: Option<&Buckets>) {
    let Some(buckets) = buckets else {
        return;
    };
    put_int(event, offset, i64::from(buckets.offset));
    put_json_numbers(event, counts, &buckets.bucket_counts);
}

/// Count, sum and `metric.quantiles`: `{"<quantile>": value, ...}` as JSON text.
fn put_summary(event: &mut FlatEvent, point: &SummaryDataPoint) {
    put_aggregates(event, point.count, Some(point.sum), None, None);
    let quantiles: serde_json::Map<String, serde_json::Value> = point
        .quantile_values
        .iter()
        .map(|q| (q.quantile.to_string(), serde_json::Value::from(q.value)))
        .collect();
    let mark = event.enter(METRIC_QUANTILES);
    event.json_value(&serde_json::Value::Object(quantiles));
    event.leave(mark);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Limits;
    use crate::otlp::test_support::*;
    use opentelemetry_proto::tonic::common::v1::any_value::Value;
    use opentelemetry_proto::tonic::metrics::v1::summary_data_point::ValueAtQuantile;
    use opentelemetry_proto::tonic::metrics::v1::{
        ExponentialHistogram, Gauge, Histogram, ResourceMetrics, ScopeMetrics, Sum, Summary,
    };

    const TIME: u64 = 1_714_564_800_000_000_000;

    fn metric(name: &str, data: Data) -> Metric {
        Metric {
            name: name.into(),
            description: format!("about {name}"),
            unit: "1".into(),
            data: Some(data),
            ..Default::default()
        }
    }

    fn number(value: NumberValue, attributes: Vec<KeyValue>) -> NumberDataPoint {
        NumberDataPoint {
            attributes,
            start_time_unix_nano: TIME - 1_000,
            time_unix_nano: TIME,
            value: Some(value),
            ..Default::default()
        }
    }

    #[test]
    fn one_row_per_point_of_every_kind() {
        let metrics = vec![
            metric(
                "requests",
                Data::Sum(Sum {
                    data_points: vec![
                        number(NumberValue::AsInt(5), vec![text("route", "/a")]),
                        number(NumberValue::AsInt(7), vec![text("route", "/b")]),
                    ],
                    aggregation_temporality: AggregationTemporality::Cumulative as i32,
                    is_monotonic: true,
                }),
            ),
            metric(
                "temperature",
                Data::Gauge(Gauge {
                    data_points: vec![number(NumberValue::AsDouble(21.5), vec![])],
                }),
            ),
            metric(
                "latency",
                Data::Histogram(Histogram {
                    data_points: vec![HistogramDataPoint {
                        time_unix_nano: TIME,
                        count: 6,
                        sum: Some(12.5),
                        bucket_counts: vec![1, 2, 3],
                        explicit_bounds: vec![1.0, 5.0],
                        min: Some(0.5),
                        max: Some(9.0),
                        ..Default::default()
                    }],
                    aggregation_temporality: AggregationTemporality::Delta as i32,
                }),
            ),
            metric(
                "sizes",
                Data::ExponentialHistogram(ExponentialHistogram {
                    data_points: vec![ExponentialHistogramDataPoint {
                        time_unix_nano: TIME,
                        count: 3,
                        scale: 2,
                        zero_count: 1,
                        positive: Some(Buckets {
                            offset: -1,
                            bucket_counts: vec![1, 1],
                        }),
                        ..Default::default()
                    }],
                    aggregation_temporality: AggregationTemporality::Cumulative as i32,
                }),
            ),
            metric(
                "rpc",
                Data::Summary(Summary {
                    data_points: vec![SummaryDataPoint {
                        time_unix_nano: TIME,
                        count: 10,
                        sum: 20.0,
                        quantile_values: vec![
                            ValueAtQuantile {
                                quantile: 0.5,
                                value: 1.5,
                            },
                            ValueAtQuantile {
                                quantile: 0.99,
                                value: 4.0,
                            },
                        ],
                        ..Default::default()
                    }],
                }),
            ),
        ];
        let request = ExportMetricsServiceRequest {
            resource_metrics: vec![ResourceMetrics {
                resource: resource(Some("shop"), vec![kv("sampleRate", Value::IntValue(3))]),
                scope_metrics: vec![ScopeMetrics {
                    metrics,
                    ..Default::default()
                }],
                ..Default::default()
            }],
        };
        let limits = Limits::default();
        let decoded = map_metrics(&request, &context(&limits), &|_| None).unwrap();
        let batch = batch(&decoded, "shop");
        assert_eq!(batch.num_rows(), 6);
        assert_eq!(
            strings(batch, "metric.name"),
            some(&[
                "requests",
                "requests",
                "temperature",
                "latency",
                "sizes",
                "rpc"
            ])
        );
        assert_eq!(
            strings(batch, "metric.kind"),
            some(&[
                "sum",
                "sum",
                "gauge",
                "histogram",
                "exponential_histogram",
                "summary"
            ])
        );
        assert_eq!(
            floats(batch, "value"),
            [Some(5.0), Some(7.0), Some(21.5), None, None, None]
        );
        assert_eq!(
            strings(batch, "metric.temporality"),
            [
                Some("cumulative".into()),
                Some("cumulative".into()),
                None,
                Some("delta".into()),
                Some("cumulative".into()),
                None
            ]
        );
        assert_eq!(
            bools(batch, "metric.monotonic"),
            [Some(true), Some(true), None, None, None, None]
        );
        assert_eq!(strings(batch, "route")[..2], some(&["/a", "/b"]));
        assert_eq!(
            ints(batch, "metric.count")[3..],
            [Some(6), Some(3), Some(10)]
        );
        assert_eq!(
            floats(batch, "metric.sum")[3..],
            [Some(12.5), None, Some(20.0)]
        );
        assert_eq!(floats(batch, "metric.min")[3], Some(0.5));
        assert_eq!(floats(batch, "metric.max")[3], Some(9.0));
        assert_eq!(
            strings(batch, "metric.bucket_counts")[3],
            Some("[1,2,3]".into())
        );
        assert_eq!(
            strings(batch, "metric.explicit_bounds")[3],
            Some("[1.0,5.0]".into())
        );
        assert_eq!(ints(batch, "metric.scale")[4], Some(2));
        assert_eq!(ints(batch, "metric.zero_count")[4], Some(1));
        assert_eq!(ints(batch, "metric.positive.offset")[4], Some(-1));
        assert_eq!(
            strings(batch, "metric.positive.bucket_counts")[4],
            Some("[1,1]".into())
        );
        assert_eq!(
            strings(batch, "metric.quantiles")[5],
            Some(r#"{"0.5":1.5,"0.99":4.0}"#.into())
        );
        assert_eq!(
            ints(batch, "metric.start_time_unix_nano")[..3],
            [Some(TIME as i64 - 1_000); 3]
        );
        assert_eq!(strings(batch, "metric.unit")[0], Some("1".into()));
        assert_eq!(
            strings(batch, "metric.description")[0],
            Some("about requests".into())
        );
        assert_eq!(times(batch), [TIME as i64; 6]);
        assert_eq!(ints(batch, quarry_schema::SAMPLE_RATE), [Some(3); 6]);
        assert_eq!(strings(batch, "meta.signal_type"), some(&["metric"; 6]));
        assert_eq!(strings(batch, "service.name"), some(&["shop"; 6]));
    }
}
