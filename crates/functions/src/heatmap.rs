//! The heatmap's value buckets: linear or logarithmic, chosen from the data's
//! range, with "nice" boundaries a person can read.
//!
//! Rule (documented for users in docs/functions.md):
//!
//! - **Log** when the smallest value is positive and the largest is at least
//!   [`LOG_SCALE_MIN_RATIO`] (100, two decades) times it — latencies, sizes. Bucket
//!   boundaries come from a per-decade series: 10 per decade (1, 1.2, 1.5, 2, 2.5,
//!   3, 4, 5, 6, 8), else 5 (1, 1.5, 2.5, 4, 6), 3 (1, 2, 5), 2 (1, 3) or 1 (powers
//!   of ten, then every 2nd, 3rd... power): the finest series that covers
//!   `[min, max]` in at most [`MAX_BUCKETS`] buckets.
//! - **Linear** otherwise: equal widths of `1, 2, 2.5 or 5 × 10^k` (integer
//!   columns: whole numbers only, at least 1), the smallest that covers
//!   `[min, max]` in at most [`MAX_BUCKETS`] buckets; the first boundary is a
//!   multiple of the width.
//!
//! Every bucket is `[lower, upper)`; the last one contains `max`. A value outside
//! the range (a row that arrived after the range was measured) counts in the
//! first or last bucket.

use serde::{Deserialize, Serialize};

/// Most buckets a heatmap gets.
pub const MAX_BUCKETS: usize = 50;
/// Largest / smallest value from which the scale is logarithmic (two decades).
pub const LOG_SCALE_MIN_RATIO: f64 = 100.0;
/// Log scale only between these magnitudes, where every boundary is a normal f64.
const LOG_SCALE_LIMITS: (f64, f64) = (1e-300, 1e300);
/// Linear widths are `mantissa / 10 × 10^exponent`.
const LINEAR_MANTISSAS: [i64; 4] = [10, 20, 25, 50];
/// Log series per decade, as boundary × 10 within `[1, 10)`, finest first.
const LOG_SERIES: [&[i64]; 5] = [
    &[10, 12, 15, 20, 25, 30, 40, 50, 60, 80],
    &[10, 15, 25, 40, 60],
    &[10, 20, 50],
    &[10, 30],
    &[10],
];
/// Give up on absurd inputs rather than loop (never reached by finite data).
const MAX_SEARCH_STEPS: usize = 4_000;
/// Powers of ten that are exact in f64.
const EXACT_POWERS_OF_TEN: [f64; 23] = [
    1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16,
    1e17, 1e18, 1e19, 1e20, 1e21, 1e22,
];

/// How the buckets are spaced.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HeatmapScale {
    /// Equal widths.
    Linear,
    /// Equal ratios (approximately: nice boundaries).
    Log,
}

/// The value buckets of one heatmap: enough to compute every boundary and a
/// value's bucket. Passed to `quarry_heatmap_bucket` as literals
/// (see [`HeatmapScheme::bucket_expr`](crate::heatmap_bucket_expr)).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "scale", rename_all = "snake_case")]
pub enum HeatmapScheme {
    /// Bucket `i` is `[(first + i) × w, (first + i + 1) × w)`, `w = mantissa/10 × 10^exponent`.
    Linear {
        /// Lower boundary of bucket 0, in widths.
        first: i64,
        /// Width mantissa × 10: 10, 20, 25 or 50.
        mantissa: i64,
        /// Width exponent.
        exponent: i64,
        /// Number of buckets.
        count: i64,
    },
    /// Bucket `i`'s lower boundary is point `first + i` of the series with
    /// `per_decade` points per decade (`decades` decades per point when it is 1).
    Log {
        /// Series position of bucket 0's lower boundary.
        first: i64,
        /// Points per decade: 10, 5, 3, 2 or 1.
        per_decade: i64,
        /// Decades per point (1 unless `per_decade` is 1 and the range is huge).
        decades: i64,
        /// Number of buckets.
        count: i64,
    },
}

/// One bucket, as in the query API's `heatmaps[].buckets`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct HeatmapBucket {
    /// Bucket index, 0-based, ascending with the values.
    pub index: i32,
    /// Inclusive lower boundary.
    pub lower: f64,
    /// Exclusive upper boundary.
    pub upper: f64,
}

