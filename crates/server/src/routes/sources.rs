//! `GET /api/v1/sources`: each stream source's state (connected, paused,
//! counters, last error, Kafka partitions' lag).

use axum::Json;
use axum::extract::State;

use crate::sources::status::SourceStatus;
use crate::state::AppState;

/// `GET /api/v1/sources`: every configured stream source, by name.
pub async fn list(State(state): State<AppState>) -> Json<serde_json::Value> {
    let sources: Vec<SourceStatus> = state.sources.snapshot();
    Json(serde_json::json!({ "sources": sources }))
}
