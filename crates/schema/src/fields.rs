//! Every field name Quarry reserves or maps to, and the fixed values it writes to
//! them: the one vocabulary shared by ingest, storage, queries and the demo data.
//!
//! Other crates name these fields only through these constants; a test
//! (`tests/no_field_name_literals.rs`) fails when a name reappears as a string
//! literal outside this crate and the tests. [`ALL_FIELD_NAMES`] lists them all.
//!
//! Groups: Quarry's own columns; Honeycomb's trace fields (written by the OTLP trace
//! mapping, read by traces, query specs, BubbleUp and rollups); log fields; metric
//! fields; common OpenTelemetry attribute names Quarry reads or the demo data writes.

// --- Quarry's own columns --------------------------------------------------------

/// Event time column, `Timestamp(Nanosecond, "UTC")`, never null; written by every
/// ingest path.
pub const TIMESTAMP: &str = "timestamp";
/// Sample rate of the event (`1` = not sampled); written by ingest, weights COUNT,
/// SUM, AVG and percentiles.
pub const SAMPLE_RATE: &str = "meta.sample_rate";
/// Comma-separated names of fields whose string value ingest truncated to the size
/// limit.
pub const TRUNCATED_FIELDS: &str = "meta.truncated_fields";
/// Prefix of Quarry's own columns (a user field under it is renamed `<name>#user`).
pub const META_PREFIX: &str = "meta.";
/// Dataset of each row in `FROM "__all__"` and trace lookups; added by the engine.
pub const DATASET: &str = "meta.dataset";
/// Prefix of a rollup's measure columns (`meta.rollup.sum.<column>`, ...); written
/// by the rollup builder.
pub const ROLLUP_PREFIX: &str = "meta.rollup.";
/// Σ sample rate of the rows of a rollup group; written by the rollup builder.
pub const ROLLUP_COUNT: &str = "meta.rollup.count";

// --- Honeycomb trace fields (OTLP spans, span events and links) -----------------

