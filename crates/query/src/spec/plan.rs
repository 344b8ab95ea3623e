//! A checked spec compiled to DataFusion plans.
//!
//! ```text
//!  dataset ─► filter(time range AND filters) ─► project: time bucket, breakdown
//!             keys, weight, calculation inputs   (the "base" frame)
//!     └─► aggregate(time, keys)   the one pass (see `states`), merged into:
//!           ├─► per group ─► finals ─► havings ─► orders ─► limit   = groups
//!           ├─► per (time, top group) ─► finals                     = series
//!           └─► over all ─► finals                                  = totals
//! ```
//!
//! Each calculation becomes one or more partial aggregates (AVG is a weighted
//! sum over a weight sum) and one final expression over them, so groups, series
//! and totals share one definition. Internal column names start with
//! `__quarry_` so they never meet a dataset column.

use arrow::array::RecordBatch;
use arrow::datatypes::DataType;
use datafusion::common::{NullEquality, ScalarValue, TableReference};
use datafusion::functions::expr_fn::{least, nullif};
use datafusion::functions_aggregate::expr_fn::{
    avg, count, count_distinct, last_value, max, min, sum,
};
use datafusion::functions_nested::expr_fn::range;
use datafusion::functions_window::expr_fn::lag;
use datafusion::logical_expr::{
    Expr, ExprFunctionExt, JoinType, LogicalPlanBuilder, SortExpr, cast, lit, try_cast, when,
};
use datafusion::prelude::{DataFrame, SessionContext};
use quarry_schema::fields::{
    DURATION_MS, METRIC_BUCKET_COUNTS, METRIC_EXPLICIT_BOUNDS, METRIC_MONOTONIC, METRIC_SERIES_ID,
    METRIC_START_TIME_UNIX_NANO, METRIC_TEMPORALITY, METRIC_TEMPORALITY_DELTA, SPAN_ID,
};
use quarry_schema::{SAMPLE_RATE, TIMESTAMP, TRACE_ID};

use super::columns::{Columns, column, is_numeric};
use super::error::SpecError;
use super::filters::{filters_predicate, seconds_to_ns, time_predicate};
use super::ops::{CalcOp, Comparison};
use super::sketches;
use super::validate::{OrderKey, ValidSpec};
use quarry_engine::time_bucket::bucket_start_ns;
use quarry_engine::{DATASET_COLUMN, QueryError};

/// Start of the row's time bucket, nanoseconds since the epoch (public for plan
/// rewrites such as rollups, as are [`key`] and [`value`]).
pub const TIME: &str = "__quarry_time";
/// The row's weight: `meta.sample_rate` (1 when missing, or in usage mode).
pub const WEIGHT: &str = "__quarry_weight";
/// Rows behind an aggregate, unweighted.
pub const ROWS: &str = "__quarry_rows";

/// Name of breakdown key `index`.
pub fn key(index: usize) -> String {
    format!("__quarry_key{index}")
}

/// Name of the input column of calculation `index`.
pub fn input(index: usize) -> String {
    format!("__quarry_in{index}")
}

/// Name of the final value of calculation `index`.
pub fn value(index: usize) -> String {
    format!("__quarry_value{index}")
}

/// Name of the histogram bounds read by percentile calculation `index` of
/// `metric.bucket_counts`.
fn bounds(index: usize) -> String {
    format!("__quarry_bounds{index}")
}

/// Name of the per-event rate of calculation `index` (RATE_*).
pub fn rate(index: usize) -> String {
    format!("__quarry_rate{index}")
}

fn partial(index: usize, part: usize) -> String {
    format!("__quarry_part{index}_{part}")
}

/// Most top groups whose rows [`Plan::top_rows`] selects with a filter on their
/// keys; more are a semi-join.
const TOP_KEYS_FILTERED: usize = 100;

/// How one calculation is aggregated (public for plan rewrites such as rollups).
#[derive(Debug, Clone)]
pub struct CalcPlan {
    /// Partial aggregates, aliased.
    pub partials: Vec<Expr>,
    /// The final value over the partials, aliased [`value`].
    pub final_expr: Expr,
}

