//! The server's own metrics, and `/metrics`: the OpenMetrics text of one registry
//! that every part registers its metrics in, each part defining its own (the
//! store's in `quarry-segment-store`, the query engine's in `quarry-engine`).
//!
//! The HTTP latency histogram carries exemplars: the trace id of a request that
//! came with a W3C `traceparent`, so a slow bucket links to a trace of it.

use std::sync::Arc;
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::Response;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::exemplar::HistogramWithExemplars;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// Route label of requests that matched no route (keeps label cardinality bounded).
const UNMATCHED_ROUTE: &str = "unmatched";

/// Content type of the OpenMetrics text exposition.
pub const OPENMETRICS_CONTENT_TYPE: &str =
    "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Labels of a counted response.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct RouteStatus {
    /// The route template (`/1/events/{dataset}`), never the raw path.
    pub route: String,
    /// `2xx`, `4xx`, ...
    pub status: &'static str,
}

/// Label of a timed request: its route template.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct RouteLabel {
    /// The route template.
    pub route: String,
}

/// Exemplar of a timed request: the trace it was part of.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct TraceExemplar {
    /// The W3C trace id, 32 lower-case hex digits.
    pub trace_id: String,
}

/// Label of a timed ingest request: what its body held.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct PayloadLabel {
    /// `event`, `batch`, `otlp_traces`, `otlp_logs` or `otlp_metrics`.
    pub payload: &'static str,
}

/// Buckets of request latencies: 0.5 ms to about 65 s, doubling.
fn latency_buckets() -> impl Iterator<Item = f64> {
    exponential_buckets(0.000_5, 2.0, 18)
}

/// Metrics of the HTTP layer and the ingest service.
#[derive(Debug)]
pub struct ApiMetrics {
    /// Responses by route template and status class.
    http_requests: Family<RouteStatus, Counter>,
    /// Seconds from a request's arrival to its response, by route template: the
    /// latency of every query endpoint as well as of ingest over HTTP.
    http_request_seconds: Family<RouteLabel, HistogramWithExemplars<TraceExemplar>>,
    /// Seconds the ingest service took per admitted request (every transport).
    ingest_request_seconds: Family<PayloadLabel, Histogram>,
    /// Events written to the store.
    events_accepted: Counter,
    /// Events refused by decoding or validation.
    events_rejected: Counter,
}

impl Default for ApiMetrics {
    fn default() -> Self {
        ApiMetrics {
            http_requests: Family::default(),
            http_request_seconds: Family::new_with_constructor(|| {
                HistogramWithExemplars::new(latency_buckets())
            }),
            ingest_request_seconds: Family::new_with_constructor(|| {
                Histogram::new(latency_buckets())
            }),
            events_accepted: Counter::default(),
            events_rejected: Counter::default(),
        }
    }
}

impl ApiMetrics {
    /// Counts one answered request and its latency, with the trace it was part
    /// of as the latency's exemplar.
    pub fn record_request(
        &self,
        route: &str,
        status: StatusCode,
        seconds: f64,
        trace_id: Option<String>,
    ) {
        self.http_requests
            .get_or_create(&RouteStatus {
                route: route.to_owned(),
                status: status_class(status),
            })
            .inc();
        self.http_request_seconds
            .get_or_create(&RouteLabel {
                route: route.to_owned(),
            })
            .observe(
                seconds,
                trace_id.map(|trace_id| TraceExemplar { trace_id }),
                None,
            );
    }

    /// Adds to the accepted and rejected event counters.
    pub fn record_events(&self, accepted: u64, rejected: u64) {
        self.events_accepted.inc_by(accepted);
        self.events_rejected.inc_by(rejected);
    }

    /// Times one ingest request of the ingest service.
    pub fn record_ingest(&self, payload: &'static str, seconds: f64) {
        self.ingest_request_seconds
            .get_or_create(&PayloadLabel { payload })
            .observe(seconds);
    }

    /// Events accepted so far.
    pub fn events_accepted(&self) -> u64 {
        self.events_accepted.get()
    }

    /// Registers every metric of the HTTP layer and the ingest service.
    pub fn register(&self, registry: &mut Registry) {
        registry.register(
            "quarry_ingest_events_accepted",
            "Events accepted by the events API",
            self.events_accepted.clone(),
        );
        registry.register(
            "quarry_ingest_events_rejected",
            "Events refused by the events API",
            self.events_rejected.clone(),
        );
        registry.register(
            "quarry_ingest_request_duration_seconds",
            "Seconds the ingest service took per admitted request, from decoding to durable rows, by payload",
            self.ingest_request_seconds.clone(),
        );
        registry.register(
            "quarry_http_requests",
            "HTTP requests by route and status class",
            self.http_requests.clone(),
        );
        registry.register(
            "quarry_http_request_duration_seconds",
            "Seconds from an HTTP request's arrival to its response, by route",
            self.http_request_seconds.clone(),
        );
    }
}

fn status_class(status: StatusCode) -> &'static str {
    match status.as_u16() / 100 {
        1 => "1xx",
        2 => "2xx",
        3 => "3xx",
        4 => "4xx",
        _ => "5xx",
    }
}

/// Middleware counting and timing every response by route template.
pub async fn track_requests(
    State(metrics): State<Arc<ApiMetrics>>,
    request: Request,
    next: Next,
) -> Response {
    let route = request.extensions().get::<MatchedPath>().map_or_else(
        || UNMATCHED_ROUTE.to_owned(),
        |path| path.as_str().to_owned(),
    );
    let trace_id = request
        .headers()
        .get(TRACEPARENT)
        .and_then(|value| value.to_str().ok())
        .and_then(trace_id_of);
    let started = Instant::now();
    let response = next.run(request).await;
    metrics.record_request(
        &route,
        response.status(),
        started.elapsed().as_secs_f64(),
        trace_id,
    );
    response
}

