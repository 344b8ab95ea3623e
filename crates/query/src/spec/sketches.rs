//! Where percentiles, heatmap buckets and exemplars come from.
//!
//! Kept in one place so the compiler does not depend on how they are computed.
//! Percentiles come from `quarry_quantile` (a weighted relative-error sketch,
//! within 1%, see docs/functions.md) and exemplars from `quarry_exemplars`.
//! Heatmap buckets are unions of `quarry_value_bin`'s log-linear bins (32 per
//! octave), fixed before any row is read: the one pass counts rows per fine
//! bin, and the displayed buckets (at most 50 over `[min, max]`) are chosen
//! after it, exactly.

use datafusion::common::ScalarValue;
use datafusion::functions::expr_fn::{greatest, least};
use datafusion::logical_expr::{Expr, lit, when};

use quarry_functions::{
    MAX_COARSEN, bin_edges, exemplars_expr, quantile_expr, value_bin, value_bin_expr,
};

/// Most buckets a heatmap shows.
const HEATMAP_BUCKETS: i64 = 50;
/// Largest / smallest value from which a heatmap is drawn on a log scale.
const LOG_SCALE_MIN_RATIO: f64 = 100.0;

/// The weighted `quantile` (0..=1) of `value` (Float64), each row counting
/// `weight` (Float64) times.
pub fn percentile(value: Expr, weight: Expr, quantile: f64) -> Expr {
    quantile_expr(value, weight, quantile)
}

/// The value buckets of one heatmap: fine bins merged `coarsen` times, from
/// bin `first` on.
#[derive(Debug, Clone, PartialEq)]
pub struct HeatmapScheme {
    /// `linear` or `log`: how the UI draws the value axis by default.
    pub scale: &'static str,
    /// `(lower, upper)` per bucket, ascending; `lower <= value < upper`.
    pub buckets: Vec<(f64, f64)>,
    coarsen: u32,
    first: i64,
}

/// Buckets for values in `[min, max]`: the finest merge of fine bins that
/// covers the range in at most 50 buckets. `None` for a non-finite or
/// inverted range.
pub fn heatmap_scheme(min: f64, max: f64) -> Option<HeatmapScheme> {
    if !(min.is_finite() && max.is_finite() && min <= max) {
        return None;
    }
    let coarsen = (0..=MAX_COARSEN).find(|coarsen| {
        match (value_bin(min, *coarsen), value_bin(max, *coarsen)) {
            (Some(low), Some(high)) => high - low < HEATMAP_BUCKETS,
            _ => false,
        }
    })?;
    let first = value_bin(min, coarsen)?;
    let last = value_bin(max, coarsen)?;
    let log = min > 0.0 && max >= min * LOG_SCALE_MIN_RATIO;
    Some(HeatmapScheme {
        scale: if log { "log" } else { "linear" },
        buckets: (first..=last)
            .map(|ordinal| bin_edges(ordinal, coarsen))
            .collect(),
        coarsen,
        first,
    })
}

impl HeatmapScheme {
    /// The bucket holding fine bin `fine` (clamped to the buckets: a row that
    /// arrived after the range was measured counts in the first or last).
    pub fn bucket_of_fine_bin(&self, fine: i64) -> i64 {
        ((fine >> self.coarsen) - self.first).clamp(0, self.last_bucket())
    }

    fn last_bucket(&self) -> i64 {
        self.buckets.len().saturating_sub(1) as i64
    }
}

/// The fine bin (Int64) of `value`: what the one pass groups a heatmap by.
pub fn heatmap_fine_bin(value: Expr) -> Expr {
    value_bin_expr(value, 0)
}

/// The bucket index (Int64) of `value` (Float64) in `scheme`, clamped to the
/// buckets; null for a null value.
pub fn heatmap_bucket(value: Expr, scheme: &HeatmapScheme) -> Expr {
    let bin = value_bin_expr(value, scheme.coarsen) - lit(scheme.first);
    let clamped = greatest(vec![
        lit(0i64),
        least(vec![bin.clone(), lit(scheme.last_bucket())]),
    ]);
    when(bin.is_null(), lit(ScalarValue::Int64(None)))
        .otherwise(clamped)
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

#[cfg(test)]
mod tests {
    use super::heatmap_scheme;

    /// The examples of docs/functions.md: status codes 200..503 in 45 buckets
    /// (4 wide below 256, 8 above), latencies 0.5 ms..2 s in 48 (4 per octave).
    #[test]
    fn schemes_are_the_finest_unions_of_bins_within_fifty_buckets() {
        let status = heatmap_scheme(200.0, 503.0).unwrap_or_else(|| panic!("no scheme"));
        assert_eq!(status.scale, "linear");
        assert_eq!(status.buckets.len(), 45);
        assert_eq!(status.buckets[0], (200.0, 204.0));
        assert_eq!(status.buckets[44], (496.0, 504.0));
        let latency = heatmap_scheme(0.5, 2000.0).unwrap_or_else(|| panic!("no scheme"));
        assert_eq!(latency.scale, "log");
        assert_eq!(latency.buckets.len(), 48);
        assert_eq!(latency.buckets[0], (0.5, 0.625));
        for scheme in [&status, &latency] {
            assert!(scheme.buckets.windows(2).all(|pair| pair[0].1 == pair[1].0));
        }
        let one = heatmap_scheme(7.0, 7.0).unwrap_or_else(|| panic!("no scheme"));
        assert_eq!(one.buckets.len(), 1);
        assert!(one.buckets[0].0 <= 7.0 && 7.0 < one.buckets[0].1);
        assert_eq!(heatmap_scheme(f64::NAN, 1.0), None);
        assert_eq!(heatmap_scheme(2.0, 1.0), None);
        let wide = heatmap_scheme(-1e300, 1e300).unwrap_or_else(|| panic!("no scheme"));
        assert!(wide.buckets.len() <= 50);
        // A value past the measured range counts in the first or last bucket.
        assert_eq!(status.bucket_of_fine_bin(i64::MIN / 2), 0);
        assert_eq!(status.bucket_of_fine_bin(i64::MAX / 2), 44);
    }
}
