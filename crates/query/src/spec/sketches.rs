//! Where percentiles, heatmap buckets and exemplars come from.
//!
//! Kept in one place so the sketch-based functions (`quarry_quantile`,
//! `quarry_heatmap_bucket`, `quarry_exemplars`) replace the placeholders here
//! without touching the compiler. Until then: percentiles use DataFusion's
//! weighted t-digest, heatmap buckets are 50 equal-width (or equal-ratio, for
//! data spanning two decades) buckets over `[min, max]`, and there are no
//! exemplars.

use arrow::datatypes::DataType;
use datafusion::functions::math::expr_fn::{floor, ln};
use datafusion::functions_aggregate::expr_fn::approx_percentile_cont_with_weight;
use datafusion::logical_expr::{Expr, lit, try_cast, when};

use crate::bubbleup::columns::{Comparison, Scale, histogram_edges};

/// Buckets of a placeholder heatmap.
const HEATMAP_BUCKETS: usize = 50;

/// The weighted `quantile` (0..=1) of `value` (Float64), each row counting
/// `weight` (Float64) times.
pub fn percentile(value: Expr, weight: Expr, quantile: f64) -> Expr {
    approx_percentile_cont_with_weight(value.sort(true, false), weight, lit(quantile), None)
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

/// Up to three events of the group (`None` until `quarry_exemplars` exists).
pub fn exemplars(
    _value: Expr,
    _timestamp: Expr,
    _trace_id: Expr,
    _span_id: Expr,
    _dataset: Expr,
) -> Option<Expr> {
    None
}
