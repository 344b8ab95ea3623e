//! Answering a query spec from a rollup: choosing one, and building the relation and
//! aggregates the query-spec compiler runs instead of the raw ones.
//!
//! ```text
//!  relation = Union( rollup segments (RollupTable),
//!                    rollup_rows(raw rows not rolled up yet: pending segments + buffer) )
//!  columns:  timestamp (bucket start), dimensions, meta.rollup.* measures
//! ```
//! The query's filters, breakdowns, time buckets, orders, havings and limit apply to
//! the relation unchanged (its dimension columns have the raw names and types); only
//! each calculation becomes the merge of its partial states ([`calculation`]).

use std::collections::BTreeSet;
use std::sync::Arc;

use arrow::datatypes::DataType;
use datafusion::execution::FunctionRegistry;
use datafusion::functions::expr_fn::{coalesce, nullif};
use datafusion::functions_aggregate::expr_fn::{max, min, sum};
use datafusion::logical_expr::{Expr, cast, lit};
use datafusion::prelude::{DataFrame, SessionContext};
use quarry_segment_store::{DatasetSnapshot, Rollup, SegmentMeta};

use super::columns::{
    COUNT_COLUMN, Measures, count_of, max_of, min_of, rollup_schema, sketch_of, sum_of,
};
use super::filters::{same_filter, valid_filters};
use super::partial::{SKETCH_MERGE_UDAF, SKETCH_QUANTILE_UDF, has_sketch, rollup_rows};
use super::table::RollupTable;
use quarry_engine::ALL_DATASETS;
use quarry_engine::scan::DatasetTable;
use quarry_engine::{QueryEngine, QueryError};
use quarry_query::spec::{CalcOp, ValidSpec, column, time_predicate};

/// Nanoseconds per second.
const NANOS_PER_SECOND: i64 = 1_000_000_000;

/// How one calculation is computed over rollup rows: partial aggregates (aliased
/// [`partial_name`]) and the final value over them.
#[derive(Debug, Clone)]
pub struct RollupCalculation {
    pub partials: Vec<Expr>,
    pub final_expr: Expr,
}

/// A query's input relation and aggregates, answered from a rollup.
pub struct RollupRelation {
    /// `rollup:<name>`, for the response's `source`.
    pub source: String,
    /// Rows with `timestamp` (bucket start), the dimensions and the measures,
    /// within the query's time range.
    pub frame: DataFrame,
    /// One per calculation of the query, in order.
    pub calculations: Vec<RollupCalculation>,
    /// Indexes of the query's filters already applied (the rollup's own filters):
    /// they must not be applied again (their columns may not be in `frame`).
    pub applied_filters: Vec<usize>,
}

impl std::fmt::Debug for RollupRelation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RollupRelation")
            .field("source", &self.source)
            .field("calculations", &self.calculations)
            .field("applied_filters", &self.applied_filters)
            .finish()
    }
}

/// Name of partial `part` of calculation `index` over rollup rows.
pub fn partial_name(index: usize, part: usize) -> String {
    format!("__quarry_rollup{index}_{part}")
}

/// Whether `spec` needs raw rows whatever the rollups (calculated fields, usage
/// mode, or an op no rollup keeps).
fn needs_raw_rows(spec: &ValidSpec) -> bool {
    spec.usage_mode
        || !spec.calculated_fields.is_empty()
        || spec.calculations.iter().any(|c| {
            matches!(
                c.op,
                CalcOp::Heatmap
                    | CalcOp::CountDistinct
                    | CalcOp::Concurrency
                    | CalcOp::RateAvg
                    | CalcOp::RateSum
                    | CalcOp::RateMax
                    | CalcOp::Last
            )
        })
}

