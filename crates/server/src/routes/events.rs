//! Honeycomb Events API: `POST /1/events/{dataset}` and `POST /1/batch/{dataset}`.
//!
//! A thin adapter over the ingest service (`crate::ingest_service`): the request is
//! admitted before its body is read, and headers become an `IngestRequest`.

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, header};
use quarry_ingest::{EventDefaults, EventStatus, parse_event_time, parse_sample_rate};
use serde_json::{Value, json};

use crate::auth::Environment;
use crate::error::ApiError;
use crate::ingest_service::{Admission, IngestRequest, Payload};
use crate::names::DatasetName;
use crate::state::AppState;

/// Event time of a single event (RFC 3339 or epoch seconds).
const EVENT_TIME_HEADER: &str = "x-honeycomb-event-time";
/// Sample rate of a single event (positive integer).
const SAMPLE_RATE_HEADER: &str = "x-honeycomb-samplerate";
/// Batch item status of an accepted event (Honeycomb's value).
const STATUS_ACCEPTED: u16 = 202;
/// Batch item status of a refused event.
const STATUS_REJECTED: u16 = 400;

/// Extractor admitting the request to the ingest service before its body is read;
/// it holds the admission until the request's rows are durable.
pub struct Admitted(Admission);

impl FromRequestParts<AppState> for Admitted {
    type Rejection = ApiError;

    async fn from_request_parts(_parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        state.ingest.admit().map(Admitted)
    }
}

