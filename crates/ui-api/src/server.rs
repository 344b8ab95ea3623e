//! The router, its shared state, and the server's life: open, serve, drain, close.

use std::any::Any;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::middleware::from_fn_with_state;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use object_store::local::LocalFileSystem;
use quarry_engine::{QueryConfig, QueryEngine};
use quarry_ingest::Limits;
use quarry_segment_store::Store;
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch};
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::trace::TraceLayer;
use tracing::{info, warn};

use crate::auth::{self, Auth};
use crate::config::{self, Config};
use crate::demo::{self, DemoConfig};
use crate::error::ApiError;
use crate::metrics::{self, ApiMetrics};
use crate::otlp::grpc::{LogsService, MetricsService, Receiver, TraceService};
use crate::routes::{
    admin, bubbleup, events, ops, otlp, query, query_data, rollups, schema, sql, traces, web,
};
use crate::saved_queries::SavedQueries;

/// How long in-flight requests may take to finish after a shutdown signal.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(30);

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

/// Every route of the HTTP API.
pub fn router(state: AppState) -> Router {
    // The events endpoints read bodies up to the configured limit (axum's default
    // of 2 MiB stays in force for everything else, SQL included).
    let ingest_body_limit = DefaultBodyLimit::max(state.limits.max_body_bytes);
    let api = Router::new()
        .route(
            "/1/events/{dataset}",
            post(events::single_event).layer(ingest_body_limit),
        )
        .route(
            "/1/batch/{dataset}",
            post(events::batch).layer(ingest_body_limit),
        )
        .route("/1/datasets", get(schema::list_datasets))
        .route("/1/datasets/{dataset}", get(schema::get_dataset))
        .route("/1/columns/{dataset}", get(schema::list_columns))
        .route("/api/v1/sql", post(sql::sql))
        .route("/api/v1/admin/seal", post(admin::seal))
        .route("/api/v1/admin/compact", post(admin::compact))
        .route("/api/v1/admin/retention", post(admin::retention))
        .route("/api/v1/traces/{trace_id}", get(traces::get_trace))
        .route("/api/v1/bubbleup/{dataset}", post(bubbleup::bubbleup))
        .merge(otlp_routes(&state))
        .route("/api/v1/query/{dataset}", post(query::query))
        .route("/api/v1/query/{dataset}/events", post(query::events))
        .route("/1/queries/{dataset}", post(query_data::create_query))
        .route(
            "/1/query_results/{dataset}",
            post(query_data::create_result),
        )
        .route(
            "/1/query_results/{dataset}/{id}",
            get(query_data::get_result),
        )
        .route(
            "/api/v1/rollups/{dataset}",
            post(rollups::create).get(rollups::list),
        )
        .route(
            "/api/v1/rollups/{dataset}/{name}",
            get(rollups::get).delete(rollups::delete),
        )
        .route_layer(from_fn_with_state(state.clone(), auth::require_key));
    let routes = Router::new()
        .merge(api)
        .route("/", get(web::root))
        .route("/healthz", get(ops::healthz))
        .route("/readyz", get(ops::readyz))
        .route("/metrics", get(ops::metrics))
        .fallback(web::fallback)
        .method_not_allowed_fallback(method_not_allowed);
    with_common_layers(routes, Arc::clone(&state.metrics)).with_state(state)
}

/// OTLP/HTTP's routes (served on the API port and on the OTLP/HTTP port).
fn otlp_routes(state: &AppState) -> Router<AppState> {
    let ingest_body_limit = DefaultBodyLimit::max(state.limits.max_body_bytes);
    Router::new()
        .route("/v1/traces", post(otlp::traces).layer(ingest_body_limit))
        .route("/v1/logs", post(otlp::logs).layer(ingest_body_limit))
        .route("/v1/metrics", post(otlp::metrics).layer(ingest_body_limit))
}

/// The OTLP/HTTP port's router: the OTLP routes only, behind the same auth.
pub fn otlp_http_router(state: AppState) -> Router {
    let routes = otlp_routes(&state)
        .route_layer(from_fn_with_state(state.clone(), auth::require_key))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed);
    with_common_layers(routes, Arc::clone(&state.metrics)).with_state(state)
}

/// Layers every route gets, innermost first: a panic becomes a 500 (and is counted),
/// every response is counted by route, every request is traced at debug level.
fn with_common_layers<S: Clone + Send + Sync + 'static>(
    routes: Router<S>,
    metrics: Arc<ApiMetrics>,
) -> Router<S> {
    routes
        .layer(CatchPanicLayer::custom(panic_response))
        .layer(from_fn_with_state(metrics, metrics::track_requests))
        .layer(TraceLayer::new_for_http())
}