/// Whether `rollup` can answer `spec`; the indexes of the filters it applies.
fn answers(rollup: &Rollup, spec: &ValidSpec, sketch: bool) -> Option<Vec<usize>> {
    let definition = &rollup.definition;
    let granularity = definition.granularity as i64;
    let granularity_ns = granularity * NANOS_PER_SECOND;
    if spec.granularity_secs <= 0
        || spec.granularity_secs % granularity != 0
        || spec.start_ns.rem_euclid(granularity_ns) != 0
        || spec.end_ns.rem_euclid(granularity_ns) != 0
    {
        return None;
    }
    let is_dimension = |name: &str| definition.dimensions.iter().any(|d| d == name);
    if !spec.breakdowns.iter().all(|b| is_dimension(b)) {
        return None;
    }
    let mut applied = Vec::new();
    for own in valid_filters(&definition.filters).ok()? {
        let index = spec.filters.iter().position(|f| same_filter(f, &own))?;
        applied.push(index);
    }
    if !applied.is_empty() && spec.combine_or {
        return None;
    }
    for (index, filter) in spec.filters.iter().enumerate() {
        if !applied.contains(&index) && !is_dimension(&filter.column) {
            return None;
        }
    }
    let measures = Measures::of(definition);
    for calculation in &spec.calculations {
        let has = |set: &BTreeSet<String>| {
            calculation
                .column
                .as_ref()
                .is_some_and(|column| set.contains(column))
        };
        let ok = match calculation.op {
            CalcOp::Count => true,
            CalcOp::Sum | CalcOp::Avg => has(&measures.sum),
            CalcOp::Min => has(&measures.min),
            CalcOp::Max => has(&measures.max),
            CalcOp::Percentile(_) => sketch && has(&measures.percentiles),
            _ => false,
        };
        if !ok {
            return None;
        }
    }
    applied.sort_unstable();
    Some(applied)
}

/// The partials and final value over rollup rows that equal calculation `index`
/// (`op(column)`) over raw rows.
fn calculation(
    index: usize,
    op: CalcOp,
    column_name: Option<&str>,
    context: &SessionContext,
) -> Result<RollupCalculation, QueryError> {
    let name = column_name.unwrap_or_default();
    let part = |n: usize| column(&partial_name(index, n));
    let single = |aggregate: Expr| RollupCalculation {
        partials: vec![aggregate.alias(partial_name(index, 0))],
        final_expr: part(0),
    };
    Ok(match op {
        CalcOp::Count => RollupCalculation {
            partials: vec![sum(column(COUNT_COLUMN)).alias(partial_name(index, 0))],
            final_expr: coalesce(vec![part(0), lit(0i64)]),
        },
        CalcOp::Sum => single(sum(cast(column(&sum_of(name)), DataType::Float64))),
        CalcOp::Avg => RollupCalculation {
            partials: vec![
                sum(cast(column(&sum_of(name)), DataType::Float64)).alias(partial_name(index, 0)),
                sum(cast(column(&count_of(name)), DataType::Float64)).alias(partial_name(index, 1)),
            ],
            final_expr: part(0) / nullif(part(1), lit(0.0)),
        },
        CalcOp::Min => single(min(column(&min_of(name)))),
        CalcOp::Max => single(max(column(&max_of(name)))),
        CalcOp::Percentile(percentile) => {
            let merge = context.udaf(SKETCH_MERGE_UDAF)?;
            let quantile = context.udf(SKETCH_QUANTILE_UDF)?;
            RollupCalculation {
                partials: vec![
                    merge
                        .call(vec![column(&sketch_of(name))])
                        .alias(partial_name(index, 0)),
                ],
                final_expr: quantile.call(vec![part(0), lit(percentile.quantile)]),
            }
        }
        other => {
            return Err(QueryError::InvalidSpec(format!(
                "{other} cannot be answered from a rollup"
            )));
        }
    })
}

