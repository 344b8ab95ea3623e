//! The server's life: bind, open the store, serve, drain, close.
//!
//! [`Server::start`] builds a whole server from a [`Config`] in-process (the
//! `quarry` binary, the black-box tests and, later, each node role use it) and
//! returns once it listens; [`RunningServer::stop`] drains and closes it.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use quarry_segment_store::Store;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tracing::{info, warn};

use crate::cluster::BufferFlight;
use crate::config::{self, Config};
use crate::demo::{self, DemoConfig};
use crate::error::ApiError;
use crate::flight_sql::QuarryFlightSql;
use crate::otlp::grpc::{LogsService, MetricsService, Receiver, TraceService};
use crate::router::{otlp_http_router, router};
use crate::sources::StreamSources;
use crate::state::AppState;

/// How often due alert notifications are sent (retries wait their backoff).
const ALERT_DELIVERY_TICK: Duration = Duration::from_secs(1);
/// How long in-flight requests may take to finish after a shutdown signal.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(30);

/// Builds servers from a configuration.
pub struct Server;

/// A server that listens; dropping it without [`RunningServer::stop`] leaves it
/// serving until the runtime ends.
pub struct RunningServer {
    http_address: SocketAddr,
    otlp_grpc_address: Option<SocketAddr>,
    otlp_http_address: Option<SocketAddr>,
    pg_address: Option<SocketAddr>,
    state: AppState,
    stop: watch::Sender<bool>,
    task: JoinHandle<Result<(), ApiError>>,
}