/// Unknown paths on the OTLP/HTTP port (which serves no web UI): a JSON 404.
async fn not_found() -> ApiError {
    ApiError::NotFound("no such route".into())
}

async fn method_not_allowed() -> ApiError {
    ApiError::MethodNotAllowed
}

fn panic_response(panic: Box<dyn Any + Send + 'static>) -> Response {
    let message = panic
        .downcast_ref::<&str>()
        .map(|message| (*message).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".to_owned());
    ApiError::Internal(format!("handler panicked: {message}")).into_response()
}

/// Opens the store, serves until SIGINT/SIGTERM, drains, closes the store. With
/// `demo`, generated telemetry is written into the store meanwhile.
pub async fn run(config: Config, demo: Option<DemoConfig>) -> Result<(), ApiError> {
    // Bind first: a busy port fails at once, not after a long WAL replay.
    let listener = bind(&config.http).await?;
    let address = local_address(&listener)?;
    let otlp_grpc = bind_optional(config.otlp_grpc.as_deref()).await?;
    let otlp_http = bind_optional(config.otlp_http.as_deref()).await?;
    let objects = config::prepare_data_dir(&config)?;
    let object_store = LocalFileSystem::new_with_prefix(&objects).map_err(|error| {
        ApiError::Startup(format!("cannot open {}: {error}", objects.display()))
    })?;
    info!(data_dir = %config.data_dir.display(), durability = ?config.store.durability, "opening the store");
    let store = Store::open(config.store.clone(), Arc::new(object_store))
        .await
        .map_err(|error| ApiError::Startup(format!("cannot open the store: {error}")))?;
    let state = match AppState::new(Arc::clone(&store), &config) {
        Ok(state) => state,
        Err(error) => {
            close_store(&store).await;
            return Err(error);
        }
    };
    let maintenance = quarry_rollup::RollupMaintenance::start(
        Arc::clone(&store),
        Arc::clone(&state.engine),
        config.rollups.clone(),
    );
    let demo_writer = match demo {
        Some(demo) => match demo::start(&state, &config, demo) {
            Ok(writer) => Some(writer),
            Err(error) => {
                close_store(&store).await;
                return Err(error);
            }
        },
        None => None,
    };
    let ready = Arc::clone(&state.ready);
    let (stopping_tx, mut stopping_rx) = watch::channel(false);
    // The OTLP receivers stop when the HTTP server starts draining or ends.
    let (ended_tx, ended_rx) = watch::channel(false);
    let receivers_stop = {
        let (mut stopping, mut ended) = (stopping_rx.clone(), ended_rx);
        async move {
            tokio::select! {
                _ = stopping.wait_for(|stopping| *stopping) => {}
                _ = ended.wait_for(|ended| *ended) => {}
            }
        }
    };
    let receivers = start_otlp_receivers(&state, otlp_grpc, otlp_http, receivers_stop)?;
    let graceful = axum::serve(listener, router(state)).with_graceful_shutdown(async move {
        shutdown_signal().await;
        ready.store(false, Ordering::SeqCst);
        info!("shutting down: no new connections, finishing requests in flight");
        let _ = stopping_tx.send(true);
    });
    info!("listening on http://{address}");
    let served = tokio::select! {
        served = graceful => served.map_err(|error| ApiError::Startup(format!("server failed: {error}"))),
        () = async move {
            if stopping_rx.wait_for(|stopping| *stopping).await.is_err() {
                // The server ended without a signal; the other branch has its result.
                std::future::pending::<()>().await;
            }
            tokio::time::sleep(SHUTDOWN_GRACE).await;
        } => {
            warn!(grace = ?SHUTDOWN_GRACE, "requests still in flight after the grace period; closing anyway");
            Ok(())
        }
    };
    let _ = ended_tx.send(true);
    for receiver in receivers {
        if tokio::time::timeout(SHUTDOWN_GRACE, receiver)
            .await
            .is_err()
        {
            warn!("an OTLP receiver was still busy after the grace period; closing anyway");
        }
    }
    if let Some(writer) = demo_writer {
        writer.abort();
        let _ = writer.await;
    }
    maintenance.stop();
    close_store(&store).await;
    served
}

/// Binds a TCP listener.
async fn bind(address: &str) -> Result<TcpListener, ApiError> {
    TcpListener::bind(address)
        .await
        .map_err(|error| ApiError::Startup(format!("cannot listen on {address}: {error}")))
}

/// Binds a listener when an address is configured.
async fn bind_optional(address: Option<&str>) -> Result<Option<TcpListener>, ApiError> {
    match address {
        Some(address) => bind(address).await.map(Some),
        None => Ok(None),
    }
}

fn local_address(listener: &TcpListener) -> Result<std::net::SocketAddr, ApiError> {
    listener
        .local_addr()
        .map_err(|error| ApiError::Startup(format!("cannot read the bound address: {error}")))
}

/// Serves OTLP/gRPC and OTLP/HTTP on their listeners until `stop` resolves; logs
/// each bound address (port 0 binds a free port, and tests read it from the log).
fn start_otlp_receivers(
    state: &AppState,
    grpc: Option<TcpListener>,
    http: Option<TcpListener>,
    stop: impl Future<Output = ()> + Send + 'static,
) -> Result<Vec<tokio::task::JoinHandle<()>>, ApiError> {
    let stop = futures::FutureExt::shared(Box::pin(stop));
    let mut tasks = Vec::new();
    if let Some(listener) = grpc {
        let address = local_address(&listener)?;
        let incoming =
            tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true));
        let server = tonic::transport::Server::builder()
            .add_service(Receiver::<TraceService>::new(state.clone()))
            .add_service(Receiver::<LogsService>::new(state.clone()))
            .add_service(Receiver::<MetricsService>::new(state.clone()))
            .serve_with_incoming_shutdown(incoming, stop.clone());
        info!("OTLP/gRPC receiver on {address}");
        tasks.push(tokio::spawn(async move {
            if let Err(error) = server.await {
                warn!(%error, "the OTLP/gRPC receiver failed");
            }
        }));
    }
    if let Some(listener) = http {
        let address = local_address(&listener)?;
        let server =
            axum::serve(listener, otlp_http_router(state.clone())).with_graceful_shutdown(stop);
        info!("OTLP/HTTP receiver on http://{address}");
        tasks.push(tokio::spawn(async move {
            if let Err(error) = server.await {
                warn!(%error, "the OTLP/HTTP receiver failed");
            }
        }));
    }
    Ok(tasks)
}

