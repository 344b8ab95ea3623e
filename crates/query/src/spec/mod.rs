//! Honeycomb query specs: parsed, checked, and compiled to DataFusion plans.
//!
//! ```text
//!  JSON ──model──► QuerySpec ──validate──► ValidSpec ──compile──► DataFrames
//!        (serde, field paths)  (ops, time range,       (filters, breakdowns,
//!                               orders, havings)         aggregates, series)
//! ```
//!
//! Every error is a [`SpecError`] naming the bad field by its JSON path
//! (`calculations[1].column`). The user documentation is `docs/query.md`.

mod columns;
mod drilldown;
mod error;
mod exemplar_ids;
mod filters;
mod group_probe;
mod json;
mod model;
mod ops;
mod plan;
mod result;
mod rewrite;
mod run;
mod sketches;
mod states;
mod validate;

pub use columns::{Columns, column};
pub use drilldown::{
    Cell, DEFAULT_EVENTS_PER_PAGE, DrillDownRequest, Event, EventsPage, MAX_EVENTS_PER_PAGE,
    drill_down,
};
pub use error::SpecError;
pub use filters::{filter_predicate, filters_predicate, time_literal, time_predicate};
pub use json::{json_values, rfc3339};
pub use model::{CalculatedField, Calculation, Filter, Having, Order, QuerySpec, TimeValue};
pub use ops::{CalcOp, Comparison, FilterOp, PERCENTILES, Percentile};
/// Public for plan rewrites such as rollups: what a [`PlanRewrite`] builds.
pub use plan::{CalcPlan, Plan, TIME, key, value};
pub use result::{
    BucketTotal, CalculationInfo, Exemplar, Group, Heatmap, HeatmapBucket, HeatmapCell,
    QueryResult, SeriesPoint, Stats,
};
pub use rewrite::PlanRewrite;
pub use run::run_query;
pub use validate::{
    DEFAULT_LIMIT, DEFAULT_TIME_RANGE_SECS, MAX_LIMIT, MAX_LIST_LEN, MAX_TIME_BUCKETS,
    NANOS_PER_SECOND, Operand, OrderKey, ValidCalculation, ValidFilter, ValidHaving, ValidOrder,
    ValidSpec, calculation_name, time_ns, validate_filters,
};

#[cfg(test)]
mod snapshot_tests;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod typescript_tests;