/// The relation answering `spec` over `dataset` from a rollup, when one can
/// (see the module docs); `None` means: answer from raw rows.
pub async fn rollup_relation(
    engine: &QueryEngine,
    context: &SessionContext,
    env: &str,
    dataset: &str,
    spec: &ValidSpec,
) -> Result<Option<RollupRelation>, QueryError> {
    if needs_raw_rows(spec) {
        return Ok(None);
    }
    if dataset == ALL_DATASETS {
        return all_datasets_relation(engine, context, env, spec).await;
    }
    let Some((snapshot, set)) = engine.rollup_snapshot(env, dataset).await? else {
        return Ok(None);
    };
    let sketch = has_sketch(context);
    // Coarsest buckets first (fewest rows), then fewest dimensions.
    let mut candidates: Vec<(&Arc<Rollup>, Vec<usize>)> = set
        .rollups
        .iter()
        .filter_map(|rollup| answers(rollup, spec, sketch).map(|applied| (rollup, applied)))
        .collect();
    candidates.sort_by_key(|(rollup, _)| {
        (
            std::cmp::Reverse(rollup.definition.granularity),
            rollup.definition.dimensions.len(),
        )
    });
    let Some((rollup, applied_filters)) = candidates.into_iter().next() else {
        return Ok(None);
    };
    let frame = relation(engine, context, dataset, &snapshot, rollup, spec)?;
    let calculations = spec
        .calculations
        .iter()
        .enumerate()
        .map(|(index, c)| calculation(index, c.op, c.column.as_deref(), context))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Some(RollupRelation {
        source: format!("rollup:{}", rollup.definition.name),
        frame,
        calculations,
        applied_filters,
    }))
}

/// `__all__` from rollups: every dataset of the environment answers from one of
/// its rollups, with relations of the same columns, unioned. If any dataset
/// cannot (no fitting rollup, or other column types), the whole query is
/// answered from raw rows: a mix would be one source per dataset.
async fn all_datasets_relation(
    engine: &QueryEngine,
    context: &SessionContext,
    env: &str,
    spec: &ValidSpec,
) -> Result<Option<RollupRelation>, QueryError> {
    let datasets = engine.dataset_names(env).await?;
    let mut combined: Option<RollupRelation> = None;
    for dataset in datasets {
        let Some(relation) =
            Box::pin(rollup_relation(engine, context, env, &dataset, spec)).await?
        else {
            return Ok(None);
        };
        combined = Some(match combined {
            None => relation,
            Some(mut so_far) => {
                let same = so_far.frame.schema().as_arrow() == relation.frame.schema().as_arrow()
                    && so_far.applied_filters == relation.applied_filters;
                if !same {
                    return Ok(None);
                }
                if so_far.source != relation.source {
                    so_far.source = "rollups".to_owned();
                }
                so_far.frame = so_far.frame.union(relation.frame)?;
                so_far
            }
        });
    }
    Ok(combined)
}

/// Rollup segments plus the raw rows not rolled up yet, in rollup row format,
/// within the query's time range.
fn relation(
    engine: &QueryEngine,
    context: &SessionContext,
    dataset: &str,
    snapshot: &DatasetSnapshot,
    rollup: &Rollup,
    spec: &ValidSpec,
) -> Result<DataFrame, QueryError> {
    let schema = rollup_schema(&rollup.definition, &snapshot.schema);
    let covered = rollup.covered();
    let files: Vec<Arc<SegmentMeta>> = rollup
        .segments
        .iter()
        .filter_map(|segment| segment.file.clone().map(Arc::new))
        .collect();
    let pending = DatasetSnapshot {
        schema: snapshot.schema.clone(),
        segments: snapshot
            .segments
            .iter()
            .filter(|segment| !covered.contains(segment.path.as_str()))
            .cloned()
            .collect(),
        buffer: snapshot.buffer.clone(),
        sealed_seq_by_node: snapshot.sealed_seq_by_node.clone(),
    };
    // Bucket starts fall in the range exactly when their buckets do: the range's
    // ends are bucket boundaries (checked in `answers`).
    let range = time_predicate(spec.start_ns, spec.end_ns);
    let stored = context
        .read_table(Arc::new(RollupTable::new(
            Arc::clone(&schema),
            files,
            engine.scan_context(),
        )))?
        .filter(range.clone())?;
    if pending.segments.is_empty() && pending.buffer.is_empty() {
        return Ok(stored);
    }
    let raw = context
        .read_table(Arc::new(DatasetTable::new(
            dataset,
            pending,
            engine.scan_context(),
        )))?
        .filter(range)?;
    let fresh = rollup_rows(raw, &rollup.definition, &snapshot.schema, context)?;
    Ok(stored.union(fresh)?)
}
