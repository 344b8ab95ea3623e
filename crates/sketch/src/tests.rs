//! Property tests: the sketch against exact weighted quantiles, over seeded random
//! distributions (no extra dependency: `rand_chacha` makes them reproducible).

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::{QuantileSketch, SketchError};

/// Slack for float rounding on top of the documented bound.
const ROUNDING: f64 = 1e-9;
/// Quantiles checked in every case, Honeycomb's P001..P999 and more.
const QS: [f64; 16] = [
    0.0, 0.001, 0.01, 0.05, 0.1, 0.2, 0.25, 0.5, 0.75, 0.8, 0.9, 0.95, 0.99, 0.999, 0.9999, 1.0,
];

/// The exact weighted lower quantile: the smallest value whose cumulative weight
/// reaches `q` times the total (weights here are multiples of 1/4, so the sums
/// are exact and comparable with the sketch's).
fn exact_quantile(values: &[(f64, f64)], q: f64) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(|a, b| a.0.total_cmp(&b.0));
    let total: f64 = sorted.iter().map(|(_, weight)| weight).sum();
    if q == 0.0 {
        return sorted[0].0;
    }
    let rank = q * total;
    let mut cumulative = 0.0;
    for (value, weight) in &sorted {
        cumulative += weight;
        if cumulative >= rank {
            return *value;
        }
    }
    sorted[sorted.len() - 1].0
}

fn assert_within_bound(sketch: &QuantileSketch, values: &[(f64, f64)], case: &str) {
    let alpha = sketch.relative_accuracy();
    for q in QS {
        let exact = exact_quantile(values, q);
        let estimate = sketch.quantile(q).unwrap();
        let error = (estimate - exact).abs();
        assert!(
            error <= alpha * exact.abs() + ROUNDING * exact.abs().max(1e-300),
            "{case}: q={q} exact={exact} estimate={estimate}"
        );
        if q == 0.0 || q == 1.0 {
            assert_eq!(estimate, exact, "{case}: q={q} must be exact");
        }
    }
}

/// One random distribution: a mix of latency-like, signed, integer and zero values.
fn random_values(rng: &mut ChaCha8Rng, shape: usize) -> Vec<(f64, f64)> {
    let n = rng.random_range(1..2_000);
    (0..n)
        .map(|_| {
            let value = match shape % 5 {
                // Log-normal-ish latencies, 0.01 ms to 100 s.
                0 => 10f64.powf(rng.random_range(-2.0..5.0)),
                // Signed values around zero, with exact zeros.
                1 => match rng.random_range(0..10) {
                    0 => 0.0,
                    _ => rng.random_range(-1e4..1e4),
                },
                // Small integers (status codes, counts): many ties.
                2 => f64::from(rng.random_range(0..20)) * 50.0,
                // Only negatives, wide range.
                3 => -(10f64.powf(rng.random_range(-3.0..6.0))),
                // A tight cluster: relative error matters between close values.
                _ => 1000.0 + rng.random_range(0.0..1.0),
            };
            let weight = f64::from(rng.random_range(1..=40)) / 4.0;
            (value, weight)
        })
        .collect()
}

#[test]
fn quantiles_are_within_the_bound_of_exact_weighted_quantiles() {
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    for case in 0..200 {
        let values = random_values(&mut rng, case);
        let mut sketch = QuantileSketch::new();
        for (value, weight) in &values {
            sketch.add(*value, *weight).unwrap();
        }
        let total: f64 = values.iter().map(|(_, weight)| weight).sum();
        assert_eq!(sketch.count(), total);
        assert_within_bound(&sketch, &values, &format!("case {case}"));
    }
}

#[test]
fn merged_partial_sketches_match_one_sketch_of_everything() {
    let mut rng = ChaCha8Rng::seed_from_u64(11);
    for case in 0..100 {
        let values = random_values(&mut rng, case);
        let parts = rng.random_range(1..6);
        let mut partials = vec![QuantileSketch::new(); parts];
        let mut whole = QuantileSketch::new();
        for (i, (value, weight)) in values.iter().enumerate() {
            partials[i % parts].add(*value, *weight).unwrap();
            whole.add(*value, *weight).unwrap();
        }
        let mut merged = QuantileSketch::new();
        for partial in &partials {
            // Through bytes, as rollups and query state do.
            let restored = QuantileSketch::from_bytes(&partial.to_bytes()).unwrap();
            merged.merge(&restored).unwrap();
        }
        assert_within_bound(&merged, &values, &format!("merged case {case}"));
        for q in QS {
            assert_eq!(merged.quantile(q), whole.quantile(q), "case {case} q={q}");
        }
    }
}

#[test]
fn different_accuracies_keep_their_own_bound() {
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    // At 0.5% the 2,048 bins span a ratio of ~8e8, so skip shape 3 (1e9) there;
    // finer accuracies span even less (see the collapse rule).
    for alpha in [0.005, 0.02, 0.05] {
        for case in 0..20 {
            if alpha < 0.01 && case % 5 == 3 {
                continue;
            }
            let values = random_values(&mut rng, case);
            let mut sketch = QuantileSketch::with_relative_accuracy(alpha).unwrap();
            for (value, weight) in &values {
                sketch.add(*value, *weight).unwrap();
            }
            assert_within_bound(&sketch, &values, &format!("alpha {alpha} case {case}"));
        }
    }
}

