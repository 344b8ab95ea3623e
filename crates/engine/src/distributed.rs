//! Distributed execution through `datafusion-distributed`: the node that
//! receives a query coordinates it, and the stages of its plan (segment scans
//! split by file, partial aggregates) run on the workers of its peers.
//!
//! ```text
//!  coordinator (any query node)           worker (every query node)
//!  session + distributed planner ──gRPC──► Worker service: decodes a stage,
//!  peers = worker URLs                     runs it on the node's runtime (its
//!                                          object store + read cache, memory
//!                                          pool) with Quarry's functions
//! ```
//!
//! Nothing here is home-made distribution: the planner, the network boundaries,
//! the codecs and the worker service are the library's. Quarry supplies the list
//! of peers, a worker session that knows its functions and runtime, and how a
//! segment scan splits into tasks ([`split_segment_scan`]).

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use datafusion::catalog::Session;
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::datasource::physical_plan::{FileGroup, FileScanConfig};
use datafusion::datasource::source::DataSourceExec;
use datafusion::error::DataFusionError;
use datafusion::execution::SessionStateBuilder;
use datafusion::execution::context::QueryPlanner;
use datafusion::execution::session_state::SessionState;
use datafusion::logical_expr::LogicalPlan;
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_planner::{DefaultPhysicalPlanner, PhysicalPlanner};
use datafusion_distributed::{
    DistributedExec, DistributedExt, DistributedLeafExec, ScaleUpLeafNodeEvent,
    ScaleUpLeafNodeEventResponse, SessionStateBuilderExt, Worker, WorkerQueryContext,
    WorkerResolver, WorkerSessionBuilder,
};
use parking_lot::RwLock;
use url::Url;

use crate::{QueryEngine, QueryError};

/// The configured peers less those that did not answer lately: a background
/// task tries a TCP connection to each every [`PEER_CHECK_INTERVAL`], and
/// `get_urls` returns the ones that answered, so a node that goes down stops
/// getting stages within about a second and one that comes (back) up gets them
/// again. Until the first round, or when none answered, it returns them all:
/// a query then fails with the clear error rather than running nowhere.
#[derive(Debug, Clone)]
struct HealthyPeers {
    all: Arc<Vec<Url>>,
    answering: Arc<RwLock<Option<Vec<Url>>>>,
}

/// How often the peers are checked.
const PEER_CHECK_INTERVAL: Duration = Duration::from_millis(500);
/// How long one check may take.
const PEER_CHECK_TIMEOUT: Duration = Duration::from_millis(300);

impl HealthyPeers {
    /// Starts checking `peers` (on the current Tokio runtime) until dropped.
    fn start(peers: Vec<Url>) -> Self {
        let resolver = HealthyPeers {
            all: Arc::new(peers),
            answering: Arc::new(RwLock::new(None)),
        };
        let all = Arc::clone(&resolver.all);
        let answering = Arc::downgrade(&resolver.answering);
        tokio::spawn(async move {
            loop {
                let checks = all.iter().map(|url| async move {
                    let address = (
                        url.host_str().unwrap_or_default().to_owned(),
                        url.port().unwrap_or(80),
                    );
                    let connected = tokio::time::timeout(
                        PEER_CHECK_TIMEOUT,
                        tokio::net::TcpStream::connect(address),
                    )
                    .await;
                    matches!(connected, Ok(Ok(_))).then(|| url.clone())
                });
                let up: Vec<Url> = futures::future::join_all(checks)
                    .await
                    .into_iter()
                    .flatten()
                    .collect();
                let Some(answering) = answering.upgrade() else {
                    return;
                };
                {
                    let mut current = answering.write();
                    if current.as_ref() != Some(&up) {
                        let names: Vec<&str> = up.iter().map(Url::as_str).collect();
                        tracing::info!(answering = ?names, of = all.len(), "distributed-query peers");
                        *current = Some(up);
                    }
                }
                drop(answering);
                tokio::time::sleep(PEER_CHECK_INTERVAL).await;
            }
        });
        resolver
    }
}

impl WorkerResolver for HealthyPeers {
    fn get_urls(&self) -> Result<Vec<Url>, DataFusionError> {
        match self.answering.read().as_ref() {
            Some(up) if !up.is_empty() => Ok(up.clone()),
            _ => Ok(self.all.as_ref().clone()),
        }
    }
}

/// What a worker needs to run a stage: Quarry's functions (registered on every
/// worker) over the node's runtime (set on the [`Worker`]).
#[derive(Debug, Clone)]
struct QuarrySessions;

#[async_trait]
impl WorkerSessionBuilder for QuarrySessions {
    async fn build_session_state(
        &self,
        ctx: WorkerQueryContext,
    ) -> Result<SessionState, DataFusionError> {
        let mut state = ctx.builder.build();
        quarry_functions::register(&mut state)?;
        Ok(state)
    }
}