impl HeatmapScheme {
    /// The buckets for data in `[min, max]`; `integers` when the column holds whole
    /// numbers (widths stay whole). `None` for a non-finite or inverted range.
    pub fn choose(min: f64, max: f64, integers: bool) -> Option<HeatmapScheme> {
        if !(min.is_finite() && max.is_finite() && min <= max) {
            return None;
        }
        let log = min > 0.0
            && max / min >= LOG_SCALE_MIN_RATIO
            && min >= LOG_SCALE_LIMITS.0
            && max <= LOG_SCALE_LIMITS.1;
        if log {
            choose_log(min, max)
        } else {
            choose_linear(min, max, integers)
        }
    }

    /// Linear or log.
    pub fn scale(&self) -> HeatmapScale {
        match self {
            HeatmapScheme::Linear { .. } => HeatmapScale::Linear,
            HeatmapScheme::Log { .. } => HeatmapScale::Log,
        }
    }

    /// Number of buckets.
    pub fn len(&self) -> usize {
        match self {
            HeatmapScheme::Linear { count, .. } | HeatmapScheme::Log { count, .. } => {
                (*count).max(0) as usize
            }
        }
    }

    /// Whether there are no buckets (never, for a chosen scheme).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The `len() + 1` boundaries, ascending.
    pub fn edges(&self) -> Vec<f64> {
        (0..=self.len() as i64).map(|i| self.edge(i)).collect()
    }

    /// Every bucket with its boundaries.
    pub fn buckets(&self) -> Vec<HeatmapBucket> {
        self.edges()
            .windows(2)
            .enumerate()
            .map(|(index, pair)| HeatmapBucket {
                index: index as i32,
                lower: pair[0],
                upper: pair[1],
            })
            .collect()
    }

    /// The bucket of `value` (clamped into the range), `None` for NaN.
    pub fn bucket_of(&self, value: f64) -> Option<i32> {
        bucket_in(&self.edges(), value)
    }

    /// Boundary `i` (0 = lower of bucket 0).
    fn edge(&self, i: i64) -> f64 {
        match *self {
            HeatmapScheme::Linear {
                first,
                mantissa,
                exponent,
                ..
            } => linear_edge(first + i, mantissa, exponent),
            HeatmapScheme::Log {
                first,
                per_decade,
                decades,
                ..
            } => log_edge(first + i, per_decade, decades),
        }
    }
}

/// The bucket of `value` among `edges` (clamped), `None` for NaN.
pub(crate) fn bucket_in(edges: &[f64], value: f64) -> Option<i32> {
    if value.is_nan() || edges.len() < 2 {
        return None;
    }
    let above = edges.partition_point(|edge| *edge <= value);
    let last = edges.len() - 2;
    Some(above.saturating_sub(1).min(last) as i32)
}

/// `digits × 10^(exponent − 1)`, rounded once (so 3 × 0.1 reads 0.3).
fn decimal(digits: i128, exponent: i64) -> f64 {
    let digits = digits as f64;
    let exponent = exponent - 1;
    let power = |k: i64| {
        usize::try_from(k)
            .ok()
            .and_then(|k| EXACT_POWERS_OF_TEN.get(k).copied())
            .unwrap_or_else(|| 10f64.powi(k.clamp(-400, 400) as i32))
    };
    if exponent >= 0 {
        digits * power(exponent)
    } else {
        digits / power(-exponent)
    }
}

fn linear_edge(position: i64, mantissa: i64, exponent: i64) -> f64 {
    decimal(i128::from(position) * i128::from(mantissa), exponent)
}

fn log_edge(position: i64, per_decade: i64, decades: i64) -> f64 {
    let series = series(per_decade);
    let decade = position.div_euclid(per_decade);
    let point = position.rem_euclid(per_decade) as usize;
    let digits = series.get(point).copied().unwrap_or(10);
    decimal(i128::from(digits), decade * decades)
}

fn series(per_decade: i64) -> &'static [i64] {
    LOG_SERIES
        .iter()
        .find(|series| series.len() as i64 == per_decade)
        .copied()
        .unwrap_or(&[10])
}

