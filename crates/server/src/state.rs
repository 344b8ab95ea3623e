//! What every handler shares: the store, the query engine, auth, the ingest
//! service, the clock, counters.
//!
//! This module sits below the routes and the router: it names none of them.

use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use prometheus_client::registry::Registry;
use quarry_alerts::Alerts;
use quarry_engine::QueryEngine;
use quarry_object_storage::ObjectStorage;
use quarry_schema::SharedClock;
use quarry_segment_store::Store;

use crate::auth::Auth;
use crate::cluster::FlightBuffers;
use crate::config::{Config, Role};
use crate::error::ApiError;
use crate::ingest_service::IngestService;
use crate::metrics::ApiMetrics;
use crate::pipeline::{Pipeline, PipelineSettings};
use crate::saved_queries::SavedQueries;
use crate::sources::status::SourceStatuses;

/// What every handler shares.
#[derive(Clone)]
pub struct AppState {
    /// The storage engine.
    pub store: Arc<Store>,
    /// The SQL engine over the store.
    pub engine: Arc<QueryEngine>,
    /// API keys and their environments.
    pub auth: Arc<Auth>,
    /// The one ingest path of every transport (admission, decoding, appends).
    pub ingest: IngestService,
    /// Wall time, for everything decided by the time of day.
    pub clock: SharedClock,
    /// The HTTP layer's and the ingest service's metrics.
    pub metrics: Arc<ApiMetrics>,
    /// Every metric of this server (store, engine, HTTP, ingest), for `/metrics`.
    pub registry: Arc<Registry>,
    /// False once shutdown has begun (reported by `/readyz`).
    pub ready: Arc<AtomicBool>,
    /// Saved queries and results of the Query Data API.
    pub saved_queries: Arc<SavedQueries>,
    /// What this node does among the nodes sharing its object store.
    pub role: Role,
    /// The stream sources' states and metrics.
    pub sources: Arc<SourceStatuses>,
    /// Markers, triggers, SLOs and their notifications (docs/alerts.md).
    pub alerts: Arc<Alerts>,
    /// Redaction, quotas and usage of every environment (docs/pipeline.md).
    pub pipeline: Arc<Pipeline>,
}

impl AppState {
    /// State over an open store (on `storage`), with the query engine built on it
    /// and alerting's persisted state loaded.
    pub async fn new(
        store: Arc<Store>,
        config: &Config,
        storage: &ObjectStorage,
    ) -> Result<AppState, ApiError> {
        let clock = Arc::clone(&config.clock);
        let metrics = Arc::new(ApiMetrics::default());
        let mut engine = QueryEngine::new(Arc::clone(&store), config.query.clone())
            .map_err(|error| ApiError::Startup(format!("cannot start the query engine: {error}")))?
            .with_peers(config.peers.clone(), config.scan_bytes_per_task)
            .map_err(|error| ApiError::Startup(format!("cannot distribute queries: {error}")))?;
        if !config.ingest_peers.is_empty() {
            let buffers = FlightBuffers::new(&config.ingest_peers, config.node_id.as_deref())
                .map_err(|error| ApiError::Startup(format!("cluster.ingest_peers: {error}")))?;
            engine = engine.with_remote_buffers(Arc::new(buffers));
        }
        let mut settings = PipelineSettings::new(
            config.pipeline.hash_key.as_deref(),
            config.pipeline.usage_interval,
            &config.data_dir,
        )
        .map_err(|error| ApiError::Startup(format!("cannot start the ingest pipeline: {error}")))?;
        if let Some(spans) = config.pipeline.sampling_max_buffered_spans {
            settings.sampling.max_buffered_spans = spans;
        }
        if let Some(bytes) = config.pipeline.sampling_max_buffered_bytes {
            settings.sampling.max_buffered_bytes = bytes;
        }
        let pipeline = Arc::new(Pipeline::new(Arc::clone(&storage.store), &settings));
        let ingest = IngestService::new(
            Arc::clone(&store),
            config.limits,
            config.max_concurrent_ingest,
            Arc::clone(&metrics),
            Arc::clone(&clock),
            config.role,
        )
        .with_pipeline(Arc::clone(&pipeline));
        let mut registry = Registry::default();
        store.metrics().register(&mut registry);
        engine.metrics().register(&mut registry);
        metrics.register(&mut registry);
        let sources = Arc::new(SourceStatuses::default());
        sources.register(&mut registry);
        pipeline.register(&mut registry);
        if let Some(read_cache) = &storage.read_cache {
            read_cache.register(&mut registry);
        }
        let engine = Arc::new(engine);
        let mut alerts_config = config.alerts.clone();
        if alerts_config.public_url.is_empty() {
            alerts_config.public_url = format!("http://{}", config.http);
        }
        let alerts = Alerts::open(
            alerts_config,
            Arc::clone(&storage.store),
            Arc::clone(&engine),
            Arc::clone(&clock),
        )
        .await
        .map_err(|error| ApiError::Startup(format!("cannot load the alert state: {error}")))?;
        Ok(AppState {
            alerts: Arc::new(alerts),
            registry: Arc::new(registry),
            store,
            engine,
            auth: Arc::new(Auth::new(config.api_keys.clone())),
            ingest,
            clock,
            metrics,
            ready: Arc::new(AtomicBool::new(true)),
            saved_queries: Arc::new(SavedQueries::default()),
            role: config.role,
            sources,
            pipeline,
        })
    }
}

impl AppState {
    /// Refuses maintenance on a node whose role leaves it to another node (one
    /// node per object store compacts, expires and sweeps).
    pub fn require_maintainer(&self) -> Result<(), ApiError> {
        if self.role.maintains() {
            Ok(())
        } else {
            Err(ApiError::WrongRole(format!(
                "this node runs with --role {} and does no maintenance; ask the node with --role compactor or all",
                self.role
            )))
        }
    }
}
