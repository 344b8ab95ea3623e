//! Comparing one column's weighted distribution in the selection and the baseline.
//!
//! The score is the *total variation distance* (TVD) between the two sides'
//! distributions over the column's buckets: half the sum of absolute share
//! differences, from 0 (same distribution) to 1 (disjoint). Shares are of each
//! side's total weight (`meta.sample_rate`), so a missing value is a bucket of its
//! own. Categorical buckets are the leading values (top N of each side), one bucket
//! for every other value and one for missing; numeric buckets are histogram buckets
//! with edges shared by both sides, plus missing. Coarsening to these buckets can
//! only lower the TVD, and keeps a many-valued column from looking different just
//! because a small selection cannot hold all of its values.

use std::collections::HashMap;

use serde::Serialize;
use serde_json::Value;

/// Weight of one bucket on each side.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct SideWeights {
    /// Weight in the selection.
    pub selection: f64,
    /// Weight in the baseline.
    pub baseline: f64,
}

impl SideWeights {
    fn add(&mut self, other: SideWeights) {
        self.selection += other.selection;
        self.baseline += other.baseline;
    }
}

/// A bucket's share of each side's total weight.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Shares {
    /// Share of the selection's weight, 0..=1.
    pub selection: f64,
    /// Share of the baseline's weight, 0..=1.
    pub baseline: f64,
}

/// One leading value of a categorical column.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ValueShares {
    /// The value (string, number or bool).
    pub value: Value,
    /// Share of the selection's weight, 0..=1.
    pub selection: f64,
    /// Share of the baseline's weight, 0..=1.
    pub baseline: f64,
}

/// A categorical column compared.
#[derive(Debug, Clone, PartialEq)]
pub struct Categorical {
    /// Leading values, by selection share then baseline share (descending).
    pub values: Vec<ValueShares>,
    /// Every other value together.
    pub other: Shares,
    /// Rows without a value.
    pub missing: Shares,
    /// TVD over values, other and missing.
    pub score: f64,
}

/// A numeric column's histogram compared.
#[derive(Debug, Clone, PartialEq)]
pub struct Histogram {
    /// Share of each bucket (bucket `i` spans `edges[i]..edges[i + 1]`).
    pub selection: Vec<f64>,
    /// Same for the baseline.
    pub baseline: Vec<f64>,
    /// Rows without a value.
    pub missing: Shares,
    /// TVD over the buckets and missing.
    pub score: f64,
}

/// Half the sum of absolute differences of paired shares.
pub fn total_variation(pairs: impl IntoIterator<Item = (f64, f64)>) -> f64 {
    let sum: f64 = pairs.into_iter().map(|(a, b)| (a - b).abs()).sum();
    (sum / 2.0).clamp(0.0, 1.0)
}

/// `part / total`, 0 when the side is empty.
fn share(part: f64, total: f64) -> f64 {
    if total > 0.0 { part / total } else { 0.0 }
}

fn shares(weights: SideWeights, totals: SideWeights) -> Shares {
    Shares {
        selection: share(weights.selection, totals.selection),
        baseline: share(weights.baseline, totals.baseline),
    }
}

/// Compares a categorical column from its weight per value as text (`None` =
/// missing); keeps the `top` leading values of each side; `typed` turns a value's
/// text back into its JSON value.
pub fn compare_categorical(
    weights: &HashMap<Option<String>, SideWeights>,
    top: usize,
    typed: impl Fn(&str) -> Value,
) -> Categorical {
    let mut totals = SideWeights::default();
    for weight in weights.values() {
        totals.add(*weight);
    }
    let missing_weights = weights.get(&None).copied().unwrap_or_default();
    let mut present: Vec<(&String, SideWeights)> = weights
        .iter()
        .filter_map(|(value, weight)| value.as_ref().map(|value| (value, *weight)))
        .collect();
    // Deterministic order among equal weights: by the value's text.
    let leading = |present: &mut Vec<(&String, SideWeights)>, side: fn(&SideWeights) -> f64| {
        present.sort_by(|a, b| side(&b.1).total_cmp(&side(&a.1)).then_with(|| a.0.cmp(b.0)));
        present
            .iter()
            .take(top)
            .filter(|(_, weight)| side(weight) > 0.0)
            .map(|(value, _)| (*value).clone())
            .collect::<Vec<String>>()
    };
    let mut chosen = leading(&mut present, |w| w.selection);
    for value in leading(&mut present, |w| w.baseline) {
        if !chosen.contains(&value) {
            chosen.push(value);
        }
    }
    let mut other = SideWeights::default();
    for (value, weight) in &present {
        if !chosen.contains(*value) {
            other.add(*weight);
        }
    }
    let mut values: Vec<ValueShares> = chosen
        .into_iter()
        .map(|value| {
            let weight = weights
                .get(&Some(value.clone()))
                .copied()
                .unwrap_or_default();
            let value_shares = shares(weight, totals);
            ValueShares {
                value: typed(&value),
                selection: value_shares.selection,
                baseline: value_shares.baseline,
            }
        })
        .collect();
    values.sort_by(|a, b| {
        b.selection
            .total_cmp(&a.selection)
            .then(b.baseline.total_cmp(&a.baseline))
    });
    let other = shares(other, totals);
    let missing = shares(missing_weights, totals);
    let score = if totals.selection > 0.0 && totals.baseline > 0.0 {
        total_variation(values.iter().map(|v| (v.selection, v.baseline)).chain([
            (other.selection, other.baseline),
            (missing.selection, missing.baseline),
        ]))
    } else {
        0.0
    };
    Categorical {
        values,
        other,
        missing,
        score,
    }
}

