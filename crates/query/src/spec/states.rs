//! The one pass over the data behind a spec answer.
//!
//! ```text
//!  base rows ─► Partial aggregate over (time bucket, keys)  = the states (kept)
//!                 ├─► Final over (keys)        ─► groups: finals, havings, top N
//!                 ├─► Final over ()            ─► totals, heatmap ranges
//!                 ├─► keep rows of the top N ─► Final over (time, keys) ─► series
//!                 └─► bins to buckets ─► Final over (time, bucket) ─► heatmap cells
//! ```
//!
//! The states are DataFusion's own partial aggregation states (sums, sketches,
//! distinct sets, exemplar candidates): every aggregate it can split across
//! partitions it can also merge by coarser keys, so groups, series and totals
//! read the data once and stay exact. The merges run over the states, whose
//! rows are at most (time buckets x groups), not over the events.

use std::collections::HashSet;
use std::sync::Arc;

use arrow::array::{BooleanArray, RecordBatch};
use arrow::compute::filter_record_batch;
use arrow::datatypes::SchemaRef;
use arrow::row::{RowConverter, SortField};
use datafusion::datasource::MemTable;
use datafusion::execution::TaskContext;
use datafusion::execution::memory_pool::{MemoryConsumer, MemoryLimit, MemoryReservation};
use datafusion::physical_expr::expressions::Column;
use datafusion::physical_plan::aggregates::{AggregateExec, AggregateMode, PhysicalGroupBy};
use datafusion::physical_plan::{ExecutionPlan, PhysicalExpr, collect, execute_stream};
use datafusion::prelude::{DataFrame, SessionContext};
use futures::StreamExt;

use super::group_probe::{GroupProbe, GroupProbeExec};
use quarry_engine::QueryError;

/// How a pass ended.
pub(crate) enum Pass {
    /// Its states, to merge.
    States(PassStates),
    /// Its probe found many breakdown keys (see `group_probe`): the pass stopped
    /// early, and the spec answers in two passes.
    ManyGroups,
    /// A shape this does not merge (a distributed plan, an aggregate planned in
    /// an unrecognized shape) or states over budget: each answer is a plan of
    /// its own.
    Declined,
}

/// The partial aggregation states of one pass, grouped by the pass's group
/// columns (time bucket first, then the breakdown keys).
pub(crate) struct PassStates {
    partial: Arc<AggregateExec>,
    batches: Vec<RecordBatch>,
    task: Arc<TaskContext>,
    /// Memory of the kept states, counted in the engine's pool: a query whose
    /// states outgrow it fails as out of resources instead of growing unseen.
    _reservation: MemoryReservation,
}

impl PassStates {
    /// Runs the partial phase of `aggregated` (a frame aggregated over `groups`
    /// group columns) and keeps its states. With `probe` (a number of values),
    /// the group columns after the first (the time bucket) are breakdown keys
    /// whose distinct values among the first rows are counted; reaching that
    /// number stops the pass as [`Pass::ManyGroups`] (see `group_probe`).
    pub(crate) async fn compute(
        context: &SessionContext,
        aggregated: DataFrame,
        groups: usize,
        probe: Option<usize>,
    ) -> Result<Pass, QueryError> {
        let names: Vec<String> = aggregated
            .schema()
            .fields()
            .iter()
            .skip(groups)
            .map(|field| field.name().clone())
            .collect();
        let physical = aggregated.create_physical_plan().await?;
        // A distributed plan's partial aggregate runs in a stage, each task on
        // its share of the rows: alone on this node it would see one share.
        // Each answer then runs as a distributed query of its own.
        if quarry_engine::is_distributed(&physical) {
            return Ok(Pass::Declined);
        }
        let Some(found) = first_aggregate(&physical) else {
            return Ok(Pass::Declined);
        };
        // The merges name their outputs after the physical aggregates: they must
        // be the logical ones, one for one (the optimizer folds equal aggregates
        // into one and renames above it, which the merges would not see).
        let recognized = matches!(found.mode(), AggregateMode::Partial | AggregateMode::Single)
            && !found.group_expr().has_grouping_set()
            && found.group_expr().expr().len() == groups
            && found
                .aggr_expr()
                .iter()
                .map(|aggregate| aggregate.name())
                .eq(names.iter().map(String::as_str));
        if !recognized {
            return Ok(Pass::Declined);
        }
        let mut input = Arc::clone(found.input());
        let probe = probe.map(|many_keys| {
            let probe = GroupProbe::new(many_keys);
            let keys = found
                .group_expr()
                .expr()
                .iter()
                .skip(1)
                .map(|(key, _)| Arc::clone(key))
                .collect();
            input = Arc::new(GroupProbeExec::new(
                Arc::clone(&input),
                keys,
                Arc::clone(&probe),
            ));
            probe
        });
        let partial = Arc::new(AggregateExec::try_new(
            AggregateMode::Partial,
            found.group_expr().clone(),
            found.aggr_expr().to_vec(),
            found.filter_expr().to_vec(),
            input,
            found.input_schema(),
        )?);
        let task = partial_task(context);
        let reservation =
            MemoryConsumer::new("quarry spec pass states").register(task.memory_pool());
        let budget = states_budget(task.memory_pool().memory_limit());
        let mut stream = execute_stream(partial.clone(), Arc::clone(&task))?;
        let mut batches = Vec::new();
        while let Some(batch) = stream.next().await {
            let batch = batch?;
            let size = batch.get_array_memory_size();
            // Groups near one per event (a breakdown by a unique id) make states
            // as large as the rows: the per-answer plans, which can spill, read
            // the data again instead.
            if reservation.size() + size > budget || reservation.try_grow(size).is_err() {
                return Ok(Pass::Declined);
            }
            batches.push(batch);
        }
        if probe.is_some_and(|probe| probe.found_many()) {
            return Ok(Pass::ManyGroups);
        }
        Ok(Pass::States(PassStates {
            partial,
            batches,
            task,
            _reservation: reservation,
        }))
    }