/// The compiled query.
///
/// Public for plan rewrites such as rollups ([`super::PlanRewrite`]): they build
/// one with [`Plan::aggregates_only`]; its parts stay inside this crate.
pub struct Plan {
    /// The checked spec.
    pub(crate) spec: ValidSpec,
    /// Filtered rows with the internal columns.
    pub(crate) base: DataFrame,
    /// Per calculation; `None` for HEATMAP (not a per-group value).
    pub(crate) calcs: Vec<Option<CalcPlan>>,
    /// Indexes of the HEATMAP calculations.
    pub(crate) heatmaps: Vec<usize>,
    /// The exemplars of a group, over the base columns (none without the function).
    pub(crate) exemplars: Option<Expr>,
    /// Exemplars of a heatmap cell, given the value column.
    exemplar_of: Option<ExemplarColumns>,
    /// The calculation whose column is a group exemplar's value.
    exemplar_value: Option<usize>,
}

impl Plan {
    /// A plan of per-group values only: no heatmaps and no exemplars (what a
    /// rollup, which keeps no raw events, can answer). `base` has the columns
    /// [`TIME`], [`key`]`(i)` per breakdown and whatever `calcs` read; each
    /// calculation's final expression is aliased [`value`]`(i)`.
    pub fn aggregates_only(spec: ValidSpec, base: DataFrame, calcs: Vec<Option<CalcPlan>>) -> Plan {
        Plan {
            spec,
            base,
            calcs,
            heatmaps: Vec::new(),
            exemplars: None,
            exemplar_of: None,
            exemplar_value: None,
        }
    }
}

/// Base columns an exemplar reads besides its value: its time and dataset.
/// Its ids are not read by the aggregate (decoding every row's trace and span
/// ids would cost more than the rest of the answer): the aggregate picks each
/// exemplar by value and by a hash of (timestamp, value), and the ids of just
/// the picked events are looked up afterwards (`exemplar_ids`).
#[derive(Debug, Clone)]
struct ExemplarColumns {
    dataset: Expr,
}

impl ExemplarColumns {
    fn expr(&self, value: Expr) -> Option<Expr> {
        let no_id = lit(ScalarValue::Utf8(None));
        sketches::exemplars(
            value,
            column(TIMESTAMP),
            no_id.clone(),
            no_id,
            self.dataset.clone(),
        )
    }
}

/// Exemplars of a group or cell.
pub const EXEMPLARS: &str = "__quarry_exemplars";
/// An event's trace id, span id and dataset, as the exemplar lookup reads them.
pub const TRACE_ID_INPUT: &str = "__quarry_trace_id";
pub const SPAN_ID_INPUT: &str = "__quarry_span_id";
pub const DATASET_INPUT: &str = "__quarry_dataset";
/// An event's time in nanoseconds, in the exemplar lookup.
pub const TIME_NS: &str = "__quarry_time_ns";
/// A group exemplar's value, in the exemplar lookup.
pub const EXEMPLAR_VALUE: &str = "__quarry_exemplar_value";

/// Name of the smallest value of HEATMAP calculation `index`, in the totals.
pub fn heatmap_min(index: usize) -> String {
    format!("__quarry_hmin{index}")
}

/// Name of the largest value of HEATMAP calculation `index`, in the totals.
pub fn heatmap_max(index: usize) -> String {
    format!("__quarry_hmax{index}")
}

/// End of a span, ns (its start when it has no `duration_ms`).
pub const SPAN_END: &str = "__quarry_span_end";
const SPAN_BUCKETS: &str = "__quarry_span_buckets";
/// Spans in flight in a time bucket.
pub const CONCURRENCY: &str = "__quarry_concurrency";

/// Internal names of the OTLP metric columns (see docs/otlp.md) in a rate's input.
const SERIES_INPUT: &str = "__quarry_series";
const MONOTONIC_INPUT: &str = "__quarry_monotonic";
const START_INPUT: &str = "__quarry_start";
const DELTA_INPUT: &str = "__quarry_delta";

/// Value bucket of a heatmap cell.
pub const BUCKET: &str = "__quarry_bucket";
/// Weighted events of a heatmap cell.
pub const CELL_COUNT: &str = "__quarry_count";
/// Exemplars of a heatmap cell, when not the same aggregate as [`EXEMPLARS`].
pub const CELL_EXEMPLARS: &str = "__quarry_cell_exemplars";

