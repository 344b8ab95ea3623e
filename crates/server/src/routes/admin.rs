//! Operator endpoints.

use axum::Json;
use axum::extract::State;
use quarry_segment_store::{CompactionReport, RetentionReport};
use serde::Serialize;
use serde_json::{Value, json};

use crate::auth::Environment;
use crate::error::ApiError;
use crate::state::AppState;

/// `POST /api/v1/admin/seal`: seals every buffer into segments now (before a
/// backup, or in tests that need segments). Seals all environments: sealing
/// changes where rows live, not what any query returns.
pub async fn seal(
    State(state): State<AppState>,
    _environment: Environment,
) -> Result<Json<Value>, ApiError> {
    state.store.seal_all().await?;
    Ok(Json(json!({ "sealed": true })))
}

/// A merge needs two segments; the admin trigger merges every partition that has them.
const ADMIN_MIN_SEGMENTS: usize = 2;

/// What `POST /api/v1/admin/compact` did.
#[derive(Debug, Serialize)]
pub struct CompactReply {
    #[serde(flatten)]
    pub compaction: CompactionReport,
    /// Unreferenced data files older than the grace period, deleted.
    pub orphan_files_deleted: u64,
}

/// `POST /api/v1/admin/compact`: one compaction pass now, merging the small
/// segments of every partition that has at least two, then the orphan sweep.
/// Like sealing, it changes where rows live, not what any query returns.
pub async fn compact(
    State(state): State<AppState>,
    _environment: Environment,
) -> Result<Json<CompactReply>, ApiError> {
    state.require_maintainer()?;
    let compaction = state.store.compact(Some(ADMIN_MIN_SEGMENTS)).await?;
    let orphan_files_deleted = state.store.sweep_orphans(None).await?;
    Ok(Json(CompactReply {
        compaction,
        orphan_files_deleted,
    }))
}

/// `POST /api/v1/admin/retention`: drops now every segment older than its
/// dataset's configured maximum age (nothing when none is configured).
pub async fn retention(
    State(state): State<AppState>,
    _environment: Environment,
) -> Result<Json<RetentionReport>, ApiError> {
    state.require_maintainer()?;
    let now_ns = chrono::Utc::now()
        .timestamp_nanos_opt()
        .ok_or_else(|| ApiError::Internal("the clock is beyond 2262".into()))?;
    Ok(Json(state.store.enforce_retention(now_ns).await?))
}

#[cfg(test)]
mod tests {
    use crate::testing::TestApp;
    use axum::http::StatusCode;
    use serde_json::json;

    #[tokio::test]
    async fn seal_writes_segments_and_rows_stay_queryable() {
        let app = TestApp::start(|_| {}).await;
        let reply = app
            .post_json("/1/batch/logs", r#"[{"data":{"n":1}},{"data":{"n":2}}]"#)
            .await;
        assert_eq!(reply.status, StatusCode::OK);
        let reply = app.post_empty("/api/v1/admin/seal").await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
        assert_eq!(reply.json(), json!({ "sealed": true }));
        assert!(app.state.store.metrics().segments_written.get() >= 1);
        assert_eq!(
            app.sql("SELECT n FROM logs ORDER BY n").await,
            json!([{ "n": 1 }, { "n": 2 }])
        );
    }

    #[tokio::test]
    async fn compact_and_retention_answer_what_they_did() {
        let app = TestApp::start(|_| {}).await;
        for n in 0..3 {
            let body = format!(r#"[{{"data":{{"n":{n}}},"time":"2020-01-01T00:0{n}:00Z"}}]"#);
            assert_eq!(
                app.post_json("/1/batch/logs", &body).await.status,
                StatusCode::OK
            );
            let reply = app.post_empty("/api/v1/admin/seal").await;
            assert_eq!(reply.status, StatusCode::OK);
        }
        let reply = app.post_empty("/api/v1/admin/compact").await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
        let body = reply.json();
        assert_eq!(
            (
                &body["merges"],
                &body["segments_in"],
                &body["segments_out"],
                &body["rows"]
            ),
            (&json!(1), &json!(3), &json!(1), &json!(3))
        );
        assert_eq!(body["orphan_files_deleted"], json!(0));
        assert_eq!(
            app.sql("SELECT n FROM logs ORDER BY n").await,
            json!([{ "n": 0 }, { "n": 1 }, { "n": 2 }])
        );
        // No retention configured: nothing is dropped.
        let reply = app.post_empty("/api/v1/admin/retention").await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
        assert_eq!(reply.json()["segments_dropped"], json!(0));
        assert_eq!(app.state.store.metrics().segments_compacted.get(), 3);
    }
}