/// Makes pending writes durable and stops the store's tasks; failures are logged
/// (acknowledged writes are in the WAL either way).
async fn close_store(store: &Store) {
    match store.shutdown().await {
        Ok(()) => info!("store closed"),
        Err(error) => warn!(%error, "store shutdown failed"),
    }
}

/// Resolves on the first SIGINT or SIGTERM.
async fn shutdown_signal() {
    let interrupt = async {
        if let Err(error) = tokio::signal::ctrl_c().await {
            warn!(%error, "cannot listen for SIGINT");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(error) => {
                warn!(%error, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = interrupt => {}
        () = terminate => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::TestApp;
    use axum::body::Body;
    use axum::http::{Request, StatusCode};
    use serde_json::json;
    use tower::ServiceExt;

    #[tokio::test]
    async fn unknown_routes_and_methods_answer_json() {
        let app = TestApp::start(|_| {}).await;
        let reply = app.get("/nope").await;
        assert_eq!(reply.status, StatusCode::NOT_FOUND);
        assert_eq!(reply.json(), json!({ "error": "no such route" }));
        let reply = app.get("/1/events/shop").await;
        assert_eq!(reply.status, StatusCode::METHOD_NOT_ALLOWED);
        assert_eq!(reply.json(), json!({ "error": "method not allowed" }));
        let reply = app
            .send(Request::delete("/healthz").body(Body::empty()).unwrap())
            .await;
        assert_eq!(reply.status, StatusCode::METHOD_NOT_ALLOWED);
    }

    #[tokio::test]
    async fn a_panicking_handler_answers_500_and_is_counted() {
        let metrics = Arc::new(ApiMetrics::default());
        async fn boom() -> &'static str {
            panic!("kaboom")
        }
        let routes = Router::new().route("/boom", get(boom));
        let router = with_common_layers(routes, Arc::clone(&metrics));
        for _ in 0..2 {
            let response = router
                .clone()
                .oneshot(Request::get("/boom").body(Body::empty()).unwrap())
                .await
                .unwrap();
            assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
            let body = axum::body::to_bytes(response.into_body(), usize::MAX)
                .await
                .unwrap();
            assert_eq!(body, r#"{"error":"internal server error"}"#);
        }
        let text = metrics::render(&Default::default(), &Default::default(), &metrics);
        assert!(
            text.contains("quarry_http_requests_total{route=\"/boom\",status=\"5xx\"} 2"),
            "{text}"
        );
    }
}
