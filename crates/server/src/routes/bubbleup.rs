//! `POST /api/v1/bubbleup/{dataset}`: how a selection of events differs from the
//! rest of the query's events, column by column.

use axum::Json;
use axum::extract::rejection::{JsonRejection, PathRejection};
use axum::extract::{Path, State};
use quarry_query::bubbleup::{BubbleUpOptions, BubbleUpRequest, BubbleUpResult, run_bubbleup};

use crate::auth::Environment;
use crate::error::ApiError;
use crate::state::AppState;

/// Compares every column of `dataset` (or `__all__`) between the selection and the
/// baseline and ranks the columns.
pub async fn bubbleup(
    State(state): State<AppState>,
    Environment(environment): Environment,
    dataset: Result<Path<String>, PathRejection>,
    request: Result<Json<BubbleUpRequest>, JsonRejection>,
) -> Result<Json<BubbleUpResult>, ApiError> {
    let Path(dataset) = dataset?;
    let Json(request) = request?;
    let result = run_bubbleup(
        &state.engine,
        &environment,
        &dataset,
        &request,
        &BubbleUpOptions::default(),
    )
    .await?;
    Ok(Json(result))
}

#[cfg(test)]
mod tests {
    use crate::testing::TestApp;
    use axum::http::StatusCode;
    use serde_json::json;

    #[tokio::test]
    async fn a_group_selection_ranks_the_column_that_tells_it_apart() {
        let app = TestApp::start(|_| {}).await;
        let events: Vec<_> = (0..40)
            .map(|i| {
                let region = if i % 2 == 0 { "east" } else { "west" };
                json!({"data": {"region": region, "flag": region == "east", "shard": i % 3, "ms": i}})
            })
            .collect();
        let reply = app
            .post_json("/1/batch/api", &serde_json::to_string(&events).unwrap())
            .await;
        assert_eq!(reply.status, StatusCode::OK);
        let reply = app
            .post_json(
                "/api/v1/bubbleup/api",
                r#"{"query": {}, "selection": {"group": {"region": "east"}}}"#,
            )
            .await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
        let result = reply.json();
        assert_eq!(result["selection"]["rows"], json!(20));
        assert_eq!(result["columns"][0]["column"], json!("flag"));
        assert_eq!(result["columns"][0]["score"], json!(1.0));
        let last = result["columns"]
            .as_array()
            .unwrap()
            .last()
            .unwrap()
            .clone();
        assert_eq!(last["column"], json!("region"));
        assert_eq!(last["selection_column"], json!(true));

        let bad = app
            .post_json("/api/v1/bubbleup/api", r#"{"query": {}}"#)
            .await;
        assert_eq!(bad.status, StatusCode::BAD_REQUEST);
        assert_eq!(
            bad.json(),
            json!({"error": "invalid query: selection is required"})
        );
        let missing = app
            .post_json(
                "/api/v1/bubbleup/nope",
                r#"{"selection": {"group": {"a": 1}}}"#,
            )
            .await;
        assert_eq!(missing.status, StatusCode::NOT_FOUND, "{}", missing.text());
    }
}
