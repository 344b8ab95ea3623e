//! `POST /api/v1/sql`: DataFusion SQL over the environment's datasets, streamed out.
//!
//! The first chunk is produced before the response starts, so planning errors and
//! errors of the first batch still get their status code; an error after that can
//! only cut the stream short (the client sees a truncated body), and is logged.

use std::str::FromStr;

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use futures::{StreamExt, TryStreamExt, stream};
use quarry_engine::{OutputFormat, encode_stream};
use serde::Deserialize;

use crate::auth::Environment;
use crate::error::ApiError;
use crate::state::AppState;

/// Result format when the request names none.
const DEFAULT_FORMAT: &str = "json";

/// The request body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SqlRequest {
    /// The SQL statement.
    sql: String,
    /// `json` (default), `ndjson`, `csv` or `arrow`.
    format: Option<String>,
}

/// Runs the statement and streams its result in the requested format.
pub async fn sql(
    State(state): State<AppState>,
    Environment(environment): Environment,
    body: Bytes,
) -> Result<Response, ApiError> {
    // Any Content-Type is accepted: `curl -d` sends form encoding by default, and
    // refusing a first query over a header would help nobody.
    let request: SqlRequest = serde_json::from_slice(&body)
        .map_err(|error| ApiError::BadRequest(format!("invalid SQL request body: {error}")))?;
    let format_name = request.format.as_deref().unwrap_or(DEFAULT_FORMAT);
    let format = OutputFormat::from_str(format_name).map_err(|_| {
        ApiError::BadRequest(format!(
            "unknown format {format_name:?}; expected json, ndjson, csv or arrow"
        ))
    })?;
    let content_type = format.content_type().to_owned();
    let batches = state.engine.sql(&environment, &request.sql).await?;
    let mut chunks = Box::pin(encode_stream(batches, format));
    let first = chunks.next().await.transpose()?;
    let body = stream::iter(first.map(Ok)).chain(chunks).inspect_err(
        |error| tracing::error!(%error, "SQL result stream failed after the response started"),
    );
    Ok((
        [(header::CONTENT_TYPE, content_type)],
        Body::from_stream(body),
    )
        .into_response())
}

#[cfg(test)]
mod tests {
    use crate::testing::TestApp;
    use axum::body::Body;
    use axum::http::{Request, StatusCode};

    async fn app_with_rows() -> TestApp {
        let app = TestApp::start(|_| {}).await;
        let reply = app
            .post_json("/1/batch/logs", r#"[{"data":{"n":1}},{"data":{"n":2}}]"#)
            .await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
        app
    }

    #[tokio::test]
    async fn every_format_streams_with_its_content_type() {
        let app = app_with_rows().await;
        let cases = [
            ("json", "application/json", "[{\"n\":1},{\"n\":2}]"),
            ("ndjson", "application/x-ndjson", "{\"n\":1}\n{\"n\":2}\n"),
            ("csv", "text/csv", "n\n1\n2\n"),
        ];
        for (format, content_type, body) in cases {
            let request =
                format!(r#"{{"sql":"SELECT n FROM logs ORDER BY n","format":"{format}"}}"#);
            let reply = app.post_json("/api/v1/sql", &request).await;
            assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
            assert_eq!(reply.headers["content-type"], content_type);
            assert_eq!(reply.text(), body);
        }
        let arrow = app
            .post_json(
                "/api/v1/sql",
                r#"{"sql":"SELECT n FROM logs","format":"arrow"}"#,
            )
            .await;
        assert_eq!(
            arrow.headers["content-type"],
            "application/vnd.apache.arrow.stream"
        );
        let reader = arrow::ipc::reader::StreamReader::try_new(
            std::io::Cursor::new(arrow.body.to_vec()),
            None,
        )
        .unwrap();
        let rows: usize = reader.map(|batch| batch.unwrap().num_rows()).sum();
        assert_eq!(rows, 2);
    }

    #[tokio::test]
    async fn errors_are_json_with_their_status() {
        let app = app_with_rows().await;
        let cases = [
            (r#"{"sql":"SELECT n FROM nope"}"#, 404),
            (r#"{"sql":"SELEC n FROM logs"}"#, 400),
            (r#"{"sql":"SELECT missing FROM logs"}"#, 400),
            (r#"{"sql":"SELECT n FROM logs","format":"xml"}"#, 400),
            (r#"{"sql":"SELECT 1","fromat":"csv"}"#, 400),
            (r#"{"sql":"#, 400),
        ];
        for (body, status) in cases {
            let reply = app.post_json("/api/v1/sql", body).await;
            assert_eq!(reply.status.as_u16(), status, "{body}: {}", reply.text());
            assert!(reply.json()["error"].is_string(), "{}", reply.text());
        }
        let untyped = Request::post("/api/v1/sql")
            .body(Body::from(r#"{"sql":"SELECT 1"}"#))
            .unwrap();
        let reply = app.send(untyped).await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
        assert_eq!(reply.json(), serde_json::json!([{"Int64(1)": 1}]));
    }

    #[tokio::test]
    async fn statements_beyond_the_query_limits_are_400_naming_the_limit() {
        use quarry_engine::query_limits::{MAX_EXPRESSION_DEPTH, MAX_SET_OPERATIONS};
        let app = app_with_rows().await;
        let deep_sum = format!("SELECT {}", vec!["1"; MAX_EXPRESSION_DEPTH + 1].join("+"));
        let deep_or = format!(
            "SELECT n FROM logs WHERE {}",
            (0..=MAX_EXPRESSION_DEPTH)
                .map(|i| format!("n = {i}"))
                .collect::<Vec<_>>()
                .join(" OR ")
        );
        let unions = (0..MAX_SET_OPERATIONS + 2)
            .map(|i| format!("SELECT {i}"))
            .collect::<Vec<_>>()
            .join(" UNION ALL ");
        let cases = [
            (
                deep_sum,
                format!("the limit is {MAX_EXPRESSION_DEPTH} levels"),
            ),
            (
                deep_or,
                format!("the limit is {MAX_EXPRESSION_DEPTH} levels"),
            ),
            (
                unions,
                format!("the limit is {MAX_SET_OPERATIONS} set operations"),
            ),
        ];
        for (sql, limit) in cases {
            let body = serde_json::json!({ "sql": sql }).to_string();
            let reply = app.post_json("/api/v1/sql", &body).await;
            assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{}", reply.text());
            let message = reply.error();
            assert!(message.starts_with("query too complex: "), "{message}");
            assert!(message.contains(&limit), "{message}");
        }
        let reply = app
            .post_json("/api/v1/sql", r#"{"sql":"SELECT sum(n) AS s FROM logs"}"#)
            .await;
        assert_eq!(reply.json(), serde_json::json!([{"s": 3}]));
    }
}
