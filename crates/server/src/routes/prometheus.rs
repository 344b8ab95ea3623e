//! The Prometheus HTTP query API (`/api/v1/query`, `query_range`, `series`,
//! `labels`, `label/{name}/values`, `status/buildinfo`), answering PromQL over
//! the environment's metric rows (quarry_promql), in Prometheus's JSON shapes,
//! so Grafana's Prometheus data source and `promtool query` work against Quarry.
//!
//! Parameters come from the query string and, for POST, from a form body, as
//! Prometheus takes them; times are Unix seconds or RFC 3339, steps seconds or
//! a PromQL duration.

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use promql_parser::util::parse_duration;
use quarry_promql::{Answer, PromError, PromQl, RangeSpec, Sample, Series};
use serde_json::{Value, json};

use crate::auth::Environment;
use crate::state::AppState;

/// The version `buildinfo` reports: the Prometheus API generation Quarry speaks.
const PROMETHEUS_API_VERSION: &str = "2.42.0";

/// Earliest and latest times a series query covers when none is given.
const MIN_TIME_MS: i64 = -62_135_596_800_000;
const MAX_TIME_MS: i64 = 253_402_300_799_000;

/// The parameters of one request: the query string's, then a form body's.
struct Params(Vec<(String, String)>);

impl Params {
    fn new(query: Option<String>, body: &[u8]) -> Params {
        let mut pairs: Vec<(String, String)> = Vec::new();
        if let Some(query) = query {
            pairs.extend(url::form_urlencoded::parse(query.as_bytes()).into_owned());
        }
        pairs.extend(url::form_urlencoded::parse(body).into_owned());
        Params(pairs)
    }

    fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
    }

    fn required(&self, name: &str) -> Result<&str, PromError> {
        self.get(name)
            .ok_or_else(|| PromError::BadData(format!("invalid parameter \"{name}\": missing")))
    }

    fn all(&self, name: &str) -> Vec<String> {
        self.0
            .iter()
            .filter(|(key, _)| key == name)
            .map(|(_, value)| value.clone())
            .collect()
    }

    /// A required parameter, parsed.
    fn parsed(&self, name: &str, parse: fn(&str) -> Result<i64, String>) -> Result<i64, PromError> {
        parse(self.required(name)?).map_err(|error| invalid(name, &error))
    }

    /// The `start` and `end` of a metadata query, the widest window when absent.
    fn window(&self) -> Result<(i64, i64), PromError> {
        Ok((
            self.time("start", MIN_TIME_MS)?,
            self.time("end", MAX_TIME_MS)?,
        ))
    }

    /// A time parameter in milliseconds, or `default` when it is absent.
    fn time(&self, name: &str, default: i64) -> Result<i64, PromError> {
        self.get(name).map_or(Ok(default), |text| {
            parse_time(text).map_err(|error| invalid(name, &error))
        })
    }
}

fn invalid(name: &str, error: &str) -> PromError {
    PromError::BadData(format!("invalid parameter \"{name}\": {error}"))
}

/// Unix seconds (with a fraction) or RFC 3339, in milliseconds.
fn parse_time(text: &str) -> Result<i64, String> {
    if let Ok(seconds) = text.parse::<f64>()
        && seconds.is_finite()
    {
        return Ok((seconds * 1000.0).round() as i64);
    }
    chrono::DateTime::parse_from_rfc3339(text)
        .map(|time| time.timestamp_millis())
        .map_err(|_| format!("cannot parse {text:?} to a valid timestamp"))
}

/// Seconds (with a fraction) or a PromQL duration (`15s`, `1m30s`), in ms.
fn parse_step(text: &str) -> Result<i64, String> {
    if let Ok(seconds) = text.parse::<f64>()
        && seconds.is_finite()
    {
        return Ok((seconds * 1000.0).round() as i64);
    }
    parse_duration(text)
        .map(|duration| i64::try_from(duration.as_millis()).unwrap_or(i64::MAX))
        .map_err(|_| format!("cannot parse {text:?} to a valid duration"))
}

/// The PromQL evaluator over the server's engine.
fn promql(state: &AppState) -> PromQl {
    PromQl::new(state.engine.clone())
}

fn now_ms(state: &AppState) -> i64 {
    state.clock.now_ns().div_euclid(1_000_000)
}

/// `GET|POST /api/v1/query`.
pub async fn query(
    State(state): State<AppState>,
    Environment(environment): Environment,
    RawQuery(raw): RawQuery,
    body: Bytes,
) -> Response {
    let params = Params::new(raw, &body);
    respond(
        async {
            let query = params.required("query")?;
            let time = params.time("time", now_ms(&state))?;
            let answer = promql(&state).instant(&environment, query, time).await?;
            Ok(instant_data(answer, time))
        }
        .await,
    )
}

/// `GET|POST /api/v1/query_range`.
pub async fn query_range(
    State(state): State<AppState>,
    Environment(environment): Environment,
    RawQuery(raw): RawQuery,
    body: Bytes,
) -> Response {
    let params = Params::new(raw, &body);
    respond(
        async {
            let query = params.required("query")?;
            let start = params.parsed("start", parse_time)?;
            let end = params.parsed("end", parse_time)?;
            let step = params.parsed("step", parse_step)?;
            let series = promql(&state)
                .range(&environment, query, RangeSpec { start, end, step })
                .await?;
            Ok(json!({ "resultType": "matrix", "result": matrix(&series) }))
        }
        .await,
    )
}

