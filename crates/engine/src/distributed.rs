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

use async_trait::async_trait;
use datafusion::datasource::physical_plan::{FileGroup, FileScanConfig};
use datafusion::datasource::source::DataSourceExec;
use datafusion::error::DataFusionError;
use datafusion::execution::SessionStateBuilder;
use datafusion::execution::session_state::SessionState;
use datafusion::physical_plan::ExecutionPlan;
use datafusion_distributed::{
    DistributedExt, DistributedLeafExec, ScaleUpLeafNodeEvent, ScaleUpLeafNodeEventResponse,
    SessionStateBuilderExt, Worker, WorkerQueryContext, WorkerResolver, WorkerSessionBuilder,
};
use url::Url;

use crate::{QueryEngine, QueryError};

/// The workers a coordinator may hand stages to, this node's own included.
#[derive(Debug, Clone)]
struct StaticPeers(Vec<Url>);

impl WorkerResolver for StaticPeers {
    fn get_urls(&self) -> Result<Vec<Url>, DataFusionError> {
        Ok(self.0.clone())
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
    /// node's own among them), a scan task per `scan_bytes_per_task` of segment
    /// files (the library's default, 16 MiB, when `None`). No peers: single-node
    /// execution, as before.
    pub fn with_peers(
        mut self,
        peers: Vec<Url>,
        scan_bytes_per_task: Option<usize>,
    ) -> Result<Self, QueryError> {
        if peers.is_empty() {
            return Ok(self);
        }
        let mut builder = SessionStateBuilder::new_from_existing(self.state)
            .with_distributed_worker_resolver(StaticPeers(peers))
            .with_distributed_planner()
            .with_distributed_scale_up_leaf_node_handler(split_segment_scan);
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