/// The position `p` with `edge(p) <= value < edge(p + 1)`, from a guess.
fn position_of(value: f64, guess: i64, edge: impl Fn(i64) -> f64) -> i64 {
    let mut position = guess;
    for _ in 0..MAX_SEARCH_STEPS {
        if edge(position) > value {
            position -= 1;
        } else if edge(position + 1) <= value {
            position += 1;
        } else {
            break;
        }
    }
    position
}

fn choose_linear(min: f64, max: f64, integers: bool) -> Option<HeatmapScheme> {
    // Start well below the width that would fit and walk up the nice widths.
    let span = max / MAX_BUCKETS as f64 - min / MAX_BUCKETS as f64;
    let scale = if span > 0.0 {
        span
    } else {
        min.abs().max(1.0) / 10.0
    };
    let mut exponent = scale.log10().floor() as i64 - 1;
    if integers {
        exponent = exponent.max(0);
    }
    for _ in 0..MAX_SEARCH_STEPS {
        for mantissa in LINEAR_MANTISSAS {
            if integers && exponent == 0 && mantissa == 25 {
                // 2.5 is not a whole width.
                continue;
            }
            let width = decimal(i128::from(mantissa), exponent);
            let guess = |value: f64| (value / width).floor().clamp(-9e17, 9e17) as i64;
            let edge = |p: i64| linear_edge(p, mantissa, exponent);
            let first = position_of(min, guess(min), edge);
            let last = position_of(max, guess(max), edge);
            let count = last - first + 1;
            if (count as usize) <= MAX_BUCKETS && width.is_finite() {
                return Some(HeatmapScheme::Linear {
                    first,
                    mantissa,
                    exponent,
                    count,
                });
            }
        }
        exponent += 1;
    }
    None
}