/// Trace id, 32 hex digits; written by the OTLP mapping (spans, events, links,
/// logs); segments carry a bloom filter on it.
pub const TRACE_ID: &str = "trace.trace_id";
/// Span id, 16 hex digits; written by the OTLP trace mapping.
pub const SPAN_ID: &str = "trace.span_id";
/// Parent span id (absent on roots; the span of a span event, link or log).
pub const PARENT_ID: &str = "trace.parent_id";
/// Span or span event name; written by the OTLP trace mapping.
pub const NAME: &str = "name";
/// Service name (an OTel resource attribute); also the default dataset.
pub const SERVICE_NAME: &str = "service.name";
/// Span duration in milliseconds; written by the OTLP trace mapping.
pub const DURATION_MS: &str = "duration_ms";
/// `true` on a span whose status is an error; written by the OTLP trace mapping.
pub const ERROR: &str = "error";
/// Span kind (`server`, `client`, ...); written by the OTLP trace mapping.
pub const SPAN_KIND: &str = "span.kind";
/// OTLP status code of the span (0 unset, 1 ok, 2 error).
pub const STATUS_CODE: &str = "status_code";
/// OTLP status message of the span, when not empty.
pub const STATUS_MESSAGE: &str = "status_message";
/// Number of span events of the span; written by the OTLP trace mapping.
pub const SPAN_NUM_EVENTS: &str = "span.num_events";
/// Number of links of the span; written by the OTLP trace mapping.
pub const SPAN_NUM_LINKS: &str = "span.num_links";
/// Trace id a link row points to; written by the OTLP trace mapping.
pub const LINK_TRACE_ID: &str = "trace.link.trace_id";
/// Span id a link row points to; written by the OTLP trace mapping.
pub const LINK_SPAN_ID: &str = "trace.link.span_id";
/// Name of the span a span event or link row belongs to.
pub const PARENT_NAME: &str = "parent_name";
/// Milliseconds from the span's start to its span event.
pub const TIME_SINCE_SPAN_START_MS: &str = "meta.time_since_span_start_ms";
/// Name of the instrumentation scope (library) of the item.
pub const LIBRARY_NAME: &str = "library.name";
/// Version of the instrumentation scope (library) of the item.
pub const LIBRARY_VERSION: &str = "library.version";
/// Kind of annotation row ([`ANNOTATION_SPAN_EVENT`], [`ANNOTATION_LINK`]); absent
/// on spans.
pub const ANNOTATION_TYPE: &str = "meta.annotation_type";
/// [`ANNOTATION_TYPE`] of a span event row.
pub const ANNOTATION_SPAN_EVENT: &str = "span_event";
/// [`ANNOTATION_TYPE`] of a link row.
pub const ANNOTATION_LINK: &str = "link";
/// Kind of signal of the row ([`SIGNAL_TRACE`], [`SIGNAL_LOG`], [`SIGNAL_METRIC`]);
/// written by the OTLP mapping.
pub const SIGNAL_TYPE: &str = "meta.signal_type";
/// [`SIGNAL_TYPE`] of spans, span events and links.
pub const SIGNAL_TRACE: &str = "trace";
/// [`SIGNAL_TYPE`] of log records.
pub const SIGNAL_LOG: &str = "log";
/// [`SIGNAL_TYPE`] of metric data points.
pub const SIGNAL_METRIC: &str = "metric";
/// Name of the OTel span event whose attributes are also copied onto its span.
pub const EXCEPTION_EVENT: &str = "exception";
/// [`SPAN_KIND`] of an internal span.
pub const SPAN_KIND_INTERNAL: &str = "internal";
/// [`SPAN_KIND`] of a server span.
pub const SPAN_KIND_SERVER: &str = "server";
/// [`SPAN_KIND`] of a client span.
pub const SPAN_KIND_CLIENT: &str = "client";
/// [`SPAN_KIND`] of a producer span.
pub const SPAN_KIND_PRODUCER: &str = "producer";
/// [`SPAN_KIND`] of a consumer span.
pub const SPAN_KIND_CONSUMER: &str = "consumer";
/// [`SPAN_KIND`] (and [`METRIC_TEMPORALITY`]) when the sender gave none.
pub const UNSPECIFIED: &str = "unspecified";

// --- Log fields (OTLP log records) ----------------------------------------------

/// Log body (a string, or flattened `body.<key>` fields for a map body).
pub const BODY: &str = "body";
/// Severity name from the OTLP severity number (`info`, `error`, ...).
pub const SEVERITY: &str = "severity";
/// Severity text as the sender wrote it.
pub const SEVERITY_TEXT: &str = "severity_text";
/// OTLP severity number (1-24, 0 unspecified).
pub const SEVERITY_CODE: &str = "severity_code";

// --- Metric fields (OTLP metric data points) -------------------------------------

