//! API keys: which environment a request reads and writes.
//!
//! With no keys configured there is one environment, `default`, and the
//! `X-Honeycomb-Team` header is ignored (as a local Honeycomb stand-in should).
//! With keys, [`require_key`] runs before every `/1/*` and `/api/*` handler and
//! hands the key's environment to it as an [`Environment`] extension, so a handler
//! cannot forget the check: without the middleware it has no environment at all.

use std::collections::HashMap;

use std::sync::Arc;

use axum::extract::{FromRequestParts, Request, State};
use axum::http::HeaderMap;
use axum::http::request::Parts;
use axum::middleware::Next;
use axum::response::Response;
use quarry_segment_store::DEFAULT_ENVIRONMENT;

use crate::error::ApiError;

/// The header carrying the API key (Honeycomb's name for it).
pub const TEAM_HEADER: &str = "x-honeycomb-team";

/// The configured API keys.
#[derive(Debug, Clone, Default)]
pub struct Auth {
    /// API key -> environment.
    keys: HashMap<String, String>,
}

impl Auth {
    /// Auth with these keys (key -> environment); empty means no auth.
    pub fn new(keys: HashMap<String, String>) -> Self {
        Auth { keys }
    }

    /// Whether API keys are configured; without them everyone is in `default`.
    pub fn requires_key(&self) -> bool {
        !self.keys.is_empty()
    }

    /// The environment of API key `key`, when it is a configured key.
    pub fn environment_of_key(&self, key: &str) -> Option<&str> {
        self.keys.get(key).map(String::as_str)
    }

    /// The environment a request with these headers belongs to.
    pub fn environment(&self, headers: &HeaderMap) -> Result<String, ApiError> {
        if self.keys.is_empty() {
            return Ok(DEFAULT_ENVIRONMENT.to_owned());
        }
        presented_key(headers)
            .and_then(|key| self.keys.get(key))
            .cloned()
            .ok_or(ApiError::Unauthorized)
    }
}

/// The key a request presents: `X-Honeycomb-Team`, or else a bearer token in
/// `Authorization`, which is how Prometheus tools (`promtool`, Grafana's
/// Prometheus data source) send credentials.
fn presented_key(headers: &HeaderMap) -> Option<&str> {
    if let Some(key) = headers.get(TEAM_HEADER) {
        return key.to_str().ok();
    }
    headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("Bearer "))
        .map(str::trim)
}

/// The environment of an authenticated request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Environment(pub String);

/// Middleware: refuses requests without a valid key (401) and records the
/// environment of the others for their handler.
pub async fn require_key(
    State(auth): State<Arc<Auth>>,
    mut request: Request,
    next: Next,
) -> Result<Response, ApiError> {
    let environment = auth.environment(request.headers())?;
    request.extensions_mut().insert(Environment(environment));
    Ok(next.run(request).await)
}

impl<S: Send + Sync> FromRequestParts<S> for Environment {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, ApiError> {
        parts
            .extensions
            .get::<Environment>()
            .cloned()
            .ok_or_else(|| {
                ApiError::Internal(format!(
                    "route {} is not behind the auth middleware",
                    parts.uri.path()
                ))
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn headers(key: Option<&'static str>) -> HeaderMap {
        let mut headers = HeaderMap::new();
        if let Some(key) = key {
            headers.insert(TEAM_HEADER, HeaderValue::from_static(key));
        }
        headers
    }

    #[test]
    fn without_keys_everyone_is_in_the_default_environment() {
        let auth = Auth::default();
        assert_eq!(auth.environment(&headers(None)).unwrap(), "default");
        assert_eq!(
            auth.environment(&headers(Some("anything"))).unwrap(),
            "default"
        );
    }

    #[test]
    fn with_keys_the_key_chooses_the_environment() {
        let keys = HashMap::from([
            ("k1".to_owned(), "prod".to_owned()),
            ("k2".to_owned(), "staging".to_owned()),
        ]);
        let auth = Auth::new(keys);
        assert_eq!(auth.environment(&headers(Some("k1"))).unwrap(), "prod");
        assert_eq!(auth.environment(&headers(Some("k2"))).unwrap(), "staging");
        assert!(matches!(
            auth.environment(&headers(Some("k3"))),
            Err(ApiError::Unauthorized)
        ));
        assert!(matches!(
            auth.environment(&headers(None)),
            Err(ApiError::Unauthorized)
        ));
        let mut bearer = HeaderMap::new();
        bearer.insert(
            axum::http::header::AUTHORIZATION,
            HeaderValue::from_static("Bearer k2"),
        );
        assert_eq!(auth.environment(&bearer).unwrap(), "staging");
        bearer.insert(
            axum::http::header::AUTHORIZATION,
            HeaderValue::from_static("Basic k2"),
        );
        assert!(matches!(
            auth.environment(&bearer),
            Err(ApiError::Unauthorized)
        ));
    }

    use crate::testing::TestApp;
    use axum::body::Body;
    use axum::http::{Request, StatusCode};
    use serde_json::json;

    fn with_key(request: axum::http::request::Builder, key: &str) -> axum::http::request::Builder {
        request.header(TEAM_HEADER, key)
    }

    #[tokio::test]
    async fn keys_are_required_and_choose_the_environment() {
        let app = TestApp::with_keys(&[("k1", "prod"), ("k2", "staging")]).await;
        let post = |key: Option<&str>| {
            let request = Request::post("/1/events/web").header("content-type", "application/json");
            let request = match key {
                Some(key) => with_key(request, key),
                None => request,
            };
            request.body(Body::from(r#"{"a":1}"#)).unwrap()
        };
        for key in [None, Some("wrong")] {
            let reply = app.send(post(key)).await;
            assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
            assert_eq!(reply.json(), json!({ "error": "unknown API key" }));
        }
        assert_eq!(app.send(post(Some("k1"))).await.status, StatusCode::OK);

        let datasets = |key: &str| {
            with_key(Request::get("/1/datasets"), key)
                .body(Body::empty())
                .unwrap()
        };
        assert_eq!(app.send(datasets("k1")).await.json()[0]["name"], "web");
        assert_eq!(app.send(datasets("k2")).await.json(), json!([]));

        let sql = |key: &str| {
            with_key(Request::post("/api/v1/sql"), key)
                .header("content-type", "application/json")
                .body(Body::from(r#"{"sql":"SELECT a FROM web"}"#))
                .unwrap()
        };
        assert_eq!(app.send(sql("k1")).await.json(), json!([{ "a": 1 }]));
        assert_eq!(app.send(sql("k2")).await.status, StatusCode::NOT_FOUND);

        let seal = Request::post("/api/v1/admin/seal")
            .body(Body::empty())
            .unwrap();
        assert_eq!(app.send(seal).await.status, StatusCode::UNAUTHORIZED);
        assert_eq!(app.get("/healthz").await.status, StatusCode::OK);
    }

    #[tokio::test]
    async fn without_keys_the_header_is_ignored() {
        let app = TestApp::start(|_| {}).await;
        let request = with_key(Request::post("/1/events/web"), "whatever")
            .header("content-type", "application/json")
            .body(Body::from(r#"{"a":1}"#))
            .unwrap();
        assert_eq!(app.send(request).await.status, StatusCode::OK);
        assert_eq!(app.state.store.datasets("default").len(), 1);
    }
}