    /// The states merged over the group columns at `columns` (indexes into the
    /// pass's group columns), of the rows `keep` selects: a frame of those group
    /// columns and each aggregate's merged value, under the aggregate's name,
    /// except the aggregates named in `without` (what this answer does not
    /// show, such as exemplars in totals and series, is not merged at all).
    pub(crate) async fn merge(
        &self,
        context: &SessionContext,
        columns: &[usize],
        keep: Option<&RowSet>,
        without: &[&str],
    ) -> Result<DataFrame, QueryError> {
        self.merge_mapped(
            context,
            columns,
            |batch| match keep {
                Some(rows) => Ok(filter_record_batch(batch, &rows.mask(batch)?)?),
                None => Ok(batch.clone()),
            },
            without,
        )
        .await
    }

    /// Rows of states kept: (time bucket, keys) combinations with rows.
    pub(crate) fn rows(&self) -> usize {
        self.batches.iter().map(RecordBatch::num_rows).sum()
    }

    /// Position of the group column `name` in a states batch.
    pub(crate) fn group_column(&self, name: &str) -> Option<usize> {
        let groups = self.partial.group_expr().expr().len();
        self.partial
            .schema()
            .fields()
            .iter()
            .take(groups)
            .position(|field| field.name() == name)
    }

    /// The states as `map` rewrites each batch of them (dropping rows, or
    /// replacing a group column's values by coarser ones, in the same schema),
    /// merged over the group columns at `columns` as [`PassStates::merge`] does.
    pub(crate) async fn merge_mapped(
        &self,
        context: &SessionContext,
        columns: &[usize],
        map: impl Fn(&RecordBatch) -> Result<RecordBatch, QueryError>,
        without: &[&str],
    ) -> Result<DataFrame, QueryError> {
        let groups = self.partial.group_expr().expr().len();
        let schema = self.partial.schema();
        // The final phase reads group columns first, then the state columns of
        // each merged aggregate, in order.
        let mut aggregates = Vec::new();
        let mut state_columns = Vec::new();
        let mut next = groups;
        for aggregate in self.partial.aggr_expr() {
            let states = aggregate.state_fields()?.len();
            if !without.contains(&aggregate.name()) {
                aggregates.push(Arc::clone(aggregate));
                state_columns.extend(next..next + states);
            }
            next += states;
        }
        let projection: Vec<usize> = columns.iter().copied().chain(state_columns).collect();
        let input_schema = Arc::new(schema.project(&projection)?);
        let mut batches = Vec::with_capacity(self.batches.len());
        for batch in &self.batches {
            let batch = map(batch)?;
            if batch.num_rows() > 0 {
                batches.push(batch.project(&projection)?);
            }
        }
        let group_by = PhysicalGroupBy::new_single(
            columns
                .iter()
                .enumerate()
                .map(|(position, index)| {
                    let name = schema.field(*index).name().clone();
                    let column: Arc<dyn PhysicalExpr> = Arc::new(Column::new(&name, position));
                    (column, name)
                })
                .collect(),
        );
        let filters = vec![None; aggregates.len()];
        let input = datafusion::datasource::memory::MemorySourceConfig::try_new_exec(
            &[batches],
            Arc::clone(&input_schema),
            None,
        )?;
        let merged = Arc::new(AggregateExec::try_new(
            AggregateMode::Final,
            group_by,
            aggregates,
            filters,
            input,
            self.partial.input_schema(),
        )?);
        let output: SchemaRef = merged.schema();
        let rows = collect(merged, Arc::clone(&self.task)).await?;
        let table = MemTable::try_new(output, vec![rows])?;
        Ok(context.read_table(Arc::new(table))?)
    }
}

