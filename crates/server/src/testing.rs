//! Test support: a router over a real store in a temporary directory, and a
//! one-call way to send it a request.

use std::collections::HashMap;
use std::sync::Arc;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, Request, StatusCode};
use quarry_segment_store::Store;
use serde_json::Value;
use tempfile::TempDir;
use tower::ServiceExt;

use crate::config::{self, Config, Overrides};
use crate::router;
use crate::state::AppState;

/// A server under test; keep it alive for as long as requests are sent.
pub struct TestApp {
    pub state: AppState,
    pub router: Router,
    _dir: TempDir,
}

/// A response, fully read.
pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Reply {
    /// The body as JSON.
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|error| {
            panic!(
                "not JSON ({error}): {}",
                String::from_utf8_lossy(&self.body)
            )
        })
    }

    /// The `error` message of a JSON error body; fails the test for any other body.
    pub fn error(&self) -> String {
        match &self.json()["error"] {
            Value::String(message) => message.clone(),
            other => panic!("no error message ({other}): {}", self.text()),
        }
    }

    /// The body as text.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

impl TestApp {
    /// A server with default configuration, changed by `adjust`.
    pub async fn start(adjust: impl FnOnce(&mut Config)) -> TestApp {
        let dir = tempfile::tempdir().unwrap();
        let args = Overrides {
            data_dir: Some(dir.path().to_path_buf()),
            ..Overrides::default()
        };
        let mut config = Config::load(&args).unwrap();
        adjust(&mut config);
        let storage = config::open_object_storage(&mut config).unwrap();
        let store = Store::open(config.store_config(), Arc::clone(&storage.store))
            .await
            .unwrap();
        let state = AppState::new(store, &config, &storage).await.unwrap();
        state
            .pipeline
            .start_sampling(Arc::clone(&state.store))
            .await
            .unwrap();
        TestApp {
            router: router::router(state.clone()),
            state,
            _dir: dir,
        }
    }

    /// A server whose API keys are `keys` (key -> environment).
    pub async fn with_keys(keys: &[(&str, &str)]) -> TestApp {
        let keys: HashMap<String, String> = keys
            .iter()
            .map(|(key, environment)| (key.to_string(), environment.to_string()))
            .collect();
        TestApp::start(|config| config.api_keys = keys).await
    }

    /// Sends a request and reads the whole response.
    pub async fn send(&self, request: Request<Body>) -> Reply {
        let response = self.router.clone().oneshot(request).await.unwrap();
        let status = response.status();
        let headers = response.headers().clone();
        let body = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .unwrap();
        Reply {
            status,
            headers,
            body,
        }
    }

    /// `GET path`.
    pub async fn get(&self, path: &str) -> Reply {
        self.send(Request::get(path).body(Body::empty()).unwrap())
            .await
    }

    /// `POST path` without a body (the admin actions).
    pub async fn post_empty(&self, path: &str) -> Reply {
        self.send(Request::post(path).body(Body::empty()).unwrap())
            .await
    }

    /// `POST path` with a JSON body.
    pub async fn post_json(&self, path: &str, body: &str) -> Reply {
        let request = Request::post(path)
            .header("content-type", "application/json")
            .body(Body::from(body.to_owned()))
            .unwrap();
        self.send(request).await
    }

    /// Runs SQL through the API and returns the rows (JSON format).
    pub async fn sql(&self, sql: &str) -> Value {
        let reply = self
            .post_json(
                "/api/v1/sql",
                &serde_json::json!({ "sql": sql }).to_string(),
            )
            .await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
        reply.json()
    }
}
