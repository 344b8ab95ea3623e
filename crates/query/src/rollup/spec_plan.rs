//! The hook between the query-spec compiler and rollups: a checked spec answered
//! from a rollup becomes the same kind of [`Plan`] the compiler builds from raw
//! rows, so groups, series, totals, orders, havings and limits run unchanged.
//!
//! The compiler calls [`rollup_plan`] first and compiles the raw plan only when it
//! returns `None` (no rollup fits, or the spec asked for `"source": "raw"`).

use datafusion::prelude::SessionContext;
use quarry_schema::TIMESTAMP;

use super::columns::COUNT_COLUMN;
use crate::spec::plan::{CalcPlan, Plan, TIME, key, value};
use crate::spec::{Columns, ValidSpec, column, filters_predicate};
use crate::time_bucket::bucket_start_ns;
use crate::{QueryEngine, QueryError};

/// The spec's `source` value that forces raw rows.
pub const RAW_SOURCE: &str = "raw";
/// Prefix of the measure columns kept in the plan's base rows.
const MEASURE_PREFIX: &str = "meta.rollup.";

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
    let Some(relation) = engine.rollup_relation(context, env, dataset, spec).await? else {
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