/// Compiles `spec` over `dataset` (a dataset name or `__all__`).
pub async fn compile(
    context: &SessionContext,
    dataset: &str,
    spec: ValidSpec,
) -> Result<Plan, QueryError> {
    let table = base_table(context, dataset).await?;
    let schema = table.schema().clone();
    let columns = Columns::new(&schema, &spec.calculated_fields)?;
    let mut predicate = time_predicate(spec.start_ns, spec.end_ns);
    if let Some(filters) = filters_predicate(&spec.filters, spec.combine_or, &columns)? {
        predicate = predicate.and(filters);
    }
    let mut projection = vec![
        bucket_start_ns(spec.granularity_secs).alias(TIME),
        column(TIMESTAMP),
    ];
    for (index, name) in spec.breakdowns.iter().enumerate() {
        let expr = columns.resolve(name, &format!("breakdowns[{index}]"))?;
        projection.push(expr.alias(key(index)));
    }
    projection.push(weight(&columns, spec.usage_mode).alias(WEIGHT));
    let mut calcs = Vec::with_capacity(spec.calculations.len());
    let mut heatmaps = Vec::new();
    let mut histograms = Vec::new();
    for (index, calculation) in spec.calculations.iter().enumerate() {
        let field = format!("calculations[{index}].column");
        if let CalcOp::Percentile(percentile) = calculation.op
            && calculation.column.as_deref() == Some(METRIC_BUCKET_COUNTS)
        {
            // OTLP histogram points: the percentile of the values they recorded.
            let text = |name: &str| {
                if columns.is_plain_column(name) {
                    cast(column(name), DataType::Utf8)
                } else {
                    lit(ScalarValue::Utf8(None))
                }
            };
            projection.push(text(METRIC_BUCKET_COUNTS).alias(input(index)));
            projection.push(text(METRIC_EXPLICIT_BOUNDS).alias(bounds(index)));
            calcs.push(Some(CalcPlan {
                partials: vec![
                    quarry_functions::histogram_quantile_expr(
                        column(SERIES_INPUT),
                        cast(column(TIMESTAMP), DataType::Int64),
                        column(DELTA_INPUT),
                        column(&bounds(index)),
                        column(&input(index)),
                        percentile.quantile,
                    )
                    .alias(partial(index, 0)),
                ],
                final_expr: column(&partial(index, 0)).alias(value(index)),
            }));
            histograms.push(index);
            continue;
        }
        if let Some(name) = &calculation.column {
            let expr = columns.resolve(name, &field)?;
            let data_type = columns.data_type(&expr, &field)?;
            if calculation.op.needs_numbers() && !is_numeric(&data_type) {
                return Err(SpecError::new(
                    field,
                    format!(
                        "{} needs a numeric column; {name:?} is {data_type}",
                        calculation.op
                    ),
                )
                .into());
            }
            if calculation.op == CalcOp::Heatmap {
                heatmaps.push(index);
            }
            let expr = match calculation.op {
                CalcOp::Min | CalcOp::Max | CalcOp::CountDistinct | CalcOp::Last => expr,
                _ => cast(expr, DataType::Float64),
            };
            projection.push(expr.alias(input(index)));
        }
        calcs.push(calc_plan(index, calculation.op));
    }
    // Exemplars read ids and the dataset only when the function exists.
    let exemplar_of = ExemplarColumns {
        dataset: column(DATASET_INPUT),
    };
    let exemplar_value = spec
        .calculations
        .iter()
        .enumerate()
        .position(|(index, c)| c.op.needs_numbers() && !histograms.contains(&index));
    let exemplars = exemplar_of.expr(exemplar_value_expr(exemplar_value));
    let exemplar_of = exemplars.is_some().then_some(exemplar_of);
    if exemplar_of.is_some() {
        let text = |name: &str| {
            if columns.is_plain_column(name) {
                // The exemplar function reads any string layout as it is.
                column(name)
            } else {
                lit(ScalarValue::Utf8(None))
            }
        };
        projection.push(text(TRACE_ID).alias(TRACE_ID_INPUT));
        projection.push(text(SPAN_ID).alias(SPAN_ID_INPUT));
        let dataset_name = if columns.is_plain_column(DATASET_COLUMN) {
            text(DATASET_COLUMN)
        } else {
            lit(dataset)
        };
        projection.push(dataset_name.alias(DATASET_INPUT));
    }
    if spec
        .calculations
        .iter()
        .any(|c| c.op == CalcOp::Concurrency)
    {
        let start = cast(column(TIMESTAMP), DataType::Int64);
        let end = if columns.is_plain_column(DURATION_MS) {
            let nanos = cast(column(DURATION_MS), DataType::Float64) * lit(1e6);
            start.clone()
                + datafusion::functions::expr_fn::coalesce(vec![
                    try_cast(nanos, DataType::Int64),
                    lit(0i64),
                ])
        } else {
            start
        };
        projection.push(end.alias(SPAN_END));
    }
    let rates = spec.calculations.iter().any(|c| c.op.is_rate());
    if rates || !histograms.is_empty() {
        projection.extend(rate_inputs(&columns));
    }
    let mut base = table.filter(predicate)?.select(projection)?;
    for (index, calculation) in spec.calculations.iter().enumerate() {
        if calculation.op.is_rate() {
            base = base.with_column(&rate(index), rate_expr(index, spec.breakdowns.len())?)?;
        }
    }
    Ok(Plan {
        spec,
        base,
        calcs,
        heatmaps,
        exemplars,
        exemplar_of,
        exemplar_value,
    })
}

