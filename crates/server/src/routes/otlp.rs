//! OTLP/HTTP: `POST /v1/traces`, `/v1/logs`, `/v1/metrics` with protobuf or JSON
//! bodies (gzip, deflate or zstd), on the API port and on the OTLP/HTTP port.
//!
//! Success is 200 with the export response in the request's encoding. Errors carry
//! a `google.rpc.Status` in the request's encoding as the OTLP specification asks:
//! protobuf for protobuf requests, JSON (`{"code", "message", "error"}`; `error`
//! as in every Quarry error) otherwise; 429 adds `Retry-After`.

use axum::body::Bytes;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use prost::Message;
use quarry_ingest::otlp::OtlpFormat;
use serde_json::json;

use crate::auth::Environment;
use crate::error::ApiError;
use crate::ingest_service::{IngestRequest, Payload, Signal};
use crate::otlp::{DATASET_HEADER, encode_response, json_response};
use crate::state::AppState;

/// `POST /v1/traces`.
pub async fn traces(
    state: State<AppState>,
    environment: Environment,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    handle(state, environment, Signal::Traces, headers, body).await
}

/// `POST /v1/logs`.
pub async fn logs(
    state: State<AppState>,
    environment: Environment,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    handle(state, environment, Signal::Logs, headers, body).await
}

/// `POST /v1/metrics`.
pub async fn metrics(
    state: State<AppState>,
    environment: Environment,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    handle(state, environment, Signal::Metrics, headers, body).await
}

async fn handle(
    State(state): State<AppState>,
    Environment(environment): Environment,
    signal: Signal,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let content_type = header_text(&headers, header::CONTENT_TYPE.as_str());
    let format = match OtlpFormat::from_content_type(content_type) {
        Ok(format) => format,
        Err(error) => return error_response(ApiError::from(error), None),
    };
    let outcome = async {
        let admission = state.ingest.admit()?;
        let request = IngestRequest {
            environment,
            body: body?,
            content_encoding: header_text(&headers, header::CONTENT_ENCODING.as_str())
                .map(str::to_owned),
            payload: Payload::Otlp {
                signal,
                format,
                dataset_override: header_text(&headers, DATASET_HEADER).map(str::to_owned),
            },
        };
        state.ingest.ingest(&admission, request).await
    }
    .await;
    match outcome {
        Ok(exported) => {
            let body = match format {
                OtlpFormat::Protobuf => encode_response(signal, &exported),
                OtlpFormat::Json => json_response(signal, &exported).to_string().into_bytes(),
            };
            typed(StatusCode::OK, format.content_type(), body)
        }
        Err(error) => error_response(error, Some(format)),
    }
}

/// `google.rpc.Status`, the body of OTLP/HTTP error responses.
#[derive(Clone, PartialEq, prost::Message)]
pub struct RpcStatus {
    /// The gRPC status code.
    #[prost(int32, tag = "1")]
    pub code: i32,
    /// The error, for people.
    #[prost(string, tag = "2")]
    pub message: String,
}

/// An error in the request's encoding (JSON when it is not known).
fn error_response(error: ApiError, format: Option<OtlpFormat>) -> Response {
    let status = error.status();
    let code = crate::otlp::grpc::code_of(&error) as i32;
    let message = error.client_message();
    let mut response = match format {
        Some(OtlpFormat::Protobuf) => typed(
            status,
            OtlpFormat::Protobuf.content_type(),
            RpcStatus { code, message }.encode_to_vec(),
        ),
        _ => typed(
            status,
            OtlpFormat::Json.content_type(),
            json!({ "code": code, "message": message, "error": message })
                .to_string()
                .into_bytes(),
        ),
    };
    if let Some(retry_after) = error.retry_after() {
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, retry_after);
    }
    response
}

fn typed(status: StatusCode, content_type: &'static str, body: Vec<u8>) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, HeaderValue::from_static(content_type))],
        body,
    )
        .into_response()
}

/// A header's value as trimmed text; a value that is not text counts as absent.
pub(crate) fn header_text<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get(name)
        .and_then(|value| value.to_str().ok())
        .map(str::trim)
        .filter(|value| !value.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::TestApp;
    use axum::body::Body;
    use axum::http::Request;
    use serde_json::Value;

    const LOGS: &str = r#"{"resourceLogs":[{"resource":{"attributes":[
        {"key":"service.name","value":{"stringValue":"api"}}]},
        "scopeLogs":[{"logRecords":[{"timeUnixNano":"1714564800000000000","severityNumber":13,
        "body":{"stringValue":"slow"},"attributes":[{"key":"ms","value":{"intValue":"250"}}]}]}]}]}"#;

    #[tokio::test]
    async fn otlp_json_logs_on_the_api_port() {
        let app = TestApp::start(|_| {}).await;
        let reply = app.post_json("/v1/logs", LOGS).await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
        assert_eq!(reply.json(), json!({}));
        let rows = app
            .sql(r#"SELECT severity, body, ms, "meta.signal_type" AS s FROM api"#)
            .await;
        assert_eq!(
            rows,
            json!([{ "severity": "warn", "body": "slow", "ms": 250, "s": "log" }])
        );
    }

    #[tokio::test]
    async fn errors_follow_the_request_encoding() {
        let app = TestApp::start(|_| {}).await;
        let reply = app.post_json("/v1/traces", "{not json").await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST);
        let body: Value = reply.json();
        assert_eq!(body["code"], 3);
        assert!(
            body["error"].as_str().unwrap().contains("OTLP/JSON"),
            "{body}"
        );

        let request = Request::post("/v1/traces")
            .header("content-type", "application/x-protobuf")
            .body(Body::from(vec![0x0a, 0xff, 0xff]))
            .unwrap();
        let reply = app.send(request).await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST);
        assert_eq!(reply.headers["content-type"], "application/x-protobuf");
        let status = RpcStatus::decode(&reply.body[..]).unwrap();
        assert_eq!(status.code, 3);

        let request = Request::post("/v1/metrics")
            .header("content-type", "text/csv")
            .body(Body::from("a,b"))
            .unwrap();
        assert_eq!(
            app.send(request).await.status,
            StatusCode::UNSUPPORTED_MEDIA_TYPE
        );
    }

    #[tokio::test]
    async fn overload_is_429_with_retry_after() {
        let app = TestApp::start(|config| config.max_concurrent_ingest = 1).await;
        let held = app.state.ingest.admit().unwrap();
        let reply = app.post_json("/v1/logs", LOGS).await;
        assert_eq!(reply.status, StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(reply.headers["retry-after"], "1");
        assert_eq!(reply.json()["code"], 8);
        drop(held);
        assert_eq!(app.post_json("/v1/logs", LOGS).await.status, StatusCode::OK);
    }
}