/// Metric name.
pub const METRIC_NAME: &str = "metric.name";
/// Metric kind ([`METRIC_KIND_GAUGE`], [`METRIC_KIND_SUM`], ...).
pub const METRIC_KIND: &str = "metric.kind";
/// Stable id of the series (resource, scope, name, point attributes).
pub const METRIC_SERIES_ID: &str = "metric.series_id";
/// Metric description, when not empty.
pub const METRIC_DESCRIPTION: &str = "metric.description";
/// Metric unit, when not empty.
pub const METRIC_UNIT: &str = "metric.unit";
/// Start of the point's aggregation interval, ns since the epoch.
pub const METRIC_START_TIME_UNIX_NANO: &str = "metric.start_time_unix_nano";
/// Whether a sum is monotonic.
pub const METRIC_MONOTONIC: &str = "metric.monotonic";
/// Aggregation temporality ([`METRIC_TEMPORALITY_DELTA`], ...).
pub const METRIC_TEMPORALITY: &str = "metric.temporality";
/// Value of a gauge or sum point.
pub const VALUE: &str = "value";
/// Count of a histogram, exponential histogram or summary point.
pub const METRIC_COUNT: &str = "metric.count";
/// Sum of a histogram, exponential histogram or summary point.
pub const METRIC_SUM: &str = "metric.sum";
/// Minimum of a histogram or exponential histogram point.
pub const METRIC_MIN: &str = "metric.min";
/// Maximum of a histogram or exponential histogram point.
pub const METRIC_MAX: &str = "metric.max";
/// Bucket counts of a histogram point, a JSON array.
pub const METRIC_BUCKET_COUNTS: &str = "metric.bucket_counts";
/// Bucket bounds of a histogram point, a JSON array.
pub const METRIC_EXPLICIT_BOUNDS: &str = "metric.explicit_bounds";
/// Scale of an exponential histogram point.
pub const METRIC_SCALE: &str = "metric.scale";
/// Zero bucket count of an exponential histogram point.
pub const METRIC_ZERO_COUNT: &str = "metric.zero_count";
/// Zero bucket threshold of an exponential histogram point.
pub const METRIC_ZERO_THRESHOLD: &str = "metric.zero_threshold";
/// Index offset of an exponential histogram's positive buckets.
pub const METRIC_POSITIVE_OFFSET: &str = "metric.positive.offset";
/// Counts of an exponential histogram's positive buckets, a JSON array.
pub const METRIC_POSITIVE_BUCKET_COUNTS: &str = "metric.positive.bucket_counts";
/// Index offset of an exponential histogram's negative buckets.
pub const METRIC_NEGATIVE_OFFSET: &str = "metric.negative.offset";
/// Counts of an exponential histogram's negative buckets, a JSON array.
pub const METRIC_NEGATIVE_BUCKET_COUNTS: &str = "metric.negative.bucket_counts";
/// Quantiles of a summary point, JSON `{"<quantile>": value, ...}`.
pub const METRIC_QUANTILES: &str = "metric.quantiles";
/// [`METRIC_KIND`] of a gauge.
pub const METRIC_KIND_GAUGE: &str = "gauge";
/// [`METRIC_KIND`] of a sum.
pub const METRIC_KIND_SUM: &str = "sum";
/// [`METRIC_KIND`] of a histogram.
pub const METRIC_KIND_HISTOGRAM: &str = "histogram";
/// [`METRIC_KIND`] of an exponential histogram.
pub const METRIC_KIND_EXPONENTIAL_HISTOGRAM: &str = "exponential_histogram";
/// [`METRIC_KIND`] of a summary.
pub const METRIC_KIND_SUMMARY: &str = "summary";
/// [`METRIC_TEMPORALITY`] of delta points.
pub const METRIC_TEMPORALITY_DELTA: &str = "delta";
/// [`METRIC_TEMPORALITY`] of cumulative points.
pub const METRIC_TEMPORALITY_CUMULATIVE: &str = "cumulative";

// --- Common OpenTelemetry attribute names ----------------------------------------

/// OTel attributes read as the item's sample rate (Honeycomb's spellings).
pub const SAMPLE_RATE_ATTRIBUTES: [&str; 2] = ["sampleRate", "SampleRate"];
/// HTTP request method; written by the demo data.
pub const HTTP_METHOD: &str = "http.method";
/// HTTP route template; a default rollup dimension of trace datasets.
pub const HTTP_ROUTE: &str = "http.route";
/// HTTP response status code; written by the demo data.
pub const HTTP_STATUS_CODE: &str = "http.status_code";
/// Cloud region of the host; written by the demo data.
pub const CLOUD_REGION: &str = "cloud.region";
/// Host name; written by the demo data.
pub const HOST_NAME: &str = "host.name";
/// Language of the OTel SDK (resource attribute); written by the load generator.
pub const TELEMETRY_SDK_LANGUAGE: &str = "telemetry.sdk.language";
/// Name of the OTel SDK (resource attribute); written by the load generator.
pub const TELEMETRY_SDK_NAME: &str = "telemetry.sdk.name";
/// Version of the OTel SDK (resource attribute); written by the load generator.
pub const TELEMETRY_SDK_VERSION: &str = "telemetry.sdk.version";