/// The W3C trace context header.
const TRACEPARENT: &str = "traceparent";

/// The trace id of a `traceparent` value (`00-<trace id>-<span id>-<flags>`),
/// when it is well formed and not the all-zero id.
fn trace_id_of(traceparent: &str) -> Option<String> {
    let mut parts = traceparent.trim().split('-');
    let (version, trace_id) = (parts.next()?, parts.next()?);
    let hex = |text: &str, len: usize| {
        text.len() == len
            && text
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    };
    (hex(version, 2) && version != "ff" && hex(trace_id, 32) && trace_id.bytes().any(|b| b != b'0'))
        .then(|| trace_id.to_owned())
}

/// The OpenMetrics text of `registry`.
pub fn render(registry: &Registry) -> String {
    let mut text = String::new();
    // Writing to a String cannot fail.
    let _ = prometheus_client::encoding::text::encode(&mut text, registry);
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use quarry_engine::QueryMetrics;
    use quarry_segment_store::StoreMetrics;

    #[test]
    fn renders_every_family_with_help_and_type() {
        let store = StoreMetrics::default();
        store.appended_rows.inc_by(42);
        store.buffered_bytes.set(1000);
        store.wal_fsync_seconds.observe(0.003);
        let query = QueryMetrics::default();
        query.segments_pruned_by_bloom.inc_by(3);
        let api = ApiMetrics::default();
        api.record_events(5, 2);
        api.record_request("/1/events/{dataset}", StatusCode::OK, 0.01, None);
        api.record_request(
            "/1/events/{dataset}",
            StatusCode::ACCEPTED,
            0.02,
            Some("4bf92f3577b34da6a3ce929d0e0e4736".into()),
        );
        api.record_request(
            "/1/events/{dataset}",
            StatusCode::PAYLOAD_TOO_LARGE,
            0.001,
            None,
        );
        api.record_ingest("batch", 0.004);
        let mut registry = Registry::default();
        store.register(&mut registry);
        query.register(&mut registry);
        api.register(&mut registry);

        let text = render(&registry);
        assert!(
            text.contains(
                "# TYPE quarry_store_appended_rows counter\nquarry_store_appended_rows_total 42\n"
            ),
            "{text}"
        );
        assert!(text.contains(
            "# TYPE quarry_store_buffered_bytes gauge\nquarry_store_buffered_bytes 1000\n"
        ));
        assert!(text.contains("quarry_query_segments_pruned_by_bloom_total 3\n"));
        assert!(text.contains("quarry_ingest_events_accepted_total 5\n"));
        assert!(text.contains("quarry_ingest_events_rejected_total 2\n"));
        assert!(text.contains(
            "quarry_http_requests_total{route=\"/1/events/{dataset}\",status=\"2xx\"} 2\n"
        ));
        assert!(text.contains(
            "quarry_http_requests_total{route=\"/1/events/{dataset}\",status=\"4xx\"} 1\n"
        ));
        assert!(text.contains(
            "quarry_http_request_duration_seconds_count{route=\"/1/events/{dataset}\"} 3\n"
        ));
        assert!(text.contains("quarry_wal_fsync_duration_seconds_count 1\n"));
        // The traced request's bucket names its trace.
        assert!(
            text.contains(
                "quarry_http_request_duration_seconds_bucket{le=\"0.032\",route=\"/1/events/{dataset}\"} 3 # {trace_id=\"4bf92f3577b34da6a3ce929d0e0e4736\"} 0.02"
            ),
            "{text}"
        );
        assert!(
            text.contains(
                "quarry_ingest_request_duration_seconds_bucket{le=\"0.004\",payload=\"batch\"} 1\n"
            ) || text
                .contains("quarry_ingest_request_duration_seconds_count{payload=\"batch\"} 1\n")
        );
        assert!(text.ends_with("# EOF\n"));
        // Every sample line belongs to a family announced by HELP and TYPE lines.
        for line in text.lines().filter(|line| !line.starts_with('#')) {
            let sample = line.split(['{', ' ']).next().unwrap();
            let family = ["_total", "_bucket", "_sum", "_count"]
                .iter()
                .find_map(|suffix| sample.strip_suffix(suffix))
                .unwrap_or(sample);
            assert!(
                text.contains(&format!("# TYPE {family} ")),
                "no TYPE for {sample}"
            );
            assert!(
                text.contains(&format!("# HELP {family} ")),
                "no HELP for {sample}"
            );
        }
    }

    #[test]
    fn trace_ids_come_from_well_formed_traceparents_only() {
        assert_eq!(
            trace_id_of("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01").as_deref(),
            Some("4bf92f3577b34da6a3ce929d0e0e4736")
        );
        for bad in [
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e47-00f067aa0ba902b7-01",
            "garbage",
        ] {
            assert_eq!(trace_id_of(bad), None, "{bad}");
        }
    }

    #[test]
    fn label_values_are_escaped() {
        let api = ApiMetrics::default();
        api.record_request("a\"b\\c\nd", StatusCode::OK, 0.0, None);
        let mut registry = Registry::default();
        api.register(&mut registry);
        let text = render(&registry);
        assert!(text.contains(r#"route="a\"b\\c\nd""#), "{text}");
    }
}