/// Most bytes the states of one pass may hold: a quarter of the engine's pool,
/// leaving the rest to the merges (and to the queries running beside it).
fn states_budget(limit: MemoryLimit) -> usize {
    /// The budget when the pool has no limit.
    const UNBOUNDED_POOL_BUDGET: usize = 256 << 20;
    match limit {
        MemoryLimit::Finite(bytes) => bytes / 4,
        MemoryLimit::Infinite | MemoryLimit::Unknown => UNBOUNDED_POOL_BUDGET,
    }
}

/// The task context of the partial phase: it never skips partial aggregation
/// (DataFusion turns each row into its own state when groups look unique, which
/// would keep one state per event here).
fn partial_task(context: &SessionContext) -> Arc<TaskContext> {
    let task = context.task_ctx();
    let mut config = task.session_config().clone();
    config
        .options_mut()
        .execution
        .skip_partial_aggregation_probe_ratio_threshold = f64::INFINITY;
    Arc::new(TaskContext::new(
        task.task_id(),
        task.session_id(),
        config,
        task.scalar_functions().clone(),
        task.higher_order_functions().clone(),
        task.aggregate_functions().clone(),
        task.window_functions().clone(),
        task.runtime_env(),
    ))
}

/// The aggregate nearest the root of `plan`, through single-input nodes
/// (repartitions, coalesces, projections).
fn first_aggregate(plan: &Arc<dyn ExecutionPlan>) -> Option<&AggregateExec> {
    let mut node = plan;
    loop {
        if let Some(aggregate) = node.downcast_ref::<AggregateExec>() {
            // A final phase: the partial one below holds the group expressions
            // over the input.
            if matches!(
                aggregate.mode(),
                AggregateMode::Final | AggregateMode::FinalPartitioned
            ) {
                node = aggregate.input();
                continue;
            }
            return Some(aggregate);
        }
        match node.children().as_slice() {
            [child] => node = child,
            _ => return None,
        }
    }
}

/// A set of key combinations (some group columns of the pass states), to keep
/// only the states of chosen groups.
pub(crate) struct RowSet {
    /// Positions of the key columns in a states batch.
    columns: Vec<usize>,
    converter: RowConverter,
    rows: HashSet<Box<[u8]>>,
}

impl RowSet {
    /// The key combinations of `keys` (batches of exactly the key columns, in the
    /// order of `columns`, the keys' positions in a states batch). Null keys
    /// match null keys: a missing value is a group of its own.
    pub(crate) fn new(keys: &[RecordBatch], columns: Vec<usize>) -> Result<RowSet, QueryError> {
        let fields = keys
            .first()
            .map(|batch| {
                batch
                    .schema()
                    .fields()
                    .iter()
                    .map(|field| SortField::new(field.data_type().clone()))
                    .collect::<Vec<_>>()
            })
            .unwrap_or_default();
        let converter = RowConverter::new(fields)?;
        let mut rows = HashSet::new();
        for batch in keys {
            let converted = converter.convert_columns(batch.columns())?;
            rows.extend(converted.iter().map(|row| Box::<[u8]>::from(row.as_ref())));
        }
        Ok(RowSet {
            columns,
            converter,
            rows,
        })
    }

    fn mask(&self, batch: &RecordBatch) -> Result<BooleanArray, QueryError> {
        let keys: Vec<_> = self
            .columns
            .iter()
            .map(|index| Arc::clone(batch.column(*index)))
            .collect();
        let converted = self.converter.convert_columns(&keys)?;
        Ok(converted
            .iter()
            .map(|row| Some(self.rows.contains(row.as_ref())))
            .collect())
    }
}
