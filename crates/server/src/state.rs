//! What every handler shares: the store, the query engine, auth, limits, counters.
//!
//! This module sits below the routes and the router: it names none of them.

use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use quarry_ingest::Limits;
use quarry_query::{QueryConfig, QueryEngine};
use quarry_segment_store::Store;
use tokio::sync::Semaphore;

use crate::auth::Auth;
use crate::config::Config;
use crate::error::ApiError;
use crate::metrics::ApiMetrics;
use crate::saved_queries::SavedQueries;

/// What every handler shares.
#[derive(Clone)]
pub struct AppState {
    /// The storage engine.
    pub store: Arc<Store>,
    /// The SQL engine over the store.
    pub engine: Arc<QueryEngine>,
    /// API keys and their environments.
    pub auth: Arc<Auth>,
    /// Ingest limits handed to the decoders.
    pub limits: Limits,
    /// Permits for ingest requests in flight; none left means 429.
    pub ingest_permits: Arc<Semaphore>,
    /// The HTTP layer's counters.
    pub metrics: Arc<ApiMetrics>,
    /// False once shutdown has begun (reported by `/readyz`).
    pub ready: Arc<AtomicBool>,
    /// Saved queries and results of the Query Data API.
    pub saved_queries: Arc<SavedQueries>,
}

impl AppState {
    /// State over an open store, with the query engine built on it.
    pub fn new(store: Arc<Store>, config: &Config) -> Result<AppState, ApiError> {
        let engine =
            QueryEngine::new(Arc::clone(&store), QueryConfig::default()).map_err(|error| {
                ApiError::Startup(format!("cannot start the query engine: {error}"))
            })?;
        Ok(AppState {
            store,
            engine: Arc::new(engine),
            auth: Arc::new(Auth::new(config.api_keys.clone())),
            limits: config.limits,
            ingest_permits: Arc::new(Semaphore::new(config.max_concurrent_ingest)),
            metrics: Arc::new(ApiMetrics::default()),
            ready: Arc::new(AtomicBool::new(true)),
            saved_queries: Arc::new(SavedQueries::default()),
        })
    }
}