/// Every name and fixed value above, for checks over the whole vocabulary.
pub const ALL_FIELD_NAMES: &[&str] = &[
    TIMESTAMP,
    SAMPLE_RATE,
    TRUNCATED_FIELDS,
    META_PREFIX,
    DATASET,
    ROLLUP_PREFIX,
    ROLLUP_COUNT,
    TRACE_ID,
    SPAN_ID,
    PARENT_ID,
    NAME,
    SERVICE_NAME,
    DURATION_MS,
    ERROR,
    SPAN_KIND,
    STATUS_CODE,
    STATUS_MESSAGE,
    SPAN_NUM_EVENTS,
    SPAN_NUM_LINKS,
    LINK_TRACE_ID,
    LINK_SPAN_ID,
    PARENT_NAME,
    TIME_SINCE_SPAN_START_MS,
    LIBRARY_NAME,
    LIBRARY_VERSION,
    ANNOTATION_TYPE,
    ANNOTATION_SPAN_EVENT,
    ANNOTATION_LINK,
    SIGNAL_TYPE,
    SIGNAL_TRACE,
    SIGNAL_LOG,
    SIGNAL_METRIC,
    EXCEPTION_EVENT,
    SPAN_KIND_INTERNAL,
    SPAN_KIND_SERVER,
    SPAN_KIND_CLIENT,
    SPAN_KIND_PRODUCER,
    SPAN_KIND_CONSUMER,
    UNSPECIFIED,
    BODY,
    SEVERITY,
    SEVERITY_TEXT,
    SEVERITY_CODE,
    METRIC_NAME,
    METRIC_KIND,
    METRIC_SERIES_ID,
    METRIC_DESCRIPTION,
    METRIC_UNIT,
    METRIC_START_TIME_UNIX_NANO,
    METRIC_MONOTONIC,
    METRIC_TEMPORALITY,
    VALUE,
    METRIC_COUNT,
    METRIC_SUM,
    METRIC_MIN,
    METRIC_MAX,
    METRIC_BUCKET_COUNTS,
    METRIC_EXPLICIT_BOUNDS,
    METRIC_SCALE,
    METRIC_ZERO_COUNT,
    METRIC_ZERO_THRESHOLD,
    METRIC_POSITIVE_OFFSET,
    METRIC_POSITIVE_BUCKET_COUNTS,
    METRIC_NEGATIVE_OFFSET,
    METRIC_NEGATIVE_BUCKET_COUNTS,
    METRIC_QUANTILES,
    METRIC_KIND_GAUGE,
    METRIC_KIND_SUM,
    METRIC_KIND_HISTOGRAM,
    METRIC_KIND_EXPONENTIAL_HISTOGRAM,
    METRIC_KIND_SUMMARY,
    METRIC_TEMPORALITY_DELTA,
    METRIC_TEMPORALITY_CUMULATIVE,
    SAMPLE_RATE_ATTRIBUTES[0],
    SAMPLE_RATE_ATTRIBUTES[1],
    HTTP_METHOD,
    HTTP_ROUTE,
    HTTP_STATUS_CODE,
    CLOUD_REGION,
    HOST_NAME,
    TELEMETRY_SDK_LANGUAGE,
    TELEMETRY_SDK_NAME,
    TELEMETRY_SDK_VERSION,
];

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn names_are_distinct() {
        let mut seen = HashSet::new();
        for name in ALL_FIELD_NAMES {
            assert!(seen.insert(*name), "{name} listed twice");
        }
    }
}
