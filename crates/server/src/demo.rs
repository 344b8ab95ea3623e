//! Demo mode (`quarry serve --demo`): generated telemetry of a small shop, from
//! `quarry-datagen`, written straight into the store so a newcomer sees a living
//! system at once.
//!
//! ```text
//!  backfill: one generator over the last two hours, as fast as ingest goes
//!            (skipped when the environment already has datasets: a restart)
//!  live:     one generator per hour ahead, each event appended when its time comes
//! ```
//!
//! Every generator injects its anomaly (one build of `payment` ten times slower in
//! one region, from 60% of its window on), so the backfill shows an incident over
//! its last 48 minutes, and each live hour has one in its last 24 minutes.

use std::collections::BTreeMap;
use std::time::Duration;

use bytes::Bytes;

use quarry_datagen::{BatchBodies, Event, Generator, GeneratorConfig};
use tokio::task::JoinHandle;
use tracing::{info, warn};

use crate::config::Config;
use quarry_segment_store::DEFAULT_ENVIRONMENT;

use crate::error::ApiError;
use crate::ingest_service::{IngestRequest, Payload};
use crate::state::AppState;

/// Default events of the backfill (spans and logs together).
pub const DEFAULT_BACKFILL_EVENTS: u64 = 200_000;
/// Time the backfill covers, ending at startup.
pub const BACKFILL_WINDOW: Duration = Duration::from_secs(2 * 3600);
/// Length of one live generator's window.
const LIVE_WINDOW: Duration = Duration::from_secs(3600);
/// Events per request-sized batch appended to the store.
const BATCH_EVENTS: usize = 1_000;
/// Longest pause of the live stream before it checks the clock again.
const MAX_PAUSE: Duration = Duration::from_secs(1);
/// Seed of the backfill; live hour `k` uses `SEED + k`.
const SEED: u64 = 42;
/// Content type of the generated batch bodies.
const JSON: &str = "application/json";
/// How long the demo waits when the ingest service admits no more requests.
const ADMISSION_RETRY: Duration = Duration::from_millis(100);

/// What demo mode generates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DemoConfig {
    /// Events of the backfill; the live stream keeps the same rate.
    pub backfill_events: u64,
}

