//! The range functions and `histogram_quantile`, as Prometheus 2.x computes them
//! (promql/functions.go and promql/quantile.go), so that answers agree with a
//! Prometheus server's over the same samples.

use std::collections::BTreeMap;

use crate::labels::{Labels, Sample, without_name};

/// The bucket bound label of classic histograms.
pub(crate) const BUCKET_LABEL: &str = "le";

/// `rate`, `increase` and `delta` over one series' samples in the window
/// `[range_end - range_ms, range_end]`: the change between the first and last
/// sample (with counter resets added back for counters), extrapolated towards
/// the window's edges unless a sample is far from them.
pub(crate) fn extrapolated_rate(
    samples: &[(i64, f64)],
    range_end: i64,
    range_ms: i64,
    is_counter: bool,
    is_rate: bool,
) -> Option<f64> {
    if samples.len() < 2 {
        return None;
    }
    let (first_time, first_value) = samples[0];
    let (last_time, last_value) = samples[samples.len() - 1];
    let range_start = range_end - range_ms;
    let mut result = last_value - first_value;
    if is_counter {
        let mut previous = 0.0;
        for &(_, value) in samples {
            if value < previous {
                result += previous;
            }
            previous = value;
        }
    }
    let mut to_start = (first_time - range_start) as f64 / 1000.0;
    let to_end = (range_end - last_time) as f64 / 1000.0;
    let sampled = (last_time - first_time) as f64 / 1000.0;
    let average_gap = sampled / (samples.len() - 1) as f64;
    if is_counter && result > 0.0 && first_value >= 0.0 {
        // A counter cannot go below zero: extrapolate no further back than where
        // it would have been zero.
        let to_zero = sampled * (first_value / result);
        if to_zero < to_start {
            to_start = to_zero;
        }
    }
    let threshold = average_gap * 1.1;
    let mut interval = sampled;
    interval += if to_start < threshold {
        to_start
    } else {
        average_gap / 2.0
    };
    interval += if to_end < threshold {
        to_end
    } else {
        average_gap / 2.0
    };
    result *= interval / sampled;
    if is_rate {
        result /= range_ms as f64 / 1000.0;
    }
    Some(result)
}

/// `irate` (`is_rate`) and `idelta`: from the last two samples of the window.
pub(crate) fn instant_rate(samples: &[(i64, f64)], is_rate: bool) -> Option<f64> {
    let [.., (previous_time, previous), (last_time, last)] = samples else {
        return None;
    };
    let mut result = if is_rate && last < previous {
        *last
    } else {
        last - previous
    };
    let interval = last_time - previous_time;
    if interval == 0 {
        return None;
    }
    if is_rate {
        result /= interval as f64 / 1000.0;
    }
    Some(result)
}

/// `histogram_quantile(q, buckets)`: per label set without `le`, the quantile
/// interpolated linearly within the bucket holding it.
pub(crate) fn histogram_quantile(q: f64, buckets: Vec<Sample>) -> Vec<Sample> {
    let mut histograms: BTreeMap<Labels, Vec<(f64, f64)>> = BTreeMap::new();
    for sample in buckets {
        let mut labels = without_name(sample.labels);
        let Some(bound) = labels.remove(BUCKET_LABEL) else {
            continue;
        };
        let Ok(bound) = parse_bound(&bound) else {
            continue;
        };
        histograms
            .entry(labels)
            .or_default()
            .push((bound, sample.value));
    }
    histograms
        .into_iter()
        .map(|(labels, buckets)| Sample {
            labels,
            value: bucket_quantile(q, buckets),
        })
        .collect()
}

fn parse_bound(text: &str) -> Result<f64, std::num::ParseFloatError> {
    match text {
        "+Inf" | "Inf" | "+inf" | "inf" => Ok(f64::INFINITY),
        "-Inf" | "-inf" => Ok(f64::NEG_INFINITY),
        _ => text.parse(),
    }
}

