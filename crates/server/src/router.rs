//! The HTTP routers: every route of the API port, the OTLP/HTTP port's routes, and
//! the layers every route gets (panic → 500, request counters, tracing).

use std::any::Any;
use std::sync::Arc;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::middleware::from_fn_with_state;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::trace::TraceLayer;

use crate::auth;
use crate::error::ApiError;
use crate::metrics::{self, ApiMetrics};
use crate::routes::{
    admin, alerts, bubbleup, events, ops, otlp, pipeline, prometheus, query, query_data,
    remote_write, rollups, schema, sources, sql, traces, web,
};
use crate::state::AppState;

/// Every route of the HTTP API.
pub fn router(state: AppState) -> Router {
    // The events endpoints read bodies up to the configured limit (axum's default
    // of 2 MiB stays in force for everything else, SQL included).
    let ingest_body_limit = DefaultBodyLimit::max(state.ingest.limits().max_body_bytes);
    let api = Router::new()
        .route(
            "/1/events/{dataset}",
            post(events::single_event).layer(ingest_body_limit),
        )
        .route(
            "/1/batch/{dataset}",
            post(events::batch).layer(ingest_body_limit),
        )
        .route("/1/datasets", get(schema::list_datasets))
        .route("/1/datasets/{dataset}", get(schema::get_dataset))
        .route("/1/columns/{dataset}", get(schema::list_columns))
        .route("/api/v1/sql", post(sql::sql))
        .route("/api/v1/sources", get(sources::list))
        .route(
            "/api/v1/write",
            post(remote_write::write).layer(ingest_body_limit),
        )
        .route(
            "/api/v1/query",
            get(prometheus::query).post(prometheus::query),
        )
        .route(
            "/api/v1/query_range",
            get(prometheus::query_range).post(prometheus::query_range),
        )
        .route(
            "/api/v1/series",
            get(prometheus::series).post(prometheus::series),
        )
        .route(
            "/api/v1/labels",
            get(prometheus::labels).post(prometheus::labels),
        )
        .route("/api/v1/label/{name}/values", get(prometheus::label_values))
        .route("/api/v1/status/buildinfo", get(prometheus::buildinfo))
        .route("/api/v1/admin/seal", post(admin::seal))
        .route("/api/v1/admin/compact", post(admin::compact))
        .route("/api/v1/admin/retention", post(admin::retention))
        .route(
            "/api/v1/admin/pipeline/{environment}",
            get(pipeline::get_rules).put(pipeline::put_rules),
        )
        .route("/api/v1/usage", get(pipeline::usage))
        .route("/api/v1/traces/{trace_id}", get(traces::get_trace))
        .route("/api/v1/bubbleup/{dataset}", post(bubbleup::bubbleup))
        .merge(otlp_routes(&state))
        .route("/api/v1/query/{dataset}", post(query::query))
        .route("/api/v1/query/{dataset}/events", post(query::events))
        .route("/1/queries/{dataset}", post(query_data::create_query))
        .route(
            "/1/query_results/{dataset}",
            post(query_data::create_result),
        )
        .route(
            "/1/query_results/{dataset}/{id}",
            get(query_data::get_result),
        )
        .route(
            "/api/v1/rollups/{dataset}",
            post(rollups::create).get(rollups::list),
        )
        .route(
            "/api/v1/rollups/{dataset}/{name}",
            get(rollups::get).delete(rollups::delete),
        )
        .merge(alert_routes())
        .route_layer(from_fn_with_state(
            Arc::clone(&state.auth),
            auth::require_key,
        ));
    let routes = Router::new()
        .merge(api)
        .route("/", get(web::root))
        .route("/healthz", get(ops::healthz))
        .route("/readyz", get(ops::readyz))
        .route("/metrics", get(ops::metrics))
        .fallback(web::fallback)
        .method_not_allowed_fallback(method_not_allowed);
    with_common_layers(routes, Arc::clone(&state.metrics)).with_state(state)
}

