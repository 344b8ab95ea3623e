//! `GET /api/v1/traces/{trace_id}`: one trace, across every dataset, as a span tree.

use axum::Json;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use quarry_query::trace::{Trace, assemble_trace};

use crate::auth::Environment;
use crate::error::ApiError;
use crate::state::AppState;

/// Longest trace id accepted (W3C ids are 32 hex digits; other formats are longer).
const MAX_TRACE_ID_BYTES: usize = 256;

/// Every span, span event, link and log of the trace; 404 when it has no rows.
pub async fn get_trace(
    State(state): State<AppState>,
    Environment(environment): Environment,
    trace_id: Result<Path<String>, PathRejection>,
) -> Result<Json<Trace>, ApiError> {
    let Path(trace_id) = trace_id?;
    if trace_id.is_empty() || trace_id.len() > MAX_TRACE_ID_BYTES {
        return Err(ApiError::BadRequest(format!(
            "a trace id has 1 to {MAX_TRACE_ID_BYTES} bytes"
        )));
    }
    match assemble_trace(&state.engine, &environment, &trace_id).await? {
        Some(trace) => Ok(Json(trace)),
        None => Err(ApiError::NotFound(format!("trace not found: {trace_id}"))),
    }
}

#[cfg(test)]
mod tests {
    use crate::testing::TestApp;
    use axum::http::StatusCode;
    use serde_json::json;

    #[tokio::test]
    async fn a_trace_across_datasets_comes_back_as_a_tree_and_a_missing_one_is_404() {
        let app = TestApp::start(|_| {}).await;
        let api = r#"[{"time": "2025-01-01T00:00:00Z", "data": {"trace.trace_id": "t1", "trace.span_id": "root", "name": "GET /", "duration_ms": 100.0}}]"#;
        let db = r#"[{"time": "2025-01-01T00:00:00.010Z", "data": {"trace.trace_id": "t1", "trace.span_id": "q", "trace.parent_id": "root", "name": "SELECT", "duration_ms": 30.0}},
                    {"time": "2025-01-01T00:00:00.020Z", "data": {"trace.trace_id": "t2", "trace.span_id": "other", "duration_ms": 1.0}}]"#;
        assert_eq!(
            app.post_json("/1/batch/api", api).await.status,
            StatusCode::OK
        );
        assert_eq!(
            app.post_json("/1/batch/db", db).await.status,
            StatusCode::OK
        );

        let reply = app.get("/api/v1/traces/t1").await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
        let trace = reply.json();
        assert_eq!(trace["roots"], json!(["root"]));
        assert_eq!(trace["row_count"], json!(2));
        assert_eq!(trace["spans"][0]["children"], json!(["q"]));
        assert_eq!(trace["spans"][0]["self_time_ms"], json!(70.0));
        assert_eq!(trace["spans"][1]["dataset"], json!("db"));
        assert_eq!(trace["spans"][1]["depth"], json!(1));

        let missing = app.get("/api/v1/traces/nope").await;
        assert_eq!(missing.status, StatusCode::NOT_FOUND);
        assert_eq!(missing.json(), json!({"error": "trace not found: nope"}));
    }
}