impl Server {
    /// Binds every listener, opens the store (replaying its WAL), starts the
    /// background tasks and serves. Returns once the server accepts connections.
    /// With `demo`, generated telemetry is written into the store meanwhile.
    pub async fn start(
        mut config: Config,
        demo: Option<DemoConfig>,
    ) -> Result<RunningServer, ApiError> {
        // Bind first: a busy port fails at once, not after a long WAL replay.
        let listener = bind(&config.http).await?;
        let http_address = local_address(&listener)?;
        // Nodes that take no writes have no OTLP receivers (their HTTP port
        // answers writes with 421, naming the role).
        let ingests = config.role.ingests();
        let otlp_grpc = bind_optional(config.otlp_grpc.as_deref().filter(|_| ingests)).await?;
        let otlp_http = bind_optional(config.otlp_http.as_deref().filter(|_| ingests)).await?;
        let worker = bind_optional(config.worker.as_deref()).await?;
        let pg = bind_optional(config.pg.as_deref()).await?;
        let pg_address = pg.as_ref().map(local_address).transpose()?;
        let otlp_grpc_address = otlp_grpc.as_ref().map(local_address).transpose()?;
        let otlp_http_address = otlp_http.as_ref().map(local_address).transpose()?;
        let storage = config::open_object_storage(&mut config)?;
        if config.alerts.public_url.is_empty() {
            config.alerts.public_url = format!("http://{http_address}");
        }
        info!(
            data_dir = %config.data_dir.display(),
            objects = %storage.location,
            role = %config.role,
            node_id = config.node_id.as_deref().unwrap_or("(single node)"),
            durability = ?config.store.durability,
            "opening the store"
        );
        let store = Store::open(config.store_config(), Arc::clone(&storage.store))
            .await
            .map_err(|error| ApiError::Startup(format!("cannot open the store: {error}")))?;
        let state = match AppState::new(Arc::clone(&store), &config, &storage).await {
            Ok(state) => state,
            Err(error) => {
                close_store(&store).await;
                return Err(error);
            }
        };
        // The rules in force before the first request is decoded.
        if let Err(error) = state.pipeline.load().await {
            close_store(&store).await;
            return Err(ApiError::Startup(format!(
                "cannot read the pipeline rules: {error}"
            )));
        }
        // Spans a crash left waiting for a sampling decision, before any request.
        if let Err(error) = state.pipeline.start_sampling(Arc::clone(&store)).await {
            close_store(&store).await;
            return Err(ApiError::Startup(format!(
                "cannot start tail sampling: {error}"
            )));
        }
        let usage = spawn_usage_flush(&state);
        let maintenance = BackgroundTasks::start(&config, &store, &state, storage.is_remote());
        let demo_writer = match demo {
            Some(demo) => match demo::start(&state, &config, demo) {
                Ok(writer) => Some(writer),
                Err(error) => {
                    usage.abort();
                    state.pipeline.stop_sampling().await;
                    maintenance.stop();
                    close_store(&store).await;
                    return Err(error);
                }
            },
            None => None,
        };
        let sources = match StreamSources::start(&state, &config.sources) {
            Ok(sources) => sources,
            Err(error) => {
                if let Some(writer) = demo_writer {
                    writer.abort();
                }
                usage.abort();
                state.pipeline.stop_sampling().await;
                maintenance.stop();
                close_store(&store).await;
                return Err(error);
            }
        };
        let (stop, stop_rx) = watch::channel(false);
        // The OTLP receivers stop when the HTTP server starts draining or ends.
        let (ended_tx, ended_rx) = watch::channel(false);
        let receivers_stop = {
            let (mut stopping, mut ended) = (stop_rx.clone(), ended_rx);
            async move {
                tokio::select! {
                    _ = stopping.wait_for(|stopping| *stopping) => {}
                    _ = ended.wait_for(|ended| *ended) => {}
                }
            }
        };
        let receivers =
            match start_otlp_receivers(&state, otlp_grpc, otlp_http, worker, pg, receivers_stop) {
                Ok(receivers) => receivers,
                Err(error) => {
                    sources.stop().await;
                    usage.abort();
                    state.pipeline.stop_sampling().await;
                    maintenance.stop();
                    close_store(&store).await;
                    return Err(error);
                }
            };
        let ready = Arc::clone(&state.ready);
        let mut draining = stop_rx.clone();
        let graceful =
            axum::serve(listener, router(state.clone())).with_graceful_shutdown(async move {
                if draining.wait_for(|stopping| *stopping).await.is_err() {
                    // The handle was dropped: serve until the runtime ends.
                    std::future::pending::<()>().await;
                }
                ready.store(false, Ordering::SeqCst);
                info!("shutting down: no new connections, finishing requests in flight");
            });
        info!("listening on http://{http_address}");
        let mut stopping = stop_rx;
        let (pipeline, pipeline_clock) = (Arc::clone(&state.pipeline), Arc::clone(&state.clock));
        let task = tokio::spawn(async move {
            let served = tokio::select! {
                served = graceful => served.map_err(|error| ApiError::Startup(format!("server failed: {error}"))),
                () = async move {
                    if stopping.wait_for(|stopping| *stopping).await.is_err() {
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
            // Before the store closes: a source finishing its message needs it.
            sources.stop().await;
            usage.abort();
            let _ = usage.await;
            // Buffered traces stay in the sampling journal for the next start.
            pipeline.stop_sampling().await;
            // The last usage rows, while the store still takes writes.
            pipeline.flush_usage(&store, pipeline_clock.now_ns()).await;
            maintenance.stop();
            close_store(&store).await;
            served
        });
        Ok(RunningServer {
            http_address,
            otlp_grpc_address,
            otlp_http_address,
            pg_address,
            state,
            stop,
            task,
        })
    }
}

impl RunningServer {
    /// Where the HTTP API listens (the bound port when the configuration said 0).
    pub fn http_address(&self) -> SocketAddr {
        self.http_address
    }

    /// Where the OTLP/gRPC receiver listens, when it is on.
    pub fn otlp_grpc_address(&self) -> Option<SocketAddr> {
        self.otlp_grpc_address
    }

    /// Where the OTLP/HTTP receiver's own port listens, when it is on.
    pub fn otlp_http_address(&self) -> Option<SocketAddr> {
        self.otlp_http_address
    }

    /// Where the Postgres wire protocol listens, when it is on.
    pub fn pg_address(&self) -> Option<SocketAddr> {
        self.pg_address
    }

    /// The state the handlers share (the store, the engine, the counters).
    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// Stops accepting connections, lets requests in flight finish (at most the
    /// grace period), stops the background tasks and closes the store, making
    /// pending writes durable.
    pub async fn stop(self) -> Result<(), ApiError> {
        let _ = self.stop.send(true);
        self.task
            .await
            .map_err(|error| ApiError::Internal(format!("the server task failed: {error}")))?
    }

    /// Serves until `signal` resolves (or the server fails), then stops.
    pub async fn stop_on(self, signal: impl Future<Output = ()>) -> Result<(), ApiError> {
        tokio::select! {
            () = signal => {}
            // Every receiver is gone: the server ended by itself (it failed).
            () = self.stop.closed() => {}
        }
        self.stop().await
    }
}

/// Writes usage rows and measures stored bytes every usage interval.
fn spawn_usage_flush(state: &AppState) -> JoinHandle<()> {
    let (pipeline, store, clock) = (
        Arc::clone(&state.pipeline),
        Arc::clone(&state.store),
        Arc::clone(&state.clock),
    );
    tokio::spawn(async move {
        let mut ticks = tokio::time::interval(pipeline.usage_interval());
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticks.tick().await;
            pipeline.flush_usage(&store, clock.now_ns()).await;
        }
    })
}

/// Opens the store, serves until SIGINT/SIGTERM, drains, closes the store.
pub async fn run(config: Config, demo: Option<DemoConfig>) -> Result<(), ApiError> {
    Server::start(config, demo)
        .await?
        .stop_on(shutdown_signal())
        .await
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

/// Serves OTLP/gRPC, OTLP/HTTP, the cluster port and the Postgres protocol on
/// their listeners until `stop` resolves; logs each bound address (port 0 binds
/// a free port, and tests read it from the log).
fn start_otlp_receivers(
    state: &AppState,
    grpc: Option<TcpListener>,
    http: Option<TcpListener>,
    worker: Option<TcpListener>,
    pg: Option<TcpListener>,
    stop: impl Future<Output = ()> + Send + 'static,
) -> Result<Vec<tokio::task::JoinHandle<()>>, ApiError> {
    let stop = futures::FutureExt::shared(Box::pin(stop));
    let mut tasks = Vec::new();
    if let Some(listener) = pg {
        let address = local_address(&listener)?;
        info!("Postgres wire protocol on {address}");
        tasks.push(tokio::spawn(crate::pg::serve(
            listener,
            Arc::clone(&state.auth),
            Arc::clone(&state.engine),
            stop.clone(),
        )));
    }
    if let Some(listener) = worker {
        // The cluster port: the datafusion-distributed worker (runs the query
        // stages other nodes send), and on a node that ingests into a shared
        // object store the buffer service (hands query nodes its rows not
        // sealed yet).
        let address = local_address(&listener)?;
        let incoming =
            tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true));
        let serves_buffers = state.role.ingests() && !state.store.node_id().is_empty();
        let server = tonic::transport::Server::builder()
            .add_service(state.engine.worker().into_worker_server())
            .add_optional_service(
                serves_buffers.then(|| BufferFlight::new(Arc::clone(&state.store)).into_server()),
            )
            .serve_with_incoming_shutdown(incoming, stop.clone());
        info!(buffers = serves_buffers, "cluster port on {address}");
        info!("distributed-query worker on {address}");
        tasks.push(tokio::spawn(async move {
            if let Err(error) = server.await {
                warn!(%error, "the distributed-query worker failed");
            }
        }));
    }
    if let Some(listener) = grpc {
        let address = local_address(&listener)?;
        let incoming =
            tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true));
        let server = tonic::transport::Server::builder()
            .add_service(Receiver::<TraceService>::new(state.clone()))
            .add_service(Receiver::<LogsService>::new(state.clone()))
            .add_service(Receiver::<MetricsService>::new(state.clone()))
            .add_service(
                QuarryFlightSql::new(Arc::clone(&state.auth), Arc::clone(&state.engine))
                    .into_server(),
            )
            .serve_with_incoming_shutdown(incoming, stop.clone());
        info!("OTLP/gRPC receiver on {address}");
        info!("Arrow Flight SQL on {address}");
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
pub async fn shutdown_signal() {
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

/// How often a node on a remote object store reads the manifest entries other
/// nodes committed (new segments are queryable within this, plus the read).
const FOLLOW_INTERVAL: Duration = Duration::from_millis(250);

/// The server's own background work besides the store's: rollup maintenance (on
/// a node that maintains) and following the shared manifest (on a remote store).
struct BackgroundTasks {
    rollups: Option<quarry_rollup::RollupMaintenance>,
    follower: Option<JoinHandle<()>>,
    alerts: Option<JoinHandle<()>>,
}

impl BackgroundTasks {
    fn start(config: &Config, store: &Arc<Store>, state: &AppState, remote: bool) -> Self {
        let rollups = config.role.maintains().then(|| {
            quarry_rollup::RollupMaintenance::start(
                Arc::clone(store),
                Arc::clone(&state.engine),
                config.rollups.clone(),
            )
        });
        let follower = remote.then(|| tokio::spawn(follow_manifest(Arc::downgrade(store))));
        // One evaluator per deployment: a maintaining node, while it holds the lease.
        let alerts = (config.role.maintains() && config.alerts.enabled)
            .then(|| tokio::spawn(run_alerts(state.clone())));
        BackgroundTasks {
            rollups,
            follower,
            alerts,
        }
    }

    fn stop(&self) {
        if let Some(rollups) = &self.rollups {
            rollups.stop();
        }
        if let Some(follower) = &self.follower {
            follower.abort();
        }
        // Safe at any point: every alert state change is one atomic write.
        if let Some(alerts) = &self.alerts {
            alerts.abort();
        }
    }
}

/// Delivers due notifications every [`ALERT_DELIVERY_TICK`] and, unless alert
/// time is manual, evaluates triggers and SLOs every `[alerts]
/// evaluate_every_secs`; only while this node holds the maintenance lease.
async fn run_alerts(state: AppState) {
    let alerts = Arc::clone(&state.alerts);
    let every = Duration::from_secs(alerts.config().evaluate_every_secs.max(1));
    let mut last_pass: Option<tokio::time::Instant> = None;
    loop {
        tokio::time::sleep(ALERT_DELIVERY_TICK).await;
        if !state.store.holds_maintenance_lease() {
            continue;
        }
        if !alerts.config().manual_clock && last_pass.is_none_or(|last| last.elapsed() >= every) {
            last_pass = Some(tokio::time::Instant::now());
            let report = alerts.evaluate(alerts.now_ns()).await;
            for error in report.errors {
                warn!(%error, "alert evaluation");
            }
        }
        alerts.deliver().await;
    }
}

/// Applies other nodes' manifest commits every [`FOLLOW_INTERVAL`] until the
/// store is gone. A failure is logged when it starts and when it ends.
async fn follow_manifest(store: std::sync::Weak<Store>) {
    let mut failing = false;
    loop {
        tokio::time::sleep(FOLLOW_INTERVAL).await;
        let Some(store) = store.upgrade() else {
            return;
        };
        match store.follow_manifest().await {
            Ok(_) if failing => {
                info!("reading the shared manifest works again");
                failing = false;
            }
            Ok(_) => {}
            Err(error) if !failing => {
                warn!(%error, "cannot read the shared manifest; retrying");
                failing = true;
            }
            Err(_) => {}
        }
    }
}