/// Markers, recipients, triggers, SLOs and burn alerts (docs/alerts.md).
fn alert_routes() -> Router<AppState> {
    Router::new()
        .route(
            "/1/markers/{dataset}",
            post(alerts::create_marker).get(alerts::list_markers),
        )
        .route(
            "/1/markers/{dataset}/{id}",
            put(alerts::update_marker).delete(alerts::delete_marker),
        )
        .route(
            "/1/marker_settings/{dataset}",
            post(alerts::create_marker_setting).get(alerts::list_marker_settings),
        )
        .route(
            "/1/marker_settings/{dataset}/{id}",
            axum::routing::delete(alerts::delete_marker_setting),
        )
        .route(
            "/1/recipients",
            post(alerts::create_recipient).get(alerts::list_recipients),
        )
        .route(
            "/1/recipients/{id}",
            get(alerts::get_recipient)
                .put(alerts::update_recipient)
                .delete(alerts::delete_recipient),
        )
        .route(
            "/1/triggers/{dataset}",
            post(alerts::create_trigger).get(alerts::list_triggers),
        )
        .route(
            "/1/triggers/{dataset}/{id}",
            get(alerts::get_trigger)
                .put(alerts::update_trigger)
                .delete(alerts::delete_trigger),
        )
        .route(
            "/1/slos/{dataset}",
            post(alerts::create_slo).get(alerts::list_slos),
        )
        .route(
            "/1/slos/{dataset}/{id}",
            get(alerts::get_slo)
                .put(alerts::update_slo)
                .delete(alerts::delete_slo),
        )
        .route(
            "/1/burn_alerts/{dataset}",
            post(alerts::create_burn_alert).get(alerts::list_burn_alerts),
        )
        .route(
            "/1/burn_alerts/{dataset}/{id}",
            get(alerts::get_burn_alert)
                .put(alerts::update_burn_alert)
                .delete(alerts::delete_burn_alert),
        )
        .route("/api/v1/admin/alerts/evaluate", post(alerts::evaluate))
}

/// OTLP/HTTP's routes (served on the API port and on the OTLP/HTTP port).
fn otlp_routes(state: &AppState) -> Router<AppState> {
    let ingest_body_limit = DefaultBodyLimit::max(state.ingest.limits().max_body_bytes);
    Router::new()
        .route("/v1/traces", post(otlp::traces).layer(ingest_body_limit))
        .route("/v1/logs", post(otlp::logs).layer(ingest_body_limit))
        .route("/v1/metrics", post(otlp::metrics).layer(ingest_body_limit))
}

/// The OTLP/HTTP port's router: the OTLP routes only, behind the same auth.
pub fn otlp_http_router(state: AppState) -> Router {
    let routes = otlp_routes(&state)
        .route_layer(from_fn_with_state(
            Arc::clone(&state.auth),
            auth::require_key,
        ))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed);
    with_common_layers(routes, Arc::clone(&state.metrics)).with_state(state)
}

/// Layers every route gets, innermost first: a panic becomes a 500 (and is counted),
/// every response is counted by route, every request is traced at debug level.
fn with_common_layers<S: Clone + Send + Sync + 'static>(
    routes: Router<S>,
    metrics: Arc<ApiMetrics>,
) -> Router<S> {
    routes
        .layer(CatchPanicLayer::custom(panic_response))
        .layer(from_fn_with_state(metrics, metrics::track_requests))
        .layer(TraceLayer::new_for_http())
}

/// Unknown paths on the OTLP/HTTP port (which serves no web UI): a JSON 404.
async fn not_found() -> ApiError {
    ApiError::NotFound("no such route".into())
}

async fn method_not_allowed() -> ApiError {
    ApiError::MethodNotAllowed
}

fn panic_response(panic: Box<dyn Any + Send + 'static>) -> Response {
    let message = panic
        .downcast_ref::<&str>()
        .map(|message| (*message).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".to_owned());
    ApiError::Internal(format!("handler panicked: {message}")).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::TestApp;
    use axum::body::Body;
    use axum::http::{Request, StatusCode};
    use serde_json::json;
    use tower::ServiceExt;

    #[tokio::test]
    async fn unknown_routes_and_methods_answer_json() {
        let app = TestApp::start(|_| {}).await;
        let reply = app.get("/nope").await;
        assert_eq!(reply.status, StatusCode::NOT_FOUND);
        assert_eq!(reply.json(), json!({ "error": "no such route" }));
        let reply = app.get("/1/events/shop").await;
        assert_eq!(reply.status, StatusCode::METHOD_NOT_ALLOWED);
        assert_eq!(reply.json(), json!({ "error": "method not allowed" }));
        let reply = app
            .send(Request::delete("/healthz").body(Body::empty()).unwrap())
            .await;
        assert_eq!(reply.status, StatusCode::METHOD_NOT_ALLOWED);
    }

    #[tokio::test]
    async fn a_panicking_handler_answers_500_and_is_counted() {
        let metrics = Arc::new(ApiMetrics::default());
        async fn boom() -> &'static str {
            panic!("kaboom")
        }
        let routes = Router::new().route("/boom", get(boom));
        let router = with_common_layers(routes, Arc::clone(&metrics));
        for _ in 0..2 {
            let response = router
                .clone()
                .oneshot(Request::get("/boom").body(Body::empty()).unwrap())
                .await
                .unwrap();
            assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
            let body = axum::body::to_bytes(response.into_body(), usize::MAX)
                .await
                .unwrap();
            assert_eq!(body, r#"{"error":"internal server error"}"#);
        }
        let mut registry = prometheus_client::registry::Registry::default();
        metrics.register(&mut registry);
        let text = metrics::render(&registry);
        assert!(
            text.contains("quarry_http_requests_total{route=\"/boom\",status=\"5xx\"} 2"),
            "{text}"
        );
    }
}