/// A group exemplar's value: the column of calculation `index` as Float64.
fn exemplar_value_expr(index: Option<usize>) -> Expr {
    index.map_or(lit(ScalarValue::Float64(None)), |index| {
        cast(column(&input(index)), DataType::Float64)
    })
}

/// The dataset's table; `DatasetNotFound` when the environment has none such.
pub async fn base_table(context: &SessionContext, dataset: &str) -> Result<DataFrame, QueryError> {
    let reference = TableReference::bare(dataset);
    if !context.table_exist(reference.clone())? {
        return Err(QueryError::DatasetNotFound(dataset.to_owned()));
    }
    Ok(context.table(reference).await?)
}

/// Per-second change of the calculation's column since the previous event of the
/// same group and metric series (null when either value is missing or no time passed).
/// Monotonic sums count a drop, or a later series start, as a reset: the increase is
/// then the new value. Delta sums are their own increase since their start time.
fn rate_expr(index: usize, breakdowns: usize) -> Result<Expr, QueryError> {
    let mut partition: Vec<Expr> = (0..breakdowns).map(|i| column(&key(i))).collect();
    partition.push(column(SERIES_INPUT));
    let order = vec![column(TIMESTAMP).sort(true, false)];
    let previous = |expr: Expr| {
        lag(expr, Some(1), None)
            .partition_by(partition.clone())
            .order_by(order.clone())
            .build()
    };
    let value = column(&input(index));
    let nanos = cast(column(TIMESTAMP), DataType::Int64);
    let start = column(START_INPUT);
    let seconds_since = |from: Expr| {
        nullif(
            cast(nanos.clone() - from, DataType::Float64) / lit(1e9),
            lit(0.0),
        )
    };
    let previous_value = previous(value.clone())?;
    let reset = column(MONOTONIC_INPUT).and(
        value
            .clone()
            .lt(previous_value.clone())
            .or(start.clone().gt(previous(start.clone())?)),
    );
    let increase = when(
        datafusion::functions::expr_fn::coalesce(vec![reset, lit(false)]),
        value.clone(),
    )
    .otherwise(value.clone() - previous_value)?;
    let cumulative = increase / seconds_since(previous(nanos.clone())?);
    Ok(when(column(DELTA_INPUT), value / seconds_since(start)).otherwise(cumulative)?)
}

/// The metric columns a rate reads, projected under internal names (constants
/// where the table has no such column, e.g. a dataset of spans).
fn rate_inputs(columns: &Columns) -> Vec<Expr> {
    let typed = |name: &str, data_type: DataType, otherwise: Expr| {
        if columns.is_plain_column(name) {
            cast(column(name), data_type)
        } else {
            otherwise
        }
    };
    let temporality = typed(
        METRIC_TEMPORALITY,
        DataType::Utf8,
        lit(ScalarValue::Utf8(None)),
    );
    vec![
        typed(
            METRIC_SERIES_ID,
            DataType::Utf8,
            lit(ScalarValue::Utf8(None)),
        )
        .alias(SERIES_INPUT),
        datafusion::functions::expr_fn::coalesce(vec![
            typed(METRIC_MONOTONIC, DataType::Boolean, lit(false)),
            lit(false),
        ])
        .alias(MONOTONIC_INPUT),
        typed(
            METRIC_START_TIME_UNIX_NANO,
            DataType::Int64,
            lit(ScalarValue::Int64(None)),
        )
        .alias(START_INPUT),
        datafusion::functions::expr_fn::coalesce(vec![
            temporality.eq(lit(METRIC_TEMPORALITY_DELTA)),
            lit(false),
        ])
        .alias(DELTA_INPUT),
    ]
}

