//! The server's own counters and the Prometheus text exposition of all of Quarry's.
//!
//! The engine crates keep their counters as plain atomics (`StoreMetrics`,
//! `QueryMetrics`); this module only names and renders them, so `/metrics` is the one
//! place where metric names are decided.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::extract::{MatchedPath, Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::Response;
use parking_lot::Mutex;
use quarry_engine::QueryMetrics;
use quarry_segment_store::StoreMetrics;

/// Route label of requests that matched no route (keeps label cardinality bounded).
const UNMATCHED_ROUTE: &str = "unmatched";

/// Counters kept by the HTTP layer.
#[derive(Debug, Default)]
pub struct ApiMetrics {
    /// Requests by (route template, status class).
    http_requests: Mutex<BTreeMap<(String, &'static str), u64>>,
    /// Events written to the store.
    pub events_accepted: AtomicU64,
    /// Events refused by decoding or validation.
    pub events_rejected: AtomicU64,
}

impl ApiMetrics {
    /// Counts one answered request.
    pub fn record_request(&self, route: &str, status: StatusCode) {
        *self
            .http_requests
            .lock()
            .entry((route.to_owned(), status_class(status)))
            .or_insert(0) += 1;
    }

    /// Adds to the accepted and rejected event counters.
    pub fn record_events(&self, accepted: u64, rejected: u64) {
        self.events_accepted.fetch_add(accepted, Ordering::Relaxed);
        self.events_rejected.fetch_add(rejected, Ordering::Relaxed);
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

/// Middleware counting every response by route template and status class.
pub async fn track_requests(
    State(metrics): State<Arc<ApiMetrics>>,
    request: Request,
    next: Next,
) -> Response {
    let route = request.extensions().get::<MatchedPath>().map_or_else(
        || UNMATCHED_ROUTE.to_owned(),
        |path| path.as_str().to_owned(),
    );
    let response = next.run(request).await;
    metrics.record_request(&route, response.status());
    response
}

/// The Prometheus text exposition (format 0.0.4) of every Quarry counter.
pub fn render(store: &StoreMetrics, query: &QueryMetrics, api: &ApiMetrics) -> String {
    let mut out = String::new();
    let store_counters: [(&str, &AtomicU64, &str); 10] = [
        (
            "appended_rows",
            &store.appended_rows,
            "Rows appended to the store.",
        ),
        (
            "appended_batches",
            &store.appended_batches,
            "Batches appended to the store.",
        ),
        (
            "wal_bytes",
            &store.wal_bytes,
            "Bytes written to the write-ahead log.",
        ),
        (
            "wal_fsyncs",
            &store.wal_fsyncs,
            "Fsyncs of the write-ahead log.",
        ),
        (
            "appends_refused_overloaded",
            &store.appends_refused_overloaded,
            "Appends refused because the store was overloaded.",
        ),
        (
            "segments_written",
            &store.segments_written,
            "Parquet segments written.",
        ),
        (
            "rows_sealed",
            &store.rows_sealed,
            "Rows sealed into Parquet segments.",
        ),
        (
            "manifest_commits",
            &store.manifest_commits,
            "Manifest log entries committed.",
        ),
        (
            "wal_files_deleted",
            &store.wal_files_deleted,
            "Write-ahead log files deleted after sealing.",
        ),
        (
            "replayed_rows",
            &store.replayed_rows,
            "Rows replayed from the write-ahead log at startup.",
        ),
    ];
    for (field, value, help) in store_counters {
        counter(
            &mut out,
            &format!("quarry_store_{field}_total"),
            help,
            load(value),
        );
    }
    let maintenance_counters: [(&str, &AtomicU64, &str); 9] = [
        (
            "compactions",
            &store.compactions,
            "Compaction merges committed.",
        ),
        (
            "segments_compacted",
            &store.segments_compacted,
            "Segments merged away by compaction.",
        ),
        (
            "compaction_bytes_read",
            &store.compaction_bytes_read,
            "File bytes of the segments compaction merged.",
        ),
        (
            "compaction_bytes_written",
            &store.compaction_bytes_written,
            "File bytes of the segments compaction wrote.",
        ),
        (
            "segments_expired",
            &store.segments_expired,
            "Segments dropped by retention.",
        ),
        (
            "rows_expired",
            &store.rows_expired,
            "Rows of the segments dropped by retention.",
        ),
        (
            "bytes_expired",
            &store.bytes_expired,
            "File bytes of the segments dropped by retention.",
        ),
        (
            "rollup_segments_removed",
            &store.rollup_segments_removed,
            "Rollup segment files removed with their source segments.",
        ),
        (
            "orphan_files_deleted",
            &store.orphan_files_deleted,
            "Unreferenced data files deleted by the orphan sweep.",
        ),
    ];
    for (field, value, help) in maintenance_counters {
        counter(
            &mut out,
            &format!("quarry_store_{field}_total"),
            help,
            load(value),
        );
    }
    gauge(
        &mut out,
        "quarry_store_buffered_bytes",
        "Bytes held in in-memory buffers, not yet sealed.",
        load(&store.buffered_bytes),
    );
    gauge(
        &mut out,
        "quarry_manifest_quarantined_records",
        "Manifest records set aside at start because they could not be read (their files are kept).",
        load(&store.manifest_quarantined_records),
    );

    let query_counters: [(&str, &AtomicU64, &str); 5] = [
        (
            "segments_considered",
            &query.segments_considered,
            "Segments considered by query planning.",
        ),
        (
            "segments_pruned_by_time_or_stats",
            &query.segments_pruned_by_time_or_stats,
            "Segments skipped by time range or column statistics.",
        ),
        (
            "segments_pruned_by_bloom",
            &query.segments_pruned_by_bloom,
            "Segments skipped by bloom filters.",
        ),
        (
            "segments_scanned",
            &query.segments_scanned,
            "Segments scanned by queries.",
        ),
        (
            "bloom_filter_reads",
            &query.bloom_filter_reads,
            "Bloom filters read from segments.",
        ),
    ];
    for (field, value, help) in query_counters {
        counter(
            &mut out,
            &format!("quarry_query_{field}_total"),
            help,
            load(value),
        );
    }

    counter(
        &mut out,
        "quarry_ingest_events_accepted_total",
        "Events accepted by the events API.",
        load(&api.events_accepted),
    );
    counter(
        &mut out,
        "quarry_ingest_events_rejected_total",
        "Events refused by the events API.",
        load(&api.events_rejected),
    );

    header(
        &mut out,
        "quarry_http_requests_total",
        "HTTP requests by route and status class.",
        "counter",
    );
    for ((route, class), count) in api.http_requests.lock().iter() {
        let _ = writeln!(
            out,
            "quarry_http_requests_total{{route=\"{}\",status=\"{class}\"}} {count}",
            escape_label(route)
        );
    }
    out
}

fn load(value: &AtomicU64) -> u64 {
    value.load(Ordering::Relaxed)
}

fn header(out: &mut String, name: &str, help: &str, kind: &str) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
}

fn counter(out: &mut String, name: &str, help: &str, value: u64) {
    header(out, name, help, "counter");
    let _ = writeln!(out, "{name} {value}");
}

fn gauge(out: &mut String, name: &str, help: &str, value: u64) {
    header(out, name, help, "gauge");
    let _ = writeln!(out, "{name} {value}");
}

/// Escapes a label value as the text format requires.
fn escape_label(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_every_family_with_help_and_type() {
        let store = StoreMetrics::default();
        store.appended_rows.store(42, Ordering::Relaxed);
        store.buffered_bytes.store(1000, Ordering::Relaxed);
        let query = QueryMetrics::default();
        query.segments_pruned_by_bloom.store(3, Ordering::Relaxed);
        let api = ApiMetrics::default();
        api.record_events(5, 2);
        api.record_request("/1/events/{dataset}", StatusCode::OK);
        api.record_request("/1/events/{dataset}", StatusCode::ACCEPTED);
        api.record_request("/1/events/{dataset}", StatusCode::PAYLOAD_TOO_LARGE);

        let text = render(&store, &query, &api);
        assert!(text.contains(
            "# TYPE quarry_store_appended_rows_total counter\nquarry_store_appended_rows_total 42\n"
        ));
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
        // Every sample line belongs to a family announced by HELP and TYPE lines.
        for line in text.lines().filter(|line| !line.starts_with('#')) {
            let name = line.split(['{', ' ']).next().unwrap();
            assert!(
                text.contains(&format!("# TYPE {name} ")),
                "no TYPE for {name}"
            );
            assert!(
                text.contains(&format!("# HELP {name} ")),
                "no HELP for {name}"
            );
        }
    }

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(escape_label("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }
}
