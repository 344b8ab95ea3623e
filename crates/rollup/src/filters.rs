//! A rollup definition's filters, in the query spec's syntax and compiled by the
//! query spec's own filter compiler, so a rollup filters rows exactly as a query
//! with the same filter would.

use datafusion::common::DFSchema;
use datafusion::logical_expr::Expr;
use quarry_segment_store::RollupFilter;

use quarry_engine::QueryError;
use quarry_query::spec::{Columns, Filter, ValidFilter, filters_predicate, validate_filters};

/// The checked form of `filters` (errors name `filters[i]...`).
pub fn valid_filters(filters: &[RollupFilter]) -> Result<Vec<ValidFilter>, QueryError> {
    let as_spec: Vec<Filter> = filters
        .iter()
        .map(|filter| Filter {
            column: filter.column.clone(),
            op: filter.op.clone(),
            value: filter.value.clone(),
        })
        .collect();
    let (valid, _) = validate_filters(&as_spec, None, "filters", "filter_combination")?;
    Ok(valid)
}

/// Whether two checked filters select the same rows (same column, op and operand).
pub fn same_filter(a: &ValidFilter, b: &ValidFilter) -> bool {
    a.column == b.column && a.op == b.op && a.value == b.value
}

/// The conjunction of `filters` over rows of `schema`, if any.
pub fn conjunction(
    filters: &[RollupFilter],
    schema: &DFSchema,
) -> Result<Option<Expr>, QueryError> {
    let valid = valid_filters(filters)?;
    let columns = Columns::new(schema, &[])?;
    Ok(filters_predicate(&valid, false, &columns)?)
}