#[test]
fn a_weight_counts_as_that_many_copies() {
    let mut weighted = QuantileSketch::new();
    let mut repeated = QuantileSketch::new();
    for (value, weight) in [(1.0, 3.0), (10.0, 1.0), (100.0, 6.0)] {
        weighted.add(value, weight).unwrap();
        for _ in 0..weight as usize {
            repeated.add(value, 1.0).unwrap();
        }
    }
    for q in QS {
        assert_eq!(weighted.quantile(q), repeated.quantile(q), "q={q}");
    }
    // 3 of 10 at 1.0: p30 is 1, p31 is 10, p50 is 100.
    let near = |q: f64, exact: f64| (weighted.quantile(q).unwrap() - exact).abs() <= 0.01 * exact;
    assert!(near(0.3, 1.0));
    assert!(near(0.31, 10.0));
    assert!(near(0.5, 100.0));
}

#[test]
fn empty_sketch_and_bad_input() {
    let mut sketch = QuantileSketch::new();
    assert_eq!(sketch.quantile(0.5), None);
    assert_eq!(sketch.min(), None);
    assert_eq!(sketch.count(), 0.0);
    assert!(matches!(
        sketch.add(f64::NAN, 1.0),
        Err(SketchError::NonFiniteValue(_))
    ));
    assert!(matches!(
        sketch.add(f64::INFINITY, 1.0),
        Err(SketchError::NonFiniteValue(_))
    ));
    assert!(matches!(
        sketch.add(1.0, 0.0),
        Err(SketchError::InvalidWeight(_))
    ));
    assert!(matches!(
        sketch.add(1.0, -2.0),
        Err(SketchError::InvalidWeight(_))
    ));
    assert!(matches!(
        sketch.add(1.0, f64::NAN),
        Err(SketchError::InvalidWeight(_))
    ));
    assert!(sketch.is_empty(), "refused values leave no trace");
    sketch.add(5.0, 1.0).unwrap();
    assert_eq!(sketch.quantile(-0.1), None);
    assert_eq!(sketch.quantile(1.5), None);
    assert_eq!(
        sketch.quantile(0.5),
        Some(5.0),
        "one value: clamped to itself"
    );
    let other = QuantileSketch::with_relative_accuracy(0.02).unwrap();
    assert!(matches!(
        sketch.merge(&other),
        Err(SketchError::IncompatibleAccuracy(..))
    ));
    // An empty sketch round-trips as empty.
    let empty = QuantileSketch::from_bytes(&QuantileSketch::new().to_bytes()).unwrap();
    assert!(empty.is_empty());
    assert_eq!(empty, QuantileSketch::new());
}

#[test]
fn zero_subnormals_and_extremes() {
    let mut sketch = QuantileSketch::new();
    for value in [0.0, -0.0, 1e-310, f64::MAX, -f64::MAX, f64::MIN_POSITIVE] {
        sketch.add(value, 1.0).unwrap();
    }
    assert_eq!(sketch.quantile(0.0), Some(-f64::MAX));
    assert_eq!(sketch.quantile(1.0), Some(f64::MAX));
    // Three of six are zero (0, -0, a subnormal): the median is zero.
    assert_eq!(sketch.quantile(0.5), Some(0.0));
    let top = sketch.quantile(0.99).unwrap();
    assert!(top.is_finite() && (top - f64::MAX).abs() <= 0.01 * f64::MAX);
}

#[test]
fn collapse_keeps_upper_quantiles_exact_to_the_bound() {
    // 1e-300 .. 1e300 spans far more than 2048 buckets: the low end collapses.
    let mut sketch = QuantileSketch::new();
    let mut values = Vec::new();
    for exponent in -300..=300 {
        let value = 10f64.powi(exponent);
        sketch.add(value, 1.0).unwrap();
        values.push((value, 1.0));
    }
    assert!(sketch.bucket_count() <= crate::MAX_BINS as usize);
    // 601 values; the top ~17 decades (values >= 1e283, ranks 584..) stay exact.
    for q in [0.98, 0.99, 1.0] {
        let exact = exact_quantile(&values, q);
        let estimate = sketch.quantile(q).unwrap();
        assert!(
            (estimate - exact).abs() <= 0.01 * exact * (1.0 + ROUNDING),
            "q={q}"
        );
    }
    assert_eq!(sketch.quantile(0.0), Some(values[0].0), "min stays exact");
}

#[test]
fn corrupt_bytes_are_refused_not_trusted() {
    let mut sketch = QuantileSketch::new();
    for value in [1.0, 2.0, -3.0] {
        sketch.add(value, 1.0).unwrap();
    }
    let bytes = sketch.to_bytes();
    assert!(matches!(
        QuantileSketch::from_bytes(&bytes[..10]),
        Err(SketchError::InvalidBytes(_))
    ));
    assert!(matches!(
        QuantileSketch::from_bytes(b"XYZ\x01"),
        Err(SketchError::InvalidBytes(_))
    ));
    let mut newer = bytes.clone();
    newer[3] = 9;
    assert_eq!(
        QuantileSketch::from_bytes(&newer),
        Err(SketchError::UnsupportedVersion(9))
    );
    let mut trailing = bytes.clone();
    trailing.push(0);
    assert!(QuantileSketch::from_bytes(&trailing).is_err());
    // Every truncation fails cleanly, none panics.
    for len in 0..bytes.len() {
        assert!(
            QuantileSketch::from_bytes(&bytes[..len]).is_err(),
            "len {len}"
        );
    }
    assert_eq!(QuantileSketch::from_bytes(&bytes).unwrap(), sketch);
}