fn weight(columns: &Columns, usage_mode: bool) -> Expr {
    if usage_mode || !columns.is_plain_column(SAMPLE_RATE) {
        return lit(1i64);
    }
    let rate = column(SAMPLE_RATE);
    // Sample rates are ints >= 1 on ingest; a missing one means unsampled.
    when(rate.clone().is_null(), lit(1i64))
        .otherwise(cast(rate, DataType::Int64))
        .unwrap_or_else(|_| lit(1i64))
}

fn calc_plan(index: usize, op: CalcOp) -> Option<CalcPlan> {
    let v = || column(&input(index));
    let w = || column(WEIGHT);
    let wf = || cast(column(WEIGHT), DataType::Float64);
    let p = |part: usize| column(&partial(index, part));
    let single = |aggregate: Expr| CalcPlan {
        partials: vec![aggregate.alias(partial(index, 0))],
        final_expr: p(0).alias(value(index)),
    };
    Some(match op {
        CalcOp::Heatmap => return None,
        CalcOp::Count => CalcPlan {
            partials: vec![sum(w()).alias(partial(index, 0))],
            final_expr: datafusion::functions::expr_fn::coalesce(vec![p(0), lit(0i64)])
                .alias(value(index)),
        },
        CalcOp::Sum => single(sum(v() * wf())),
        CalcOp::Avg => CalcPlan {
            partials: vec![
                sum(v() * wf()).alias(partial(index, 0)),
                sum(when(v().is_not_null(), wf()).end().unwrap_or_else(|_| wf()))
                    .alias(partial(index, 1)),
            ],
            final_expr: (p(0) / p(1)).alias(value(index)),
        },
        CalcOp::Min => single(min(v())),
        CalcOp::Max => single(max(v())),
        CalcOp::CountDistinct => single(count_distinct(v())),
        CalcOp::Percentile(percentile) => {
            single(sketches::percentile(v(), wf(), percentile.quantile))
        }
        CalcOp::RateSum => single(sum(column(&rate(index)))),
        CalcOp::RateAvg => single(avg(column(&rate(index)))),
        CalcOp::RateMax => single(max(column(&rate(index)))),
        // The latest row with a value: rows without one sort first.
        CalcOp::Last => single(last_value(
            v(),
            vec![
                v().is_not_null().sort(true, false),
                column(TIMESTAMP).sort(true, false),
            ],
        )),
        // Not a row aggregate: see [`Plan::concurrency`]; filled in afterwards.
        CalcOp::Concurrency => single(max(lit(ScalarValue::Int64(None)))),
    })
}

impl Plan {
    fn partials(&self) -> Vec<Expr> {
        let mut out: Vec<Expr> = self
            .calcs
            .iter()
            .flatten()
            .flat_map(|calc| calc.partials.iter().cloned())
            .collect();
        out.push(count(lit(1i64)).alias(ROWS));
        out
    }

    fn finals(&self) -> Vec<Expr> {
        let mut out: Vec<Expr> = self
            .calcs
            .iter()
            .flatten()
            .map(|calc| calc.final_expr.clone())
            .collect();
        out.push(column(ROWS));
        out
    }

    pub(super) fn keys(&self) -> Vec<Expr> {
        (0..self.spec.breakdowns.len())
            .map(|index| column(&key(index)))
            .collect()
    }

    /// The aggregates of the one pass over (time bucket, keys): every
    /// calculation's partials, the row count, exemplars and each heatmap
    /// column's range. Groups, series and totals merge them by coarser keys.
    pub(crate) fn pass_aggregates(&self) -> Vec<Expr> {
        let mut aggregates = self.value_aggregates();
        if let Some(exemplars) = &self.exemplars {
            aggregates.push(exemplars.clone().alias(EXEMPLARS));
        }
        aggregates
    }

    /// The pass aggregates but exemplars: what totals and the ranking of groups
    /// read.
    fn value_aggregates(&self) -> Vec<Expr> {
        let mut aggregates = self.partials();
        for index in &self.heatmaps {
            aggregates.push(min(column(&input(*index))).alias(heatmap_min(*index)));
            aggregates.push(max(column(&input(*index))).alias(heatmap_max(*index)));
        }
        aggregates
    }

