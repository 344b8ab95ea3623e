//! Where percentiles, heatmap buckets and exemplars come from.
//!
//! Kept in one place so the sketch-based functions (`quarry_quantile`,
//! `quarry_heatmap_bucket`, `quarry_exemplars`) replace the placeholders here
//! without touching the compiler. Until then percentiles use DataFusion's
//! weighted t-digest (`approx_percentile_cont_with_weight`).

use datafusion::functions_aggregate::expr_fn::approx_percentile_cont_with_weight;
use datafusion::logical_expr::{Expr, lit};

/// The weighted `quantile` (0..=1) of `value` (Float64), each row counting
/// `weight` (Float64) times.
pub fn percentile(value: Expr, weight: Expr, quantile: f64) -> Expr {
    approx_percentile_cont_with_weight(value.sort(true, false), weight, lit(quantile), None)
}