/// `GET|POST /api/v1/series`.
pub async fn series(
    State(state): State<AppState>,
    Environment(environment): Environment,
    RawQuery(raw): RawQuery,
    body: Bytes,
) -> Response {
    let params = Params::new(raw, &body);
    respond(
        async {
            let matchers = params.all("match[]");
            if matchers.is_empty() {
                return Err(PromError::BadData("no match[] parameter provided".into()));
            }
            let (start, end) = params.window()?;
            let found = promql(&state)
                .series(&environment, &matchers, start, end)
                .await?;
            Ok(json!(found))
        }
        .await,
    )
}

/// `GET|POST /api/v1/labels`.
pub async fn labels(
    State(state): State<AppState>,
    Environment(environment): Environment,
    RawQuery(raw): RawQuery,
    body: Bytes,
) -> Response {
    let params = Params::new(raw, &body);
    respond(
        async {
            let (start, end) = params.window()?;
            let names = promql(&state)
                .label_names(&environment, &params.all("match[]"), start, end)
                .await?;
            Ok(json!(names))
        }
        .await,
    )
}

/// `GET /api/v1/label/{name}/values`.
pub async fn label_values(
    State(state): State<AppState>,
    Environment(environment): Environment,
    Path(name): Path<String>,
    RawQuery(raw): RawQuery,
) -> Response {
    let params = Params::new(raw, &[]);
    respond(
        async {
            let (start, end) = params.window()?;
            let values = promql(&state)
                .label_values(&environment, &name, &params.all("match[]"), start, end)
                .await?;
            Ok(json!(values))
        }
        .await,
    )
}

/// `GET /api/v1/status/buildinfo`.
pub async fn buildinfo() -> Json<Value> {
    Json(json!({
        "status": "success",
        "data": {
            "version": PROMETHEUS_API_VERSION,
            "revision": format!("quarry-{}", env!("CARGO_PKG_VERSION")),
            "branch": "",
            "buildUser": "",
            "buildDate": "",
            "goVersion": "",
        }
    }))
}

/// Success as `{"status":"success","data":…}`; failure in Prometheus's error
/// shape with its status code.
fn respond(outcome: Result<Value, PromError>) -> Response {
    match outcome {
        Ok(data) => Json(json!({ "status": "success", "data": data })).into_response(),
        Err(error) => {
            let status = if error.is_bad_request() {
                StatusCode::BAD_REQUEST
            } else {
                match error.error_type() {
                    "execution" => StatusCode::UNPROCESSABLE_ENTITY,
                    "unavailable" => StatusCode::SERVICE_UNAVAILABLE,
                    _ => StatusCode::INTERNAL_SERVER_ERROR,
                }
            };
            if status.is_server_error() {
                tracing::error!(%error, "PromQL request failed");
            }
            let body = json!({
                "status": "error",
                "errorType": error.error_type(),
                "error": error.to_string(),
            });
            (status, Json(body)).into_response()
        }
    }
}

fn instant_data(answer: Answer, time: i64) -> Value {
    let at = seconds(time);
    match answer {
        Answer::Scalar(value) => {
            json!({ "resultType": "scalar", "result": [at, format_value(value)] })
        }
        Answer::String(text) => json!({ "resultType": "string", "result": [at, text] }),
        Answer::Vector(samples) => json!({
            "resultType": "vector",
            "result": samples.iter().map(|sample| vector_item(sample, at)).collect::<Vec<_>>(),
        }),
        Answer::Matrix(series) => json!({ "resultType": "matrix", "result": matrix(&series) }),
    }
}

fn vector_item(sample: &Sample, at: f64) -> Value {
    json!({ "metric": sample.labels, "value": [at, format_value(sample.value)] })
}

fn matrix(series: &[Series]) -> Vec<Value> {
    series
        .iter()
        .map(|series| {
            let values: Vec<Value> = series
                .samples
                .iter()
                .map(|&(time, value)| json!([seconds(time), format_value(value)]))
                .collect();
            json!({ "metric": series.labels, "values": values })
        })
        .collect()
}

fn seconds(ms: i64) -> f64 {
    ms as f64 / 1000.0
}

/// A sample value as Prometheus writes it (Go's `FormatFloat(v, 'f', -1, 64)`).
fn format_value(value: f64) -> String {
    if value.is_nan() {
        "NaN".into()
    } else if value == f64::INFINITY {
        "+Inf".into()
    } else if value == f64::NEG_INFINITY {
        "-Inf".into()
    } else {
        value.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_and_steps_parse_as_prometheus_takes_them() {
        assert_eq!(parse_time("1700000000.5"), Ok(1_700_000_000_500));
        assert_eq!(parse_time("2023-11-14T22:13:20Z"), Ok(1_700_000_000_000));
        assert!(parse_time("yesterday").is_err());
        assert_eq!(parse_step("15"), Ok(15_000));
        assert_eq!(parse_step("1m30s"), Ok(90_000));
        assert!(parse_step("often").is_err());
    }

    #[test]
    fn values_are_written_as_go_writes_them() {
        assert_eq!(format_value(1.0), "1");
        assert_eq!(format_value(0.25), "0.25");
        assert_eq!(format_value(1e-7), "0.0000001");
        assert_eq!(format_value(f64::INFINITY), "+Inf");
        assert_eq!(format_value(f64::NAN), "NaN");
    }
}
