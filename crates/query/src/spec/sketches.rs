//! Where percentiles, heatmap buckets and exemplars come from.
//!
//! Kept in one place so the compiler does not depend on how they are computed.
//! Percentiles come from `quarry_quantile` (a weighted relative-error sketch,
//! within 1%, see docs/functions.md) and exemplars from `quarry_exemplars`.
//! Heatmap buckets are still 50 equal-width (or equal-ratio, for data spanning
//! two decades) buckets over `[min, max]`, BubbleUp's histogram rule.

use arrow::datatypes::DataType;
use datafusion::functions::math::expr_fn::{floor, ln};
use datafusion::logical_expr::{Expr, lit, try_cast, when};

use crate::bubbleup::columns::{Comparison, Scale, histogram_edges};
use crate::functions::{exemplars_expr, quantile_expr};

/// Buckets of a placeholder heatmap.
const HEATMAP_BUCKETS: usize = 50;

/// The weighted `quantile` (0..=1) of `value` (Float64), each row counting
/// `weight` (Float64) times.
pub fn percentile(value: Expr, weight: Expr, quantile: f64) -> Expr {
    quantile_expr(value, weight, quantile)
}

/// The value buckets of one heatmap.
#[derive(Debug, Clone, PartialEq)]
pub struct HeatmapScheme {
    /// `linear` or `log`.
    pub scale: &'static str,
    /// `(lower, upper)` per bucket, ascending; `[lower, upper)`, the last one
    /// includes its upper edge.
    pub buckets: Vec<(f64, f64)>,
    edges: Vec<f64>,
    log: bool,
}

/// Buckets for values in `[min, max]`; `integers` when the column holds whole
/// numbers. `None` for a non-finite or inverted range.
pub fn heatmap_scheme(min: f64, max: f64, _integers: bool) -> Option<HeatmapScheme> {
    if !(min.is_finite() && max.is_finite() && min <= max) {
        return None;
    }
    let Comparison::Numeric { edges, scale } = histogram_edges(min, max, HEATMAP_BUCKETS) else {
        return None;
    };
    let log = scale == Scale::Log;
    Some(HeatmapScheme {
        scale: if log { "log" } else { "linear" },
        buckets: edges.windows(2).map(|pair| (pair[0], pair[1])).collect(),
        edges,
        log,
    })
}

/// The bucket index (Int64) of `value` (Float64) in `scheme`, clamped to the
/// buckets; null for a null value.
pub fn heatmap_bucket(value: Expr, scheme: &HeatmapScheme) -> Expr {
    let count = scheme.buckets.len().max(1) as i64;
    let min = scheme.edges.first().copied().unwrap_or(0.0);
    let max = scheme.edges.last().copied().unwrap_or(0.0);
    let position = if max <= min {
        lit(0.0)
    } else if scheme.log {
        (ln(value.clone()) - lit(min.ln())) / lit((max / min).ln() / count as f64)
    } else {
        (value.clone() - lit(min)) / lit((max - min) / count as f64)
    };
    let index = try_cast(floor(position), DataType::Int64);
    when(
        value.is_null(),
        lit(datafusion::common::ScalarValue::Int64(None)),
    )
    .when(index.clone().is_null(), lit(0i64))
    .when(index.clone().lt(lit(0i64)), lit(0i64))
    .when(index.clone().gt(lit(count - 1)), lit(count - 1))
    .otherwise(index)
    .unwrap_or_else(|_| lit(0i64))
}

/// Up to three events of the group: the slowest, then two picked by span-id hash.
pub fn exemplars(
    value: Expr,
    timestamp: Expr,
    trace_id: Expr,
    span_id: Expr,
    dataset: Expr,
) -> Option<Expr> {
    Some(exemplars_expr(value, timestamp, trace_id, span_id, dataset))
}