/// Prometheus's `bucketQuantile` over (upper bound, cumulative count) pairs.
fn bucket_quantile(q: f64, mut buckets: Vec<(f64, f64)>) -> f64 {
    if q.is_nan() {
        return f64::NAN;
    }
    if q < 0.0 {
        return f64::NEG_INFINITY;
    }
    if q > 1.0 {
        return f64::INFINITY;
    }
    buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
    match buckets.last() {
        Some(&(bound, _)) if bound == f64::INFINITY => {}
        _ => return f64::NAN,
    }
    // Buckets of one bound (from several series) add up.
    let mut merged: Vec<(f64, f64)> = Vec::with_capacity(buckets.len());
    for (bound, count) in buckets {
        match merged.last_mut() {
            Some(last) if last.0 == bound => last.1 += count,
            _ => merged.push((bound, count)),
        }
    }
    // Counts must not decrease with the bound (scrapes are not atomic).
    let mut highest = f64::NEG_INFINITY;
    for bucket in &mut merged {
        if bucket.1 > highest {
            highest = bucket.1;
        } else if bucket.1 < highest {
            bucket.1 = highest;
        }
    }
    if merged.len() < 2 {
        return f64::NAN;
    }
    let observations = merged[merged.len() - 1].1;
    if observations == 0.0 {
        return f64::NAN;
    }
    let mut rank = q * observations;
    let last = merged.len() - 1;
    let b = merged[..last].partition_point(|bucket| bucket.1 < rank);
    if b == last {
        return merged[last - 1].0;
    }
    if b == 0 && merged[0].0 <= 0.0 {
        return merged[0].0;
    }
    let (mut start, end, mut count) = (0.0, merged[b].0, merged[b].1);
    if b > 0 {
        start = merged[b - 1].0;
        count -= merged[b - 1].1;
        rank -= merged[b - 1].1;
    }
    start + (end - start) * (rank / count)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rate_extrapolates_to_the_window_edges() {
        // A counter scraped every 15 s, 1 per second, inside a 60 s window that
        // ends 5 s after the last sample: Prometheus answers exactly 1.
        let samples: Vec<(i64, f64)> = (0..4)
            .map(|i| (10_000 + i * 15_000, 100.0 + 15.0 * i as f64))
            .collect();
        let rate = extrapolated_rate(&samples, 60_000, 60_000, true, true).unwrap();
        assert!((rate - 1.0).abs() < 1e-12, "{rate}");
        let increase = extrapolated_rate(&samples, 60_000, 60_000, true, false).unwrap();
        assert!((increase - 60.0).abs() < 1e-9, "{increase}");
        assert_eq!(
            extrapolated_rate(&samples[..1], 60_000, 60_000, true, true),
            None
        );
    }

    #[test]
    fn a_counter_reset_is_added_back() {
        let samples = [(0, 10.0), (15_000, 20.0), (30_000, 5.0), (45_000, 15.0)];
        // 10 + (20 reset to 0) + 5 + 10 = 25 over 45 s sampled; both edges
        // are 7.5 s away, within 1.1 gaps, so it extends to the whole 60 s.
        let increase = extrapolated_rate(&samples, 52_500, 60_000, true, false).unwrap();
        assert!((increase - 25.0 * 60.0 / 45.0).abs() < 1e-9, "{increase}");
    }

    #[test]
    fn irate_uses_the_last_two_samples() {
        assert_eq!(
            instant_rate(&[(0, 1.0), (10_000, 6.0), (20_000, 26.0)], true),
            Some(2.0)
        );
        assert_eq!(instant_rate(&[(0, 10.0), (10_000, 5.0)], true), Some(0.5));
        assert_eq!(instant_rate(&[(0, 10.0), (10_000, 5.0)], false), Some(-5.0));
        assert_eq!(instant_rate(&[(0, 1.0)], true), None);
    }

    #[test]
    fn quantiles_interpolate_within_their_bucket() {
        let buckets = vec![
            (0.1, 10.0),
            (0.5, 60.0),
            (1.0, 90.0),
            (f64::INFINITY, 100.0),
        ];
        assert!((bucket_quantile(0.5, buckets.clone()) - (0.1 + 0.4 * 40.0 / 50.0)).abs() < 1e-12);
        assert_eq!(bucket_quantile(0.99, buckets.clone()), 1.0);
        assert_eq!(bucket_quantile(1.5, buckets.clone()), f64::INFINITY);
        assert!(bucket_quantile(0.5, vec![(0.1, 1.0), (0.5, 2.0)]).is_nan());
    }
}