    /// The HEATMAP calculation the one pass also counts, by (time bucket, fine
    /// value bin): the only one of a spec without breakdowns. With breakdowns
    /// the bins would multiply every group's states, so its cells are a pass of
    /// their own ([`Plan::heatmap_cells`]).
    pub(crate) fn heatmap_in_pass(&self) -> Option<usize> {
        match self.heatmaps.as_slice() {
            [index] if self.spec.breakdowns.is_empty() => Some(*index),
            _ => None,
        }
    }

    /// The group columns of the one pass: the time bucket, the keys, and the
    /// fine value bin of [`Plan::heatmap_in_pass`] (as [`BUCKET`]).
    pub(crate) fn pass_group_columns(&self) -> Vec<Expr> {
        let mut keys = self.pass_keys();
        if let Some(index) = self.heatmap_in_pass() {
            keys.push(sketches::heatmap_fine_bin(column(&input(index))).alias(BUCKET));
        }
        keys
    }

    /// The aggregates of a heatmap cell of HEATMAP `index`: its weighted count,
    /// and its exemplars (by the heatmap's column) when those are not the
    /// group's exemplars already.
    fn cell_aggregates(&self, index: usize) -> Vec<Expr> {
        let mut aggregates = vec![sum(column(WEIGHT)).alias(CELL_COUNT)];
        if let Some(exemplars) = self.cell_exemplars(index)
            && Some(&exemplars) != self.exemplars.as_ref()
        {
            aggregates.push(exemplars.alias(CELL_EXEMPLARS));
        }
        aggregates
    }

    fn cell_exemplars(&self, index: usize) -> Option<Expr> {
        self.exemplar_of
            .as_ref()
            .and_then(|of| of.expr(cast(column(&input(index)), DataType::Float64)))
    }

    /// The group columns of the one pass: the time bucket, then the keys.
    pub(crate) fn pass_keys(&self) -> Vec<Expr> {
        let mut keys = vec![column(TIME)];
        keys.extend(self.keys());
        keys
    }

    /// The base aggregated over [`Plan::pass_group_columns`]: the one pass.
    pub(crate) fn pass(&self) -> Result<DataFrame, QueryError> {
        let mut aggregates = self.pass_aggregates();
        if let Some(index) = self.heatmap_in_pass() {
            aggregates.extend(self.cell_aggregates(index));
        }
        Ok(self
            .base
            .clone()
            .aggregate(self.pass_group_columns(), aggregates)?)
    }

    /// The pass aggregates per group, read by [`Plan::groups`], computed from the
    /// base (when the one pass's states cannot be merged).
    pub(crate) fn per_group(&self) -> Result<DataFrame, QueryError> {
        Ok(self
            .base
            .clone()
            .aggregate(self.keys(), self.pass_aggregates())?)
    }

    /// The pass aggregates but exemplars per group, from the base: the first of
    /// two passes, which ranks the groups (see `run::two_passes`).
    pub(crate) fn per_group_values(&self) -> Result<DataFrame, QueryError> {
        Ok(self
            .base
            .clone()
            .aggregate(self.keys(), self.value_aggregates())?)
    }

    /// The pass aggregates per (time bucket, group) of the base rows of `groups`
    /// only: the second of two passes, whose states give the top groups their
    /// values, exemplars and series.
    pub(crate) fn top_pass(
        &self,
        context: &SessionContext,
        groups: &[RecordBatch],
    ) -> Result<DataFrame, QueryError> {
        Ok(self
            .top_rows(context, groups)?
            .aggregate(self.pass_keys(), self.pass_aggregates())?)
    }

    /// The pass aggregates over every row, read by [`Plan::totals`], from the base.
    pub(crate) fn overall(&self) -> Result<DataFrame, QueryError> {
        Ok(self
            .base
            .clone()
            .aggregate(vec![], self.pass_aggregates())?)
    }

    /// The pass aggregates per (time bucket, top group), read by
    /// [`Plan::series`], from the base rows of `groups` only.
    pub(crate) fn per_bucket(
        &self,
        context: &SessionContext,
        groups: &[RecordBatch],
    ) -> Result<DataFrame, QueryError> {
        Ok(self
            .top_rows(context, groups)?
            .aggregate(self.pass_keys(), self.partials())?)
    }