impl QueryEngine {
    /// Plans every query to run distributed over `peers` (worker URLs, this
    /// node's own among them; those not answering are left out), a scan task
    /// per `scan_bytes_per_task` of segment files (the library's default,
    /// 16 MiB, when `None`). No peers: single-node execution, as before. Call
    /// it on a Tokio runtime (it starts the peers' checks).
    pub fn with_peers(
        mut self,
        peers: Vec<Url>,
        scan_bytes_per_task: Option<usize>,
    ) -> Result<Self, QueryError> {
        if peers.is_empty() {
            return Ok(self);
        }
        let mut builder = SessionStateBuilder::new_from_existing(self.state)
            .with_distributed_worker_resolver(HealthyPeers::start(peers))
            .with_distributed_planner()
            .with_distributed_scale_up_leaf_node_handler(split_segment_scan);
        if let Some(distributed) = builder.query_planner().take() {
            builder = builder.with_query_planner(Arc::new(WindowsStayLocal { distributed }));
        }
        if let Some(bytes) = scan_bytes_per_task {
            builder =
                builder.with_distributed_file_scan_config_bytes_per_partition(bytes.max(1))?;
        }
        self.state = builder.build();
        Ok(self)
    }

    /// The worker service of this node, for its gRPC server: runs the stages
    /// other coordinators send, on this engine's runtime.
    pub fn worker(&self) -> Worker {
        Worker::from_session_builder(QuarrySessions)
            .with_runtime_env(Arc::clone(self.state.runtime_env()))
    }
}

/// Plans every query through datafusion-distributed except those with window
/// functions (the query spec's RATE_* ops, SQL `OVER`), which run on the node
/// that received them: distributed, their sorted-input checks failed
/// ("Expects PARTITION BY expression to be ordered") in datafusion-distributed
/// 4.0, and a wrong or failed answer is worse than a slower one.
#[derive(Debug)]
struct WindowsStayLocal {
    distributed: Arc<dyn QueryPlanner + Send + Sync>,
}

#[async_trait]
impl QueryPlanner for WindowsStayLocal {
    async fn create_physical_plan(
        &self,
        logical_plan: &LogicalPlan,
        session: &dyn Session,
    ) -> Result<Arc<dyn ExecutionPlan>, DataFusionError> {
        let mut has_window = false;
        logical_plan.apply_with_subqueries(|node| {
            has_window = matches!(node, LogicalPlan::Window(_));
            Ok(if has_window {
                TreeNodeRecursion::Stop
            } else {
                TreeNodeRecursion::Continue
            })
        })?;
        if has_window {
            DefaultPhysicalPlanner::default()
                .create_physical_plan(logical_plan, session)
                .await
        } else {
            self.distributed
                .create_physical_plan(logical_plan, session)
                .await
        }
    }
}

/// Whether `plan` was planned to run distributed. Its nodes below the
/// coordinator's head run as parts of stages (a task's share of a scan, say):
/// only the whole plan, executed as it is, answers.
pub fn is_distributed(plan: &Arc<dyn ExecutionPlan>) -> bool {
    plan.is::<DistributedExec>()
}

/// Splits a Parquet scan of segments into one variant per task.
///
/// A segment scan's file groups are chains of files in timestamp order (the
/// scan declares that ordering), and every variant of a distributed leaf must
/// have the same number of partitions. The library's own split regroups files
/// and can give variants different counts; this one keeps the groups: each
/// task gets, of every chain, one contiguous stretch (still in order), so every
/// variant has exactly the scan's partitions, some of them possibly empty.
fn split_segment_scan(
    event: ScaleUpLeafNodeEvent,
) -> Option<datafusion::error::Result<ScaleUpLeafNodeEventResponse>> {
    let source = event.plan.downcast_ref::<DataSourceExec>()?;
    let scan = source.data_source().downcast_ref::<FileScanConfig>()?;
    let tasks = event.task_count.max(1);
    let mut variants = vec![scan.clone(); tasks];
    for variant in &mut variants {
        variant.file_groups.clear();
    }
    for group in &scan.file_groups {
        let files = group.files();
        for (task, variant) in variants.iter_mut().enumerate() {
            // Contiguous stretches of near-equal length: task t takes
            // files[t * n / tasks .. (t + 1) * n / tasks].
            let from = task * files.len() / tasks;
            let to = (task + 1) * files.len() / tasks;
            variant
                .file_groups
                .push(FileGroup::new(files[from..to].to_vec()));
        }
    }
    let variants = variants
        .into_iter()
        .map(|variant| DataSourceExec::from_data_source(variant) as Arc<dyn ExecutionPlan>);
    Some(
        DistributedLeafExec::try_new(Arc::clone(event.plan), variants)
            .map(|leaf| ScaleUpLeafNodeEventResponse::new(Arc::new(leaf))),
    )
}