fn choose_log(min: f64, max: f64) -> Option<HeatmapScheme> {
    let candidates = LOG_SERIES
        .iter()
        .map(|series| (series.len() as i64, 1))
        .chain((2..MAX_SEARCH_STEPS as i64).map(|decades| (1, decades)));
    for (per_decade, decades) in candidates {
        let guess =
            |value: f64| (value.log10() * per_decade as f64 / decades as f64).floor() as i64;
        let edge = |p: i64| log_edge(p, per_decade, decades);
        let first = position_of(min, guess(min), edge);
        let last = position_of(max, guess(max), edge);
        let count = last - first + 1;
        if (count as usize) <= MAX_BUCKETS {
            return Some(HeatmapScheme::Log {
                first,
                per_decade,
                decades,
                count,
            });
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn covers(scheme: &HeatmapScheme, min: f64, max: f64) {
        let edges = scheme.edges();
        assert!(edges[0] <= min, "{scheme:?}: {} > {min}", edges[0]);
        assert!(
            max < edges[edges.len() - 1],
            "{scheme:?}: max {max} not inside"
        );
        assert!(scheme.len() <= MAX_BUCKETS && !scheme.is_empty());
        assert!(edges.windows(2).all(|pair| pair[0] < pair[1]), "{edges:?}");
        // The extremes fall in the first and last buckets, not outside.
        assert_eq!(scheme.bucket_of(min), Some(0));
        assert_eq!(scheme.bucket_of(max), Some(scheme.len() as i32 - 1));
    }

    #[test]
    fn latencies_get_log_buckets_with_nice_boundaries() {
        let scheme = HeatmapScheme::choose(0.5, 2_000.0, false).unwrap();
        assert_eq!(scheme.scale(), HeatmapScale::Log);
        covers(&scheme, 0.5, 2_000.0);
        let edges = scheme.edges();
        // 10 per decade over ~3.6 decades.
        assert!(edges.contains(&0.5) && edges.contains(&1.2) && edges.contains(&2000.0));
        assert!(edges.contains(&150.0) && edges.contains(&0.8), "{edges:?}");
        assert_eq!(scheme.bucket_of(1.0), scheme.bucket_of(1.1));
        assert_ne!(scheme.bucket_of(1.0), scheme.bucket_of(1.2));
    }

    #[test]
    fn wide_log_ranges_thin_the_series() {
        let scheme = HeatmapScheme::choose(1e-3, 1e6, false).unwrap();
        assert!(
            matches!(scheme, HeatmapScheme::Log { per_decade: 5, .. }),
            "{scheme:?}"
        );
        covers(&scheme, 1e-3, 1e6);
        let huge = HeatmapScheme::choose(1e-200, 1e200, false).unwrap();
        // 400 decades: one boundary every 8 decades fits 50 buckets.
        assert!(
            matches!(
                huge,
                HeatmapScheme::Log {
                    per_decade: 1,
                    decades: 8,
                    ..
                }
            ),
            "{huge:?}"
        );
        covers(&huge, 1e-200, 1e200);
    }

    #[test]
    fn narrow_or_signed_ranges_get_linear_buckets() {
        let scheme = HeatmapScheme::choose(3.0, 250.0, false).unwrap();
        assert_eq!(
            scheme,
            // Width 5 would need 51 buckets (250 starts one): width 10.
            HeatmapScheme::Linear {
                first: 0,
                mantissa: 10,
                exponent: 1,
                count: 26
            }
        );
        covers(&scheme, 3.0, 250.0);
        let edges = scheme.edges();
        assert_eq!(&edges[..3], &[0.0, 10.0, 20.0]);
        let signed = HeatmapScheme::choose(-0.73, 0.41, false).unwrap();
        covers(&signed, -0.73, 0.41);
        let edges = signed.edges();
        assert_eq!(edges[0], -0.75);
        assert!(
            edges.contains(&0.3),
            "decimal boundaries read as written: {edges:?}"
        );
    }

    #[test]
    fn integer_columns_keep_whole_widths() {
        let scheme = HeatmapScheme::choose(0.0, 7.0, true).unwrap();
        assert_eq!(
            scheme,
            HeatmapScheme::Linear {
                first: 0,
                mantissa: 10,
                exponent: 0,
                count: 8
            }
        );
        covers(&scheme, 0.0, 7.0);
        let status = HeatmapScheme::choose(200.0, 504.0, true).unwrap();
        covers(&status, 200.0, 504.0);
        assert!(status.edges().iter().all(|edge| edge.fract() == 0.0));
    }

    #[test]
    fn a_single_value_gets_one_bucket_around_it() {
        for value in [0.0, 5.3, -12.0, 1e9] {
            let scheme = HeatmapScheme::choose(value, value, false).unwrap();
            assert_eq!(scheme.len(), 1, "{value}: {scheme:?}");
            covers(&scheme, value, value);
        }
        assert_eq!(HeatmapScheme::choose(f64::NAN, 1.0, false), None);
        assert_eq!(HeatmapScheme::choose(2.0, 1.0, false), None);
    }

    #[test]
    fn out_of_range_values_clamp_and_nan_has_no_bucket() {
        let scheme = HeatmapScheme::choose(10.0, 20.0, false).unwrap();
        assert_eq!(scheme.bucket_of(-1e9), Some(0));
        assert_eq!(scheme.bucket_of(1e9), Some(scheme.len() as i32 - 1));
        assert_eq!(scheme.bucket_of(f64::NAN), None);
    }

    #[test]
    fn many_random_ranges_are_covered() {
        let mut state = 0x9e37_79b9_7f4a_7c15_u64;
        let mut next = || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 11) as f64 / (1u64 << 53) as f64
        };
        for _ in 0..2_000 {
            let a = (next() - 0.3) * 10f64.powf(next() * 12.0 - 4.0);
            let b = a + next() * 10f64.powf(next() * 12.0 - 4.0);
            let scheme = HeatmapScheme::choose(a, b, false).unwrap();
            covers(&scheme, a, b);
        }
    }

    #[test]
    fn the_scheme_serializes_for_the_api() {
        let scheme = HeatmapScheme::choose(1.0, 1000.0, false).unwrap();
        let json = serde_json::to_value(scheme).unwrap();
        assert_eq!(json["scale"], "log");
        let bucket = serde_json::to_value(scheme.buckets()[0]).unwrap();
        assert_eq!(
            bucket,
            serde_json::json!({"index": 0, "lower": 1.0, "upper": 1.2})
        );
    }
}
