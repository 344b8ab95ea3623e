//! Rollup maintenance: the background task that rolls up every sealed segment once
//! per rollup, and backfills rollups created after their data.
//!
//! ```text
//!  store change (seal, rollup created) ──► for each dataset and rollup:
//!     raw segments no rollup segment lists as a source (pending)
//!        │ one DataFusion aggregate per segment (partial::rollup_rows)
//!        ▼
//!     Store::add_rollup_segment(sources = [segment]) ── refused if already covered
//!                                                       or no longer a segment
//! ```
//! Compaction and retention remove raw segments together with the rollup segments
//! computed from them; a compacted partition's new segment is pending like a seal's
//! and is rolled up at the next round (their commit wakes this task).
//! Exactly-once comes from the store: a segment is pending until a committed rollup
//! segment lists it, and a second commit for it is ignored. A crash anywhere in
//! between leaves it pending; the next start does it again.

use std::sync::Arc;
use std::time::Duration;

use datafusion::physical_plan::common::collect;
use quarry_segment_store::{
    DatasetSnapshot, PutRollupMode, PutRollupOutcome, Rollup, RollupDefinition, SegmentMeta, Store,
};
use tokio::task::JoinHandle;

use super::definition::{TRACE_DEFAULT_NAME, check, is_trace_dataset, trace_default};
use super::partial::{has_sketch, rollup_rows};
use super::store_error;
use quarry_engine::scan::DatasetTable;
use quarry_engine::{QueryEngine, QueryError};

/// How often maintenance looks for work when no change wakes it.
const IDLE_POLL: Duration = Duration::from_secs(5);
/// How often a process without the maintenance lease looks whether it got it
/// (reading an atomic; taking the lease is the store's maintenance loop's work).
const LEASE_POLL: Duration = Duration::from_millis(250);
/// Pause after a failed round before trying again.
const RETRY_PAUSE: Duration = Duration::from_secs(2);

/// A rollup the configuration file defines for a dataset.
#[derive(Debug, Clone, PartialEq)]
pub struct ConfiguredRollup {
    pub env: String,
    pub dataset: String,
    pub definition: RollupDefinition,
}

/// What maintenance creates on its own.
#[derive(Debug, Clone, Default)]
pub struct RollupSettings {
    /// Rollups from the configuration file (created or replaced when their dataset exists).
    pub configured: Vec<ConfiguredRollup>,
    /// Give datasets of spans the default `requests` rollup.
    pub trace_default: bool,
}

/// The running maintenance task; stopping it loses nothing (work is pending until
/// committed).
pub struct RollupMaintenance {
    task: JoinHandle<()>,
}

impl RollupMaintenance {
    /// Starts maintenance over `store` (which `engine` reads).
    pub fn start(store: Arc<Store>, engine: Arc<QueryEngine>, settings: RollupSettings) -> Self {
        let task = tokio::spawn(run(store, engine, settings));
        RollupMaintenance { task }
    }

    /// Stops the task (at its next await).
    pub fn stop(&self) {
        self.task.abort();
    }
}

