//! The hook between the query-spec compiler and rollups: a checked spec answered
//! from a rollup becomes the same kind of [`Plan`] the compiler builds from raw
//! rows, so groups, series, totals, orders, havings and limits run unchanged.
//!
//! The spec runner (`quarry_query::spec::run_query`) asks the [`PlanRewrite`] it
//! is given first, and compiles the raw plan only when that returns `None`. The
//! server passes [`RollupRewrite`], which calls [`rollup_plan`] (no rollup fits,
//! or the spec asked for `"source": "raw"`: `None`).

use async_trait::async_trait;
use datafusion::prelude::SessionContext;
use quarry_query::spec::PlanRewrite;
use quarry_schema::TIMESTAMP;

use super::columns::COUNT_COLUMN;
use super::plan::rollup_relation;
use quarry_engine::time_bucket::bucket_start_ns;
use quarry_engine::{QueryEngine, QueryError};
use quarry_query::spec::{
    CalcPlan, Columns, Plan, TIME, ValidSpec, column, filters_predicate, key, value,
};

/// The spec's `source` value that forces raw rows.
pub const RAW_SOURCE: &str = "raw";
/// Prefix of the measure columns kept in the plan's base rows.
const MEASURE_PREFIX: &str = quarry_schema::fields::ROLLUP_PREFIX;

/// Specs answered from rollups when one fits: the rewrite the server gives the
/// spec runner.
#[derive(Debug, Clone, Copy, Default)]
pub struct RollupRewrite;

#[async_trait]
impl PlanRewrite for RollupRewrite {
    async fn rewrite(
        &self,
        engine: &QueryEngine,
        context: &SessionContext,
        env: &str,
        dataset: &str,
        spec: &ValidSpec,
        requested_source: Option<&str>,
    ) -> Result<Option<(Plan, String)>, QueryError> {
        rollup_plan(engine, context, env, dataset, spec, requested_source).await
    }
}

/// The plan of `spec` over a rollup of `dataset` and its `source` name
/// (`rollup:<name>`), or `None` when raw rows must answer.
pub async fn rollup_plan(
    engine: &QueryEngine,
    context: &SessionContext,
    env: &str,
    dataset: &str,
    spec: &ValidSpec,
    requested_source: Option<&str>,
) -> Result<Option<(Plan, String)>, QueryError> {
    if requested_source.is_some_and(|source| source.eq_ignore_ascii_case(RAW_SOURCE)) {
        return Ok(None);
    }
    let Some(relation) = rollup_relation(engine, context, env, dataset, spec).await? else {
        return Ok(None);
    };
    let schema = relation.frame.schema().clone();
    let columns = Columns::new(&schema, &[])?;
    let remaining: Vec<_> = spec
        .filters
        .iter()
        .enumerate()
        .filter(|(index, _)| !relation.applied_filters.contains(index))
        .map(|(_, filter)| filter.clone())
        .collect();
    let mut base = relation.frame;
    if let Some(predicate) = filters_predicate(&remaining, spec.combine_or, &columns)? {
        base = base.filter(predicate)?;
    }
    let mut projection = vec![
        bucket_start_ns(spec.granularity_secs).alias(TIME),
        column(TIMESTAMP),
    ];
    for (index, name) in spec.breakdowns.iter().enumerate() {
        projection.push(column(name).alias(key(index)));
    }
    projection.extend(
        schema
            .fields()
            .iter()
            .filter(|field| field.name().starts_with(MEASURE_PREFIX))
            .map(|field| column(field.name())),
    );
    debug_assert!(schema.has_column_with_unqualified_name(COUNT_COLUMN));
    let base = base.select(projection)?;
    let calcs = relation
        .calculations
        .into_iter()
        .enumerate()
        .map(|(index, calculation)| {
            Some(CalcPlan {
                partials: calculation.partials,
                final_expr: calculation.final_expr.alias(value(index)),
            })
        })
        .collect();
    Ok(Some((
        Plan::aggregates_only(spec.clone(), base, calcs),
        relation.source,
    )))
}
