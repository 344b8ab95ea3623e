//! Operations endpoints: liveness, readiness, Prometheus metrics.

use std::sync::atomic::Ordering;

use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::metrics;
use crate::state::AppState;

/// `GET /healthz`: the process is alive.
pub async fn healthz() -> &'static str {
    "ok"
}

/// `GET /readyz`: 200 while serving with an open store, 503 once shutdown began.
pub async fn readyz(State(state): State<AppState>) -> (StatusCode, &'static str) {
    if state.ready.load(Ordering::SeqCst) {
        (StatusCode::OK, "ready")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "shutting down")
    }
}

/// `GET /metrics`: the OpenMetrics text of the store's, the query engine's and the
/// API's metrics.
pub async fn metrics(State(state): State<AppState>) -> Response {
    let text = metrics::render(&state.registry);
    (
        [(header::CONTENT_TYPE, metrics::OPENMETRICS_CONTENT_TYPE)],
        text,
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use crate::testing::TestApp;
    use axum::http::StatusCode;
    use std::sync::atomic::Ordering;

    #[tokio::test]
    async fn health_readiness_metrics_and_index() {
        let app = TestApp::start(|_| {}).await;
        let health = app.get("/healthz").await;
        assert_eq!(
            (health.status, health.text()),
            (StatusCode::OK, "ok".to_owned())
        );
        assert_eq!(app.get("/readyz").await.status, StatusCode::OK);
        app.state.ready.store(false, Ordering::SeqCst);
        assert_eq!(
            app.get("/readyz").await.status,
            StatusCode::SERVICE_UNAVAILABLE
        );

        let index = app.get("/").await;
        assert_eq!(index.status, StatusCode::OK);
        assert!(!index.body.is_empty());

        let metrics = app.get("/metrics").await;
        assert_eq!(
            metrics.headers["content-type"],
            crate::metrics::OPENMETRICS_CONTENT_TYPE
        );
        let text = metrics.text();
        for family in [
            "# TYPE quarry_store_appended_rows counter",
            "# TYPE quarry_store_buffered_bytes gauge",
            "# TYPE quarry_query_segments_scanned counter",
            "# TYPE quarry_store_seal_duration_seconds histogram",
            "# TYPE quarry_wal_fsync_duration_seconds histogram",
            "# TYPE quarry_store_compaction_duration_seconds histogram",
            "quarry_http_request_duration_seconds_count{route=\"/healthz\"} 1",
            "quarry_http_requests_total{route=\"/healthz\",status=\"2xx\"} 1",
            "quarry_http_requests_total{route=\"/readyz\",status=\"5xx\"} 1",
        ] {
            assert!(text.contains(family), "{family} missing from:\n{text}");
        }
    }
}
