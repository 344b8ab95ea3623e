//! `POST /api/v1/query/{dataset}`: a Honeycomb query spec in, groups, series,
//! totals, heatmaps and exemplars out (see docs/query.md).

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use quarry_query::spec::{
    DrillDownRequest, EventsPage, QueryResult, QuerySpec, drill_down, run_query,
};
use quarry_rollup::RollupRewrite;
use serde_json::Value;

use crate::auth::Environment;
use crate::error::ApiError;
use crate::state::AppState;

/// A spec from a request body; errors name the bad field. Any Content-Type is
/// accepted, as for SQL.
pub fn parse_spec(body: &[u8]) -> Result<QuerySpec, ApiError> {
    QuerySpec::from_json(body).map_err(|error| ApiError::BadRequest(error.to_string()))
}

/// Runs the spec over `dataset` (or `__all__`).
pub async fn query(
    State(state): State<AppState>,
    Environment(environment): Environment,
    dataset: Result<Path<String>, PathRejection>,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let Path(dataset) = dataset?;
    let spec = parse_spec(&body)?;
    let result = answer_spec(&state, &environment, &dataset, &spec).await?;
    Ok(Json(
        with_markers(&state, &environment, &dataset, &result).await,
    ))
}

/// The result with the markers of its dataset and of the whole environment in
/// its time range (`"markers": [...]`), so every chart can draw them.
pub async fn with_markers(
    state: &AppState,
    environment: &str,
    dataset: &str,
    result: &QueryResult,
) -> Value {
    let mut value = serde_json::to_value(result).unwrap_or(Value::Null);
    let (Some(start), Some(end)) = (result.start_time.as_f64(), result.end_time.as_f64()) else {
        return value;
    };
    let markers = state
        .alerts
        .markers_between(
            environment,
            dataset,
            start.floor() as i64,
            end.ceil() as i64,
        )
        .await;
    if let Value::Object(map) = &mut value {
        map.insert("markers".into(), Value::Array(markers));
    }
    value
}

/// Answers `spec` as every spec endpoint does: "now" by the server's clock, and
/// rollups answering the specs they fit (docs/rollups.md).
pub async fn answer_spec(
    state: &AppState,
    environment: &str,
    dataset: &str,
    spec: &QuerySpec,
) -> Result<QueryResult, ApiError> {
    let result = run_query(
        &state.engine,
        environment,
        dataset,
        spec,
        state.clock.now_ns(),
        Some(&RollupRewrite),
    )
    .await?;
    Ok(result)
}

/// One page of the raw events behind a group or heatmap cell of the query.
pub async fn events(
    State(state): State<AppState>,
    Environment(environment): Environment,
    dataset: Result<Path<String>, PathRejection>,
    body: Bytes,
) -> Result<Json<EventsPage>, ApiError> {
    let Path(dataset) = dataset?;
    let request = DrillDownRequest::from_json(&body)
        .map_err(|error| ApiError::BadRequest(error.to_string()))?;
    let page = drill_down(
        &state.engine,
        &environment,
        &dataset,
        &request,
        state.clock.now_ns(),
    )
    .await?;
    Ok(Json(page))
}

#[cfg(test)]
mod tests {
    use crate::testing::TestApp;
    use axum::http::StatusCode;
    use serde_json::json;

    #[tokio::test]
    async fn a_spec_over_events_just_sent_counts_them_by_group() {
        let app = TestApp::start(|_| {}).await;
        let events: Vec<_> = (0..10)
            .map(|i| json!({"data": {"svc": if i < 7 { "a" } else { "b" }, "ms": i}, "samplerate": 2}))
            .collect();
        let reply = app
            .post_json("/1/batch/api", &serde_json::to_string(&events).unwrap())
            .await;
        assert_eq!(reply.status, StatusCode::OK);
        let reply = app
            .post_json(
                "/api/v1/query/api",
                r#"{"breakdowns": ["svc"], "calculations": [{"op": "COUNT"}, {"op": "MAX", "column": "ms"}]}"#,
            )
            .await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
        let result = reply.json();
        assert_eq!(result["groups"][0]["key"], json!({"svc": "a"}));
        assert_eq!(
            result["groups"][0]["values"],
            json!({"COUNT": 14, "MAX(ms)": 6})
        );
        assert_eq!(
            result["groups"][1]["values"],
            json!({"COUNT": 6, "MAX(ms)": 9})
        );
        assert_eq!(result["totals"]["COUNT"], json!(20));
        assert_eq!(result["source"], json!("raw"));

        let bad = app
            .post_json("/api/v1/query/api", r#"{"calculations": [{"op": "P99"}]}"#)
            .await;
        assert_eq!(bad.status, StatusCode::BAD_REQUEST);
        assert_eq!(
            bad.json(),
            json!({"error": "calculations[0].column: P99 needs a column"})
        );
        let bad = app
            .post_json("/api/v1/query/api", r#"{"limit": "ten"}"#)
            .await;
        assert_eq!(bad.status, StatusCode::BAD_REQUEST);
        assert!(
            bad.json()["error"].as_str().unwrap().starts_with("limit: "),
            "{}",
            bad.text()
        );
        let missing = app.post_json("/api/v1/query/nope", "{}").await;
        assert_eq!(missing.status, StatusCode::NOT_FOUND);
    }

    #[tokio::test]
    async fn a_spec_with_thousands_of_filters_is_400() {
        let app = TestApp::start(|_| {}).await;
        let reply = app
            .post_json("/1/batch/api", r#"[{"data": {"ms": 1}}]"#)
            .await;
        assert_eq!(reply.status, StatusCode::OK);
        let filters: Vec<_> = (0..5_000)
            .map(|i| json!({"column": "ms", "op": "!=", "value": i}))
            .collect();
        let spec = json!({"calculations": [{"op": "COUNT"}], "filters": filters});
        let reply = app.post_json("/api/v1/query/api", &spec.to_string()).await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{}", reply.text());
        let message = reply.error();
        assert!(
            message.starts_with("filters: at most 100 entries"),
            "{message}"
        );
        // Calculated fields chained past the expression depth limit.
        let step = format!("$prev{}", " + 1".repeat(30));
        let fields: Vec<_> = (0..100)
            .map(|i| {
                let prev = if i == 0 {
                    "ms".to_owned()
                } else {
                    format!("f{}", i - 1)
                };
                json!({"name": format!("f{i}"), "expression": step.replace("prev", &prev)})
            })
            .collect();
        let spec =
            json!({"calculations": [{"op": "MAX", "column": "f99"}], "calculated_fields": fields});
        let reply = app.post_json("/api/v1/query/api", &spec.to_string()).await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{}", reply.text());
        let message = reply.error();
        assert!(message.starts_with("calculated_fields["), "{message}");
        assert!(message.contains("query too complex"), "{message}");
    }
}
