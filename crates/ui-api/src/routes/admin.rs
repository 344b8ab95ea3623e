//! Operator endpoints.

use axum::Json;
use axum::extract::State;
use serde_json::{Value, json};

use crate::auth::Environment;
use crate::error::ApiError;
use crate::server::AppState;

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

#[cfg(test)]
mod tests {
    use crate::testing::TestApp;
    use axum::body::Body;
    use axum::http::{Request, StatusCode};
    use serde_json::json;
    use std::sync::atomic::Ordering;

    #[tokio::test]
    async fn seal_writes_segments_and_rows_stay_queryable() {
        let app = TestApp::start(|_| {}).await;
        let reply = app
            .post_json("/1/batch/logs", r#"[{"data":{"n":1}},{"data":{"n":2}}]"#)
            .await;
        assert_eq!(reply.status, StatusCode::OK);
        let reply = app
            .send(
                Request::post("/api/v1/admin/seal")
                    .body(Body::empty())
                    .unwrap(),
            )
            .await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
        assert_eq!(reply.json(), json!({ "sealed": true }));
        assert!(
            app.state
                .store
                .metrics()
                .segments_written
                .load(Ordering::Relaxed)
                >= 1
        );
        assert_eq!(
            app.sql("SELECT n FROM logs ORDER BY n").await,
            json!([{ "n": 1 }, { "n": 2 }])
        );
    }
}