/// Compares a numeric column from its weight per bucket index (`None` = missing)
/// over `buckets` buckets.
pub fn compare_histogram(weights: &HashMap<Option<i64>, SideWeights>, buckets: usize) -> Histogram {
    let mut totals = SideWeights::default();
    for weight in weights.values() {
        totals.add(*weight);
    }
    let mut per_bucket = vec![SideWeights::default(); buckets];
    for (bucket, weight) in weights {
        if let Some(bucket) = bucket {
            let index = usize::try_from(*bucket)
                .unwrap_or(0)
                .min(buckets.saturating_sub(1));
            if let Some(slot) = per_bucket.get_mut(index) {
                slot.add(*weight);
            }
        }
    }
    let missing = shares(weights.get(&None).copied().unwrap_or_default(), totals);
    let bucket_shares: Vec<Shares> = per_bucket.iter().map(|w| shares(*w, totals)).collect();
    let score = if totals.selection > 0.0 && totals.baseline > 0.0 {
        total_variation(
            bucket_shares
                .iter()
                .map(|s| (s.selection, s.baseline))
                .chain([(missing.selection, missing.baseline)]),
        )
    } else {
        0.0
    };
    Histogram {
        selection: bucket_shares.iter().map(|s| s.selection).collect(),
        baseline: bucket_shares.iter().map(|s| s.baseline).collect(),
        missing,
        score,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn w(selection: f64, baseline: f64) -> SideWeights {
        SideWeights {
            selection,
            baseline,
        }
    }

    #[test]
    fn total_variation_is_half_the_l1_distance() {
        assert_eq!(total_variation([(1.0, 0.0), (0.0, 1.0)]), 1.0);
        assert_eq!(total_variation([(0.5, 0.5), (0.5, 0.5)]), 0.0);
        assert!((total_variation([(0.7, 0.2), (0.3, 0.8)]) - 0.5).abs() < 1e-12);
    }

    #[test]
    fn a_value_concentrated_in_the_selection_scores_high() {
        let weights = HashMap::from([
            (Some("b-bad".to_owned()), w(90.0, 10.0)),
            (Some("b-1".to_owned()), w(10.0, 45.0)),
            (Some("b-2".to_owned()), w(0.0, 45.0)),
        ]);
        let result = compare_categorical(&weights, 10, |v| json!(v));
        assert!((result.score - 0.8).abs() < 1e-12, "{}", result.score);
        assert_eq!(result.values[0].value, json!("b-bad"));
        assert!((result.values[0].selection - 0.9).abs() < 1e-12);
        assert!((result.values[0].baseline - 0.1).abs() < 1e-12);
        assert_eq!(result.other, Shares::default());
    }

    #[test]
    fn values_beyond_the_top_fold_into_other_and_missing_counts() {
        let weights = HashMap::from([
            (Some("1".to_owned()), w(5.0, 5.0)),
            (Some("2".to_owned()), w(3.0, 1.0)),
            (Some("3".to_owned()), w(1.0, 3.0)),
            (Some("4".to_owned()), w(1.0, 0.0)),
            (None, w(0.0, 1.0)),
        ]);
        let result = compare_categorical(&weights, 1, |v| json!(v.parse::<i64>().unwrap()));
        // Top of each side: 1 (selection 0.5, baseline 0.5); the rest is other.
        let values: Vec<&Value> = result.values.iter().map(|v| &v.value).collect();
        assert_eq!(values, vec![&json!(1)]);
        assert!((result.other.selection - 0.5).abs() < 1e-12);
        assert!((result.other.baseline - 0.4).abs() < 1e-12);
        assert!((result.missing.baseline - 0.1).abs() < 1e-12);
        // |0.5-0.5| + |0.5-0.4| + |0-0.1| = 0.2 -> 0.1
        assert!((result.score - 0.1).abs() < 1e-12, "{}", result.score);
    }

    #[test]
    fn identical_sides_score_zero_and_an_empty_side_scores_zero() {
        let same = HashMap::from([
            (Some("true".to_owned()), w(2.0, 4.0)),
            (Some("false".to_owned()), w(1.0, 2.0)),
        ]);
        assert_eq!(compare_categorical(&same, 5, |v| json!(v)).score, 0.0);
        let empty = HashMap::from([(Some("x".to_owned()), w(0.0, 4.0))]);
        assert_eq!(compare_categorical(&empty, 5, |v| json!(v)).score, 0.0);
    }

    #[test]
    fn histograms_share_buckets_and_count_missing() {
        let weights = HashMap::from([
            (Some(0), w(0.0, 8.0)),
            (Some(1), w(1.0, 2.0)),
            (Some(3), w(3.0, 0.0)),
            // Out-of-range indexes land in the last bucket.
            (Some(9), w(0.0, 0.0)),
            (None, w(0.0, 0.0)),
        ]);
        let result = compare_histogram(&weights, 4);
        assert_eq!(result.selection, vec![0.0, 0.25, 0.0, 0.75]);
        assert_eq!(result.baseline, vec![0.8, 0.2, 0.0, 0.0]);
        // (0.8 + 0.05 + 0 + 0.75) / 2
        assert!((result.score - 0.8).abs() < 1e-12, "{}", result.score);
    }
}
