//! Honeycomb's Query Data API: `POST /1/queries/{dataset}` saves a spec,
//! `POST /1/query_results/{dataset}` runs a saved spec, `GET
//! /1/query_results/{dataset}/{id}` reads a result again. Results are computed
//! synchronously, so every result is `complete` when created. Saved queries and
//! results live in memory (see [`crate::saved_queries`]).

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use quarry_query::spec::{QueryResult, ValidSpec};
use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::query::{answer_spec, parse_spec};
use crate::auth::Environment;
use crate::error::ApiError;
use crate::state::AppState;

/// `POST /1/query_results/{dataset}` body.
#[derive(Debug, Deserialize)]
pub struct CreateResult {
    /// Id of a saved query.
    query_id: String,
    /// Leave out the time series.
    #[serde(default)]
    disable_series: bool,
}

/// Saves a spec (checked first) and echoes it with its id.
pub async fn create_query(
    State(state): State<AppState>,
    Environment(environment): Environment,
    dataset: Result<Path<String>, PathRejection>,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let Path(dataset) = dataset?;
    let spec = parse_spec(&body)?;
    ValidSpec::new(&spec, state.clock.now_ns())
        .map_err(|error| ApiError::BadRequest(error.to_string()))?;
    let id = state
        .saved_queries
        .save_query(&environment, &dataset, spec.clone());
    let mut echo = match serde_json::to_value(&spec) {
        Ok(Value::Object(map)) => map,
        _ => Map::new(),
    };
    echo.insert("id".into(), Value::String(id));
    Ok(Json(Value::Object(echo)))
}

/// Runs a saved query and keeps its result.
pub async fn create_result(
    State(state): State<AppState>,
    Environment(environment): Environment,
    dataset: Result<Path<String>, PathRejection>,
    body: Bytes,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let Path(dataset) = dataset?;
    let request: CreateResult = serde_json::from_slice(&body)
        .map_err(|error| ApiError::BadRequest(format!("invalid query result request: {error}")))?;
    let spec = state
        .saved_queries
        .query(&environment, &dataset, &request.query_id)
        .ok_or_else(|| ApiError::NotFound(format!("query not found: {}", request.query_id)))?;
    let result = answer_spec(&state, &environment, &dataset, &spec).await?;
    let query = json!({"id": request.query_id});
    let body = state
        .saved_queries
        .save_result(&environment, &dataset, |id| {
            honeycomb_result(id, &dataset, query, &result, request.disable_series)
        });
    Ok((StatusCode::CREATED, Json(body)))
}

/// A result created earlier.
pub async fn get_result(
    State(state): State<AppState>,
    Environment(environment): Environment,
    path: Result<Path<(String, String)>, PathRejection>,
) -> Result<Json<Value>, ApiError> {
    let Path((dataset, id)) = path?;
    state
        .saved_queries
        .result(&environment, &dataset, &id)
        .map(Json)
        .ok_or_else(|| ApiError::NotFound(format!("query result not found: {id}")))
}

/// Breakdown values and calculation values in one object, Honeycomb's row shape.
fn row(key: &Map<String, Value>, values: &Map<String, Value>) -> Value {
    let mut data = key.clone();
    data.extend(values.iter().map(|(k, v)| (k.clone(), v.clone())));
    json!({ "data": data })
}

/// Honeycomb's query result shape.
fn honeycomb_result(
    id: &str,
    dataset: &str,
    query: Value,
    result: &QueryResult,
    disable_series: bool,
) -> Value {
    let results: Vec<Value> = result
        .groups
        .iter()
        .map(|group| row(&group.key, &group.values))
        .collect();
    let series: Vec<Value> = if disable_series {
        Vec::new()
    } else {
        result
            .series
            .iter()
            .map(|point| {
                let mut entry = row(&point.key, &point.values);
                let time = point
                    .time
                    .as_i64()
                    .and_then(|s| chrono::DateTime::from_timestamp(s, 0))
                    .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true));
                entry["time"] = json!(time);
                entry
            })
            .collect()
    };
    json!({
        "id": id,
        "complete": true,
        "query": query,
        "data": {"series": series, "results": results},
        "links": {
            "query_url": format!("/1/query_results/{dataset}/{id}"),
            "graph_image_url": Value::Null,
        },
    })
}

#[cfg(test)]
mod tests {
    use crate::testing::TestApp;
    use axum::http::StatusCode;
    use serde_json::json;

    #[tokio::test]
    async fn a_saved_query_runs_and_its_result_reads_back() {
        let app = TestApp::start(|_| {}).await;
        let events: Vec<_> = (0..6)
            .map(|i| json!({"data": {"svc": if i < 4 { "a" } else { "b" }}}))
            .collect();
        let reply = app
            .post_json("/1/batch/api", &serde_json::to_string(&events).unwrap())
            .await;
        assert_eq!(reply.status, StatusCode::OK);
        let spec =
            r#"{"breakdowns": ["svc"], "calculations": [{"op": "COUNT"}], "time_range": 3600}"#;
        let saved = app.post_json("/1/queries/api", spec).await;
        assert_eq!(saved.status, StatusCode::OK, "{}", saved.text());
        let saved = saved.json();
        assert_eq!(saved["breakdowns"], json!(["svc"]));
        let id = saved["id"].as_str().unwrap().to_owned();
        let again = app.post_json("/1/queries/api", spec).await.json();
        assert_eq!(again["id"], json!(id));

        let created = app
            .post_json("/1/query_results/api", &json!({"query_id": id}).to_string())
            .await;
        assert_eq!(created.status, StatusCode::CREATED, "{}", created.text());
        let created = created.json();
        assert_eq!(created["complete"], json!(true));
        assert_eq!(
            created["data"]["results"],
            json!([{"data": {"svc": "a", "COUNT": 4}}, {"data": {"svc": "b", "COUNT": 2}}])
        );
        assert!(
            created["data"]["series"][0]["time"]
                .as_str()
                .unwrap()
                .ends_with('Z')
        );
        let result_id = created["id"].as_str().unwrap();
        let read = app.get(&format!("/1/query_results/api/{result_id}")).await;
        assert_eq!(read.status, StatusCode::OK);
        assert_eq!(read.json(), created);

        let bad = app
            .post_json("/1/queries/api", r#"{"calculations": [{"op": "X"}]}"#)
            .await;
        assert_eq!(bad.status, StatusCode::BAD_REQUEST);
        assert!(
            bad.json()["error"]
                .as_str()
                .unwrap()
                .starts_with("calculations[0].op:")
        );
        let unknown = app
            .post_json("/1/query_results/api", r#"{"query_id": "nope"}"#)
            .await;
        assert_eq!(unknown.status, StatusCode::NOT_FOUND);
        assert_eq!(
            app.get("/1/query_results/api/nope").await.status,
            StatusCode::NOT_FOUND
        );
    }
}