impl Drop for RollupMaintenance {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn run(store: Arc<Store>, engine: Arc<QueryEngine>, settings: RollupSettings) {
    let mut changes = store.subscribe_changes();
    loop {
        changes.borrow_and_update();
        // On a shared object store, the holder of the maintenance lease rolls up;
        // a standby only waits (the store keeps trying to take the lease).
        if !store.holds_maintenance_lease() {
            tokio::time::sleep(LEASE_POLL).await;
            continue;
        }
        let pause = match round(&store, &engine, &settings).await {
            Ok(()) => IDLE_POLL,
            Err(error) => {
                tracing::warn!(%error, "rollup maintenance failed; retrying");
                RETRY_PAUSE
            }
        };
        tokio::select! {
            changed = changes.changed() => {
                if changed.is_err() {
                    return;
                }
            }
            () = tokio::time::sleep(pause) => {}
        }
    }
}

/// Creates the rollups due and rolls up every pending segment of every dataset.
pub async fn round(
    store: &Store,
    engine: &QueryEngine,
    settings: &RollupSettings,
) -> Result<(), QueryError> {
    let mut first_error = None;
    for (env, dataset) in store.dataset_keys() {
        let outcome = async {
            ensure_rollups(store, engine, settings, &env, &dataset).await?;
            roll_up_pending(store, engine, &env, &dataset).await
        }
        .await;
        if let Err(error) = outcome {
            tracing::warn!(%env, %dataset, %error, "rollup maintenance of a dataset failed");
            first_error.get_or_insert(error);
        }
    }
    first_error.map_or(Ok(()), Err)
}

/// Creates the configured and default rollups of a dataset that are missing.
async fn ensure_rollups(
    store: &Store,
    engine: &QueryEngine,
    settings: &RollupSettings,
    env: &str,
    dataset: &str,
) -> Result<(), QueryError> {
    let Some((snapshot, set)) = store.rollup_snapshot(env, dataset) else {
        return Ok(());
    };
    let sketch = has_sketch(&engine.session(env)?);
    for configured in &settings.configured {
        if configured.env != env || configured.dataset != dataset {
            continue;
        }
        let definition = &configured.definition;
        if set
            .get(&definition.name)
            .is_some_and(|existing| existing.definition == *definition)
        {
            continue;
        }
        if let Err(error) = check(definition, &snapshot.schema, sketch) {
            tracing::warn!(%env, %dataset, rollup = %definition.name, %error, "configured rollup not created");
            continue;
        }
        let outcome = store
            .put_rollup(env, dataset, definition.clone(), PutRollupMode::Replace)
            .await
            .map_err(store_error)?;
        log_created(env, dataset, &outcome);
    }
    let default_due = settings.trace_default
        && set.get(TRACE_DEFAULT_NAME).is_none()
        && !set.defaults_created.iter().any(|n| n == TRACE_DEFAULT_NAME)
        && is_trace_dataset(&snapshot.schema);
    if default_due {
        let definition = trace_default(sketch);
        if check(&definition, &snapshot.schema, sketch).is_ok() {
            let outcome = store
                .put_rollup(env, dataset, definition, PutRollupMode::Default)
                .await
                .map_err(store_error)?;
            log_created(env, dataset, &outcome);
        }
    }
    Ok(())
}

fn log_created(env: &str, dataset: &str, outcome: &PutRollupOutcome) {
    if let PutRollupOutcome::Created(rollup) = outcome {
        tracing::info!(%env, %dataset, rollup = %rollup.definition.name, "rollup created; backfilling");
    }
}

/// Rolls up, for each rollup of the dataset, every segment not rolled up yet.
async fn roll_up_pending(
    store: &Store,
    engine: &QueryEngine,
    env: &str,
    dataset: &str,
) -> Result<(), QueryError> {
    let Some((snapshot, set)) = store.rollup_snapshot(env, dataset) else {
        return Ok(());
    };
    for rollup in &set.rollups {
        let covered = rollup.covered();
        let pending: Vec<Arc<SegmentMeta>> = snapshot
            .segments
            .iter()
            .filter(|segment| !covered.contains(segment.path.as_str()))
            .cloned()
            .collect();
        drop(covered);
        for segment in pending {
            let path = segment.path.clone();
            match roll_up_segment(store, engine, env, dataset, &snapshot, rollup, segment).await {
                Ok(_) => {}
                // Compaction or retention removed it (and maybe its file) since the
                // snapshot: its rows are in a newer pending segment, or gone.
                Err(_) if !is_segment_of(store, env, dataset, &path) => {}
                Err(error) => return Err(error),
            }
        }
    }
    Ok(())
}

/// Whether `path` is still one of the dataset's segments.
fn is_segment_of(store: &Store, env: &str, dataset: &str, path: &str) -> bool {
    store
        .snapshot(env, dataset)
        .is_some_and(|snapshot| snapshot.segments.iter().any(|s| s.path == path))
}

/// Rolls up one raw segment for one rollup and commits the result.
async fn roll_up_segment(
    store: &Store,
    engine: &QueryEngine,
    env: &str,
    dataset: &str,
    snapshot: &DatasetSnapshot,
    rollup: &Rollup,
    segment: Arc<SegmentMeta>,
) -> Result<bool, QueryError> {
    let context = engine.session(env)?;
    let one_segment = DatasetSnapshot {
        schema: snapshot.schema.clone(),
        segments: vec![Arc::clone(&segment)],
        buffer: Vec::new(),
        sealed_seq_by_node: Default::default(),
    };
    let table = DatasetTable::new(dataset, one_segment, engine.scan_context());
    let frame = context.read_table(Arc::new(table))?;
    let rows = rollup_rows(frame, &rollup.definition, &snapshot.schema, &context)?;
    let schema = Arc::new(rows.schema().as_arrow().clone());
    let batches = collect(rows.execute_stream().await?).await?;
    let rows = if batches.is_empty() {
        None
    } else {
        Some(arrow::compute::concat_batches(&schema, &batches)?)
    };
    let added = store
        .add_rollup_segment(
            env,
            dataset,
            &rollup.id,
            vec![segment.path.clone()],
            rows,
            segment.partition_start_ns,
        )
        .await
        .map_err(store_error)?;
    Ok(added)
}