    /// The top groups over the whole range: havings, then orders, then limit.
    /// `per_group` holds the keys and the pass aggregates of every group.
    pub(crate) fn groups(&self, per_group: DataFrame) -> Result<DataFrame, QueryError> {
        self.top_groups(per_group, self.exemplars.is_some())
    }

    /// The top groups as [`Plan::groups`] chooses them, without exemplars
    /// (`per_group` has none).
    pub(crate) fn ranked_groups(&self, per_group: DataFrame) -> Result<DataFrame, QueryError> {
        self.top_groups(per_group, false)
    }

    fn top_groups(
        &self,
        per_group: DataFrame,
        with_exemplars: bool,
    ) -> Result<DataFrame, QueryError> {
        let mut selected = self.keys();
        selected.extend(self.finals());
        if with_exemplars {
            selected.push(column(EXEMPLARS));
        }
        let mut frame = per_group.select(selected)?;
        let havings = self.spec.havings.iter().map(|having| {
            let target = column(&value(having.calculation));
            let operand = lit(having.value);
            match having.op {
                Comparison::Eq => target.eq(operand),
                Comparison::NotEq => target.not_eq(operand),
                Comparison::Gt => target.gt(operand),
                Comparison::GtEq => target.gt_eq(operand),
                Comparison::Lt => target.lt(operand),
                Comparison::LtEq => target.lt_eq(operand),
            }
        });
        if let Some(predicate) = havings.reduce(Expr::and) {
            frame = frame.filter(predicate)?;
        }
        let mut orders: Vec<SortExpr> = self
            .spec
            .orders
            .iter()
            .map(|order| {
                let target = match order.key {
                    OrderKey::Calculation(index) => column(&value(index)),
                    OrderKey::Breakdown(index) => column(&key(index)),
                };
                // Groups without a value sort last either way.
                target.sort(!order.descending, false)
            })
            .collect();
        // Ties break on the keys, so the same data always gives the same groups.
        orders.extend(self.keys().into_iter().map(|key| key.sort(true, false)));
        if !orders.is_empty() {
            frame = frame.sort(orders)?;
        }
        Ok(frame.limit(0, Some(self.spec.limit))?)
    }

    /// The base rows of `groups` only (all rows without breakdowns).
    fn top_rows(
        &self,
        context: &SessionContext,
        groups: &[RecordBatch],
    ) -> Result<DataFrame, QueryError> {
        let rows = self.base.clone();
        if self.spec.breakdowns.is_empty() {
            return Ok(rows);
        }
        if let Some(predicate) = self.top_keys_predicate(groups)? {
            return Ok(rows.filter(predicate)?);
        }
        let wanted: Vec<String> = (0..self.spec.breakdowns.len())
            .map(|index| format!("__quarry_top{index}"))
            .collect();
        let top = context.read_batches(groups.iter().cloned())?.select(
            self.keys()
                .into_iter()
                .zip(&wanted)
                .map(|(key, name)| key.alias(name.as_str()))
                .collect::<Vec<_>>(),
        )?;
        let left: Vec<String> = (0..wanted.len()).map(key).collect();
        let (state, plan) = rows.into_parts();
        // A null key is a group of its own: nulls must match nulls.
        let joined = LogicalPlanBuilder::from(plan)
            .join_detailed(
                top.logical_plan().clone(),
                JoinType::LeftSemi,
                (
                    left.iter()
                        .map(datafusion::common::Column::new_unqualified)
                        .collect::<Vec<_>>(),
                    wanted
                        .iter()
                        .map(datafusion::common::Column::new_unqualified)
                        .collect::<Vec<_>>(),
                ),
                None,
                NullEquality::NullEqualsNull,
            )?
            .build()?;
        Ok(DataFrame::new(state, joined))
    }