/// `POST /1/events/{dataset}`: one event; `{}` once it is durable.
pub async fn single_event(
    State(state): State<AppState>,
    Environment(environment): Environment,
    DatasetName(dataset): DatasetName,
    Admitted(admission): Admitted,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<Value>, ApiError> {
    let defaults = EventDefaults {
        time_ns: header_text(&headers, EVENT_TIME_HEADER)?
            .map(parse_event_time)
            .transpose()?,
        sample_rate: header_text(&headers, SAMPLE_RATE_HEADER)?
            .map(parse_sample_rate)
            .transpose()?,
    };
    let payload = Payload::SingleEvent {
        dataset,
        content_type: content_type(&headers)?,
        defaults,
    };
    let request = ingest_request(environment, &headers, body?, payload)?;
    state.ingest.ingest(&admission, request).await?;
    Ok(Json(json!({})))
}

/// `POST /1/batch/{dataset}`: a JSON (or msgpack) array of events; one status per
/// item, in order. Accepted rows are reported 202 only once they are durable: if
/// the append fails, the whole request fails.
pub async fn batch(
    State(state): State<AppState>,
    Environment(environment): Environment,
    DatasetName(dataset): DatasetName,
    Admitted(admission): Admitted,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<Vec<Value>>, ApiError> {
    let payload = Payload::EventBatch {
        dataset,
        content_type: content_type(&headers)?,
    };
    let request = ingest_request(environment, &headers, body?, payload)?;
    let outcome = state.ingest.ingest(&admission, request).await?;
    let statuses = outcome
        .items
        .into_iter()
        .map(|status| match status {
            EventStatus::Accepted => json!({ "status": STATUS_ACCEPTED }),
            EventStatus::Rejected { error } => json!({ "status": STATUS_REJECTED, "error": error }),
        })
        .collect();
    Ok(Json(statuses))
}

/// The ingest service's request for an Events API body.
fn ingest_request(
    environment: String,
    headers: &HeaderMap,
    body: Bytes,
    payload: Payload,
) -> Result<IngestRequest, ApiError> {
    Ok(IngestRequest {
        environment,
        body,
        content_encoding: header_text(headers, header::CONTENT_ENCODING.as_str())?
            .map(str::to_owned),
        payload,
    })
}

/// The `Content-Type` header, if present.
fn content_type(headers: &HeaderMap) -> Result<Option<String>, ApiError> {
    Ok(header_text(headers, header::CONTENT_TYPE.as_str())?.map(str::to_owned))
}

/// A header's value as text, if present; a non-text value is a 400.
fn header_text<'a>(headers: &'a HeaderMap, name: &str) -> Result<Option<&'a str>, ApiError> {
    headers
        .get(name)
        .map(|value| {
            value
                .to_str()
                .map(str::trim)
                .map_err(|_| ApiError::BadRequest(format!("header {name} is not valid text")))
        })
        .transpose()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_text_trims_and_refuses_binary() {
        let mut headers = HeaderMap::new();
        headers.insert(SAMPLE_RATE_HEADER, " 5 ".parse().unwrap());
        assert_eq!(
            header_text(&headers, SAMPLE_RATE_HEADER).unwrap(),
            Some("5")
        );
        assert_eq!(header_text(&headers, EVENT_TIME_HEADER).unwrap(), None);
        headers.insert(
            EVENT_TIME_HEADER,
            axum::http::HeaderValue::from_bytes(&[0xff, 0xfe]).unwrap(),
        );
        assert!(header_text(&headers, EVENT_TIME_HEADER).is_err());
    }

    use crate::testing::TestApp;
    use axum::body::Body;
    use axum::http::{Request, StatusCode};

    fn event(path: &str) -> axum::http::request::Builder {
        Request::post(path).header("content-type", "application/json")
    }

    #[tokio::test]
    async fn single_events_and_batches_round_trip_through_sql() {
        let app = TestApp::start(|_| {}).await;
        let request = event("/1/events/shop")
            .header("x-honeycomb-event-time", "2024-05-01T12:00:00Z")
            .header("x-honeycomb-samplerate", "5")
            .body(Body::from(r#"{"n":1,"who":"single"}"#))
            .unwrap();
        let reply = app.send(request).await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
        assert_eq!(reply.json(), json!({}));

        let batch = r#"[{"data":{"n":2,"who":"a"},"time":"2024-05-01T12:00:01Z"},
                        5,
                        {"data":{"n":3,"who":"b"},"time":"2024-05-01T12:00:02Z","samplerate":2}]"#;
        let reply = app.post_json("/1/batch/shop", batch).await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
        let statuses = reply.json();
        assert_eq!(statuses.as_array().unwrap().len(), 3);
        assert_eq!(statuses[0], json!({ "status": 202 }));
        assert_eq!(statuses[1]["status"], 400);
        assert!(
            statuses[1]["error"]
                .as_str()
                .unwrap()
                .contains("invalid batch item"),
            "{statuses}"
        );
        assert_eq!(statuses[2], json!({ "status": 202 }));

        let rows = app
            .sql(r#"SELECT n, who, "meta.sample_rate" AS rate, CAST(timestamp AS BIGINT) AS ns FROM shop ORDER BY n"#)
            .await;
        assert_eq!(
            rows,
            json!([
                { "n": 1, "who": "single", "rate": 5, "ns": 1_714_564_800_000_000_000_i64 },
                { "n": 2, "who": "a", "rate": 1, "ns": 1_714_564_801_000_000_000_i64 },
                { "n": 3, "who": "b", "rate": 2, "ns": 1_714_564_802_000_000_000_i64 },
            ])
        );
        let metrics = app.get("/metrics").await.text();
        assert!(
            metrics.contains("quarry_ingest_events_accepted_total 3\n"),
            "{metrics}"
        );
        assert!(
            metrics.contains("quarry_ingest_events_rejected_total 1\n"),
            "{metrics}"
        );
    }

    #[tokio::test]
    async fn bad_input_gets_the_matching_status() {
        let app = TestApp::start(|config| {
            config.limits.max_body_bytes = 200;
            config.limits.max_event_bytes = 50;
        })
        .await;
        /// Path, headers, body, expected status.
        type Case = (
            &'static str,
            &'static [(&'static str, &'static str)],
            String,
            u16,
        );
        let cases: [Case; 9] = [
            (
                "/1/events/shop",
                &[("x-honeycomb-event-time", "yesterday")],
                r#"{"a":1}"#.into(),
                400,
            ),
            (
                "/1/events/shop",
                &[("x-honeycomb-samplerate", "0")],
                r#"{"a":1}"#.into(),
                400,
            ),
            ("/1/events/%20", &[], r#"{"a":1}"#.into(), 400),
            ("/1/events/a%2Fb", &[], r#"{"a":1}"#.into(), 400),
            ("/1/events/shop", &[], String::new(), 400),
            (
                "/1/events/shop",
                &[("content-encoding", "br")],
                r#"{"a":1}"#.into(),
                415,
            ),
            (
                "/1/events/shop",
                &[("content-type", "text/xml")],
                r#"{"a":1}"#.into(),
                415,
            ),
            (
                "/1/events/shop",
                &[],
                format!(r#"{{"a":"{}"}}"#, "x".repeat(100)),
                413,
            ),
            (
                "/1/batch/shop",
                &[],
                format!(r#"[{{"data":{{"a":"{}"}}}}]"#, "x".repeat(300)),
                413,
            ),
        ];
        for (path, headers, body, status) in cases {
            let mut request = event(path);
            let request_headers = request.headers_mut().unwrap();
            for (name, value) in headers {
                let name = axum::http::HeaderName::from_bytes(name.as_bytes()).unwrap();
                request_headers.insert(name, value.parse().unwrap());
            }
            let reply = app
                .send(request.body(Body::from(body.clone())).unwrap())
                .await;
            assert_eq!(
                reply.status.as_u16(),
                status,
                "{path} {headers:?} {body}: {}",
                reply.text()
            );
            assert!(reply.json()["error"].is_string(), "{}", reply.text());
        }
    }

    #[tokio::test]
    async fn ingest_beyond_the_permits_is_shed_with_429() {
        let app = TestApp::start(|config| config.max_concurrent_ingest = 2).await;
        let held = [
            app.state.ingest.admit().unwrap(),
            app.state.ingest.admit().unwrap(),
        ];
        let reply = app.post_json("/1/events/shop", r#"{"a":1}"#).await;
        assert_eq!(reply.status, StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(reply.headers["retry-after"], "1");
        assert!(
            reply.json()["error"]
                .as_str()
                .unwrap()
                .contains("retry later")
        );
        drop(held);
        assert_eq!(
            app.post_json("/1/events/shop", r#"{"a":1}"#).await.status,
            StatusCode::OK
        );
    }

    #[tokio::test]
    async fn a_batch_the_store_refuses_fails_as_a_whole() {
        let app = TestApp::start(|config| config.store.max_buffered_bytes = 1).await;
        let mut refused = None;
        for _ in 0..3 {
            let reply = app
                .post_json("/1/batch/shop", r#"[{"data":{"a":1}},{"data":{"a":2}}]"#)
                .await;
            if reply.status != StatusCode::OK {
                refused = Some(reply);
                break;
            }
        }
        let reply = refused.expect("the store never refused a batch over its memory budget");
        assert_eq!(
            reply.status,
            StatusCode::TOO_MANY_REQUESTS,
            "{}",
            reply.text()
        );
        assert!(reply.json()["error"].is_string());
    }
}