/// Why the demo stopped early.
#[derive(Debug, thiserror::Error)]
enum DemoError {
    #[error("the generator refused its configuration: {0}")]
    Generator(#[from] quarry_datagen::DatagenError),
    #[error("generated events were refused: {0}")]
    Ingest(#[from] ApiError),
}

/// File marking a data directory as demo mode's own.
pub const MARKER_FILE: &str = "QUARRY_DEMO";

/// Starts demo mode on a server about to serve: checks the data directory is the
/// demo's (or fresh), then writes in the background until aborted. Generated data is
/// indistinguishable from real data, so a directory holding other data is refused.
pub fn start(
    state: &AppState,
    config: &Config,
    demo: DemoConfig,
) -> Result<JoinHandle<()>, ApiError> {
    // With API keys, the environment of the first key (sorted) gets the data.
    let environment = config
        .api_keys
        .values()
        .min()
        .cloned()
        .unwrap_or_else(|| DEFAULT_ENVIRONMENT.to_owned());
    let marker = config.data_dir.join(MARKER_FILE);
    if !marker.exists() {
        if !state.store.datasets(&environment).is_empty() {
            return Err(ApiError::Startup(format!(
                "--demo writes generated data, but {} already holds other data: use a fresh --data-dir",
                config.data_dir.display()
            )));
        }
        std::fs::write(&marker, "written by quarry serve --demo\n").map_err(|error| {
            ApiError::Startup(format!("cannot write {}: {error}", marker.display()))
        })?;
    }
    Ok(spawn(state.clone(), environment, demo))
}

/// Starts the demo's writer in the background; it runs until aborted.
pub fn spawn(state: AppState, environment: String, config: DemoConfig) -> JoinHandle<()> {
    tokio::spawn(async move {
        if let Err(error) = run(&state, &environment, config).await {
            warn!(%error, "demo data stopped");
        }
    })
}

async fn run(state: &AppState, environment: &str, config: DemoConfig) -> Result<(), DemoError> {
    let start = state.clock.now_ns();
    if state.store.datasets(environment).is_empty() {
        let generator = Generator::new(
            GeneratorConfig::new(SEED, config.backfill_events, start).with_window(BACKFILL_WINDOW),
        )?;
        let anomaly = generator.anomaly().description.clone();
        info!(
            events = config.backfill_events,
            "demo: writing two hours of generated telemetry"
        );
        for body in BatchBodies::new(generator, BATCH_EVENTS) {
            append(state, environment, body.dataset, body.body).await?;
        }
        info!(events = config.backfill_events, %anomaly, "demo: backfill done");
    } else {
        info!("demo: the data directory already has data; streaming new events only");
    }
    let per_second = (config.backfill_events as f64 / BACKFILL_WINDOW.as_secs_f64()).max(1.0);
    let live_events = (per_second * LIVE_WINDOW.as_secs_f64()) as u64;
    let mut window_end = state.clock.now_ns();
    for hour in 1.. {
        window_end += LIVE_WINDOW.as_nanos() as i64;
        let generator = Generator::new(
            GeneratorConfig::new(SEED + hour, live_events, window_end).with_window(LIVE_WINDOW),
        )?;
        info!(anomaly = %generator.anomaly().description, "demo: streaming another hour");
        stream(state, environment, generator).await?;
    }
    Ok(())
}

/// Appends each event once its time has come, in batches per dataset.
async fn stream(
    state: &AppState,
    environment: &str,
    generator: Generator,
) -> Result<(), DemoError> {
    let mut pending: BTreeMap<&'static str, Vec<Event>> = BTreeMap::new();
    let mut held = 0;
    for event in generator {
        loop {
            let wait = event.time_ns - state.clock.now_ns();
            if wait <= 0 {
                break;
            }
            for (dataset, events) in std::mem::take(&mut pending) {
                append(state, environment, dataset, batch_body(&events)).await?;
            }
            held = 0;
            tokio::time::sleep(Duration::from_nanos(wait as u64).min(MAX_PAUSE)).await;
        }
        pending.entry(event.dataset).or_default().push(event);
        held += 1;
        if held >= BATCH_EVENTS {
            for (dataset, events) in std::mem::take(&mut pending) {
                append(state, environment, dataset, batch_body(&events)).await?;
            }
            held = 0;
        }
    }
    for (dataset, events) in pending {
        append(state, environment, dataset, batch_body(&events)).await?;
    }
    Ok(())
}

/// A Honeycomb batch body (JSON array of `{"time", "data"}`) of `events`.
fn batch_body(events: &[Event]) -> Vec<u8> {
    let mut body = vec![b'['];
    for (index, event) in events.iter().enumerate() {
        if index > 0 {
            body.push(b',');
        }
        event.write_batch_item(&mut body);
    }
    body.push(b']');
    body
}

/// Appends one batch body through the ingest service, exactly as `POST /1/batch`
/// would; while the service is saturated the demo waits instead of failing.
async fn append(
    state: &AppState,
    environment: &str,
    dataset: &str,
    body: Vec<u8>,
) -> Result<(), DemoError> {
    let admission = loop {
        match state.ingest.admit() {
            Ok(admission) => break admission,
            Err(_) => tokio::time::sleep(ADMISSION_RETRY).await,
        }
    };
    let request = IngestRequest {
        environment: environment.to_owned(),
        body: Bytes::from(body),
        content_encoding: None,
        payload: Payload::EventBatch {
            dataset: dataset.to_owned(),
            content_type: Some(JSON.to_owned()),
        },
    };
    state.ingest.ingest(&admission, request).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::TestApp;

    #[tokio::test]
    async fn a_data_directory_with_other_data_is_refused() {
        let app = TestApp::start(|_| {}).await;
        let dir = tempfile::tempdir().unwrap();
        let mut config = Config::load(&crate::config::Overrides::default()).unwrap();
        config.data_dir = dir.path().to_path_buf();
        let demo = DemoConfig {
            backfill_events: 10,
        };
        // Fresh: claimed with the marker.
        let writer = start(&app.state, &config, demo).unwrap();
        writer.abort();
        assert!(dir.path().join(MARKER_FILE).exists());
        // Other data and no marker: refused.
        let reply = app.post_json("/1/events/real", r#"{"a": 1}"#).await;
        assert_eq!(reply.status, axum::http::StatusCode::OK);
        let other = tempfile::tempdir().unwrap();
        config.data_dir = other.path().to_path_buf();
        let error = start(&app.state, &config, demo).unwrap_err().to_string();
        assert!(error.contains("already holds other data"), "{error}");
        assert!(!other.path().join(MARKER_FILE).exists());
    }

    #[tokio::test]
    async fn the_backfill_lands_every_event_with_the_anomaly() {
        let app = TestApp::start(|_| {}).await;
        let config = DemoConfig {
            backfill_events: 3_000,
        };
        let handle = spawn(app.state.clone(), "default".into(), config);
        let mut rows = 0;
        for _ in 0..600 {
            rows = app.state.store.metrics().appended_rows.get();
            if rows >= 3_000 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        handle.abort();
        assert!(rows >= 3_000, "only {rows} rows after the backfill");
        let payment = app.state.store.schema("default", "payment");
        assert!(payment.is_some(), "the anomalous service has a dataset");
    }
}