    /// The keys of `groups` as a filter on the base rows, when they are few: a
    /// filter the scan evaluates on the key columns before it decodes the rest,
    /// and prunes row groups with (a semi-join reads every row of every column
    /// it needs first). A null key matches null keys (`IS NULL`).
    fn top_keys_predicate(&self, groups: &[RecordBatch]) -> Result<Option<Expr>, QueryError> {
        let count: usize = groups.iter().map(RecordBatch::num_rows).sum();
        if count == 0 || count > TOP_KEYS_FILTERED {
            return Ok(None);
        }
        let keys = self.spec.breakdowns.len();
        let mut alternatives = Vec::with_capacity(count);
        for batch in groups {
            for row in 0..batch.num_rows() {
                let mut conditions = Vec::with_capacity(keys);
                for index in 0..keys {
                    let value = ScalarValue::try_from_array(batch.column(index), row)?;
                    let key = column(&key(index));
                    conditions.push(if value.is_null() {
                        key.is_null()
                    } else {
                        key.eq(Expr::Literal(value, None))
                    });
                }
                alternatives.extend(conditions.into_iter().reduce(Expr::and));
            }
        }
        Ok(alternatives.into_iter().reduce(Expr::or))
    }

    /// Spans in flight per time bucket (and group, with `by_group`), weighted:
    /// each span counts in every bucket from its start's to its end's (clipped to
    /// the range). Columns: [`TIME`], the keys (with `by_group`), [`CONCURRENCY`].
    pub(crate) fn concurrency(
        &self,
        context: &SessionContext,
        groups: &[RecordBatch],
        by_group: bool,
    ) -> Result<DataFrame, QueryError> {
        let step = seconds_to_ns(self.spec.granularity_secs);
        let last = least(vec![column(SPAN_END), lit(self.spec.end_ns - 1)]);
        let last_bucket = (last / lit(step)) * lit(step);
        let buckets = range(column(TIME), last_bucket + lit(step), lit(step));
        let keys = if by_group { self.keys() } else { Vec::new() };
        let mut selected = keys.clone();
        selected.push(column(WEIGHT));
        selected.push(buckets.alias(SPAN_BUCKETS));
        let rows = if by_group {
            self.top_rows(context, groups)?
        } else {
            self.base.clone()
        };
        let mut group_by = vec![column(SPAN_BUCKETS).alias(TIME)];
        group_by.extend(keys);
        Ok(rows
            .select(selected)?
            .unnest_columns(&[SPAN_BUCKETS])?
            .aggregate(group_by, vec![sum(column(WEIGHT)).alias(CONCURRENCY)])?)
    }

    /// One point per time bucket of each top group, sorted by time; `per_bucket`
    /// holds the time bucket, the keys and the partials of the top groups.
    pub(crate) fn series(&self, per_bucket: DataFrame) -> Result<DataFrame, QueryError> {
        let mut selected = self.pass_keys();
        selected.extend(self.finals());
        let mut order = vec![column(TIME).sort(true, false)];
        order.extend(self.keys().into_iter().map(|key| key.sort(true, false)));
        Ok(per_bucket.select(selected)?.sort(order)?)
    }

    /// The calculations over every matching row, and each heatmap column's
    /// range; `overall` holds the pass aggregates of all rows.
    pub(crate) fn totals(&self, overall: DataFrame) -> Result<DataFrame, QueryError> {
        let mut finals = self.finals();
        for index in &self.heatmaps {
            finals.push(column(&heatmap_min(*index)));
            finals.push(column(&heatmap_max(*index)));
        }
        Ok(overall.select(finals)?)
    }

    /// Whether answers carry exemplars (raw plans over data with timestamps).
    pub(crate) fn has_exemplars(&self) -> bool {
        self.exemplar_of.is_some()
    }

    /// A group exemplar's value over the base columns.
    pub(super) fn exemplar_value(&self) -> Expr {
        exemplar_value_expr(self.exemplar_value)
    }

    /// The cells of HEATMAP calculation `index` over `scheme`: time bucket, value
    /// bucket, weighted count, sorted.
    pub(crate) fn heatmap_cells(
        &self,
        index: usize,
        scheme: &sketches::HeatmapScheme,
    ) -> Result<DataFrame, QueryError> {
        let value = column(&input(index));
        let bucket = sketches::heatmap_bucket(value.clone(), scheme);
        let mut aggregates = vec![sum(column(WEIGHT)).alias(CELL_COUNT)];
        if let Some(exemplars) = self.cell_exemplars(index) {
            aggregates.push(exemplars.alias(CELL_EXEMPLARS));
        }
        Ok(self
            .base
            .clone()
            .filter(value.is_not_null())?
            .aggregate(vec![column(TIME), bucket.alias(BUCKET)], aggregates)?
            .sort(vec![
                column(TIME).sort(true, false),
                column(BUCKET).sort(true, false),
            ])?)
    }
}
