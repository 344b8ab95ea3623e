//! Property tests (`proptest`): the sketch against exact weighted quantiles, merging,
//! and its byte format; then examples for the edge cases.

use proptest::prelude::*;

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

fn assert_within_bound(
    sketch: &QuantileSketch,
    values: &[(f64, f64)],
    case: &str,
) -> Result<(), TestCaseError> {
    let alpha = sketch.relative_accuracy();
    for q in QS {
        let exact = exact_quantile(values, q);
        let estimate = sketch.quantile(q).unwrap();
        let error = (estimate - exact).abs();
        prop_assert!(
            error <= alpha * exact.abs() + ROUNDING * exact.abs().max(1e-300),
            "{}: q={} exact={} estimate={}",
            case,
            q,
            exact,
            estimate
        );
        if q == 0.0 || q == 1.0 {
            prop_assert_eq!(estimate, exact, "{}: q={} must be exact", case, q);
        }
    }
    Ok(())
}

/// Value shapes; the last one spans nine decades of negatives, more than the 2,048
/// bins hold at 0.5% (a ratio of ~8e8, see the collapse rule).
const SHAPES: usize = 5;
/// Shapes whose span every tested accuracy's bins hold.
const NARROW_SHAPES: usize = 4;
/// Most values in one case: enough to fill hundreds of bins, small enough for a
/// debug-build test to stay well under a second per hundred cases.
const MAX_VALUES: usize = 2_000;

/// Values of shape `index` (see [`SHAPES`]).
fn shape(index: usize) -> BoxedStrategy<f64> {
    match index {
        // Log-normal-ish latencies, 0.01 ms to 100 s.
        0 => (-2.0..5.0f64).prop_map(|e| 10f64.powf(e)).boxed(),
        // Signed values around zero, with exact zeros (1 in 10); other magnitudes
        // stay above 0.01 so no shape spans more than the finest accuracy's bins.
        1 => prop_oneof![
            1 => Just(0.0),
            9 => (-1e4..1e4f64).prop_filter("magnitude of at least 0.01", |x| x.abs() >= 1e-2),
        ]
        .boxed(),
        // Small integers (status codes, counts): many ties.
        2 => (0..20u32).prop_map(|i| f64::from(i) * 50.0).boxed(),
        // A tight cluster: relative error matters between close values.
        3 => (0.0..1.0f64).prop_map(|x| 1000.0 + x).boxed(),
        // Only negatives, wide range.
        _ => (-3.0..6.0f64).prop_map(|e| -(10f64.powf(e))).boxed(),
    }
}

/// Weights are multiples of 1/4 up to 10, so every sum is exact and the sketch's
/// running sums compare equal with the exact ones.
fn weight() -> impl Strategy<Value = f64> {
    (1..=40u32).prop_map(|quarters| f64::from(quarters) / 4.0)
}

/// A weighted distribution over the first `shapes` shapes: one shape for every
/// value of the case, or a mix of them all.
fn weighted_values(shapes: usize) -> impl Strategy<Value = Vec<(f64, f64)>> {
    let one_shape = (0..shapes)
        .prop_flat_map(|index| prop::collection::vec((shape(index), weight()), 1..MAX_VALUES));
    let any_shape = proptest::strategy::Union::new((0..shapes).map(shape));
    let mixed = prop::collection::vec((any_shape, weight()), 1..MAX_VALUES);
    prop_oneof![one_shape, mixed]
}

fn sketch_of(values: &[(f64, f64)], alpha: f64) -> QuantileSketch {
    let mut sketch = QuantileSketch::with_relative_accuracy(alpha).unwrap();
    for (value, weight) in values {
        sketch.add(*value, *weight).unwrap();
    }
    sketch
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn quantiles_are_within_the_bound_of_exact_weighted_quantiles(
        values in weighted_values(SHAPES),
    ) {
        let sketch = sketch_of(&values, crate::DEFAULT_RELATIVE_ACCURACY);
        let total: f64 = values.iter().map(|(_, weight)| weight).sum();
        prop_assert_eq!(sketch.count(), total);
        let exact_min = values.iter().map(|(value, _)| *value).fold(f64::INFINITY, f64::min);
        prop_assert_eq!(sketch.min(), Some(exact_min));
        assert_within_bound(&sketch, &values, "one sketch")?;
    }

    #[test]
    fn merged_partial_sketches_match_one_sketch_of_everything(
        values in weighted_values(SHAPES),
        parts in 1..6usize,
    ) {
        let mut partials = vec![QuantileSketch::new(); parts];
        for (i, (value, weight)) in values.iter().enumerate() {
            partials[i % parts].add(*value, *weight).unwrap();
        }
        let whole = sketch_of(&values, crate::DEFAULT_RELATIVE_ACCURACY);
        let mut merged = QuantileSketch::new();
        for partial in &partials {
            // Through bytes, as rollups and query state do.
            let restored = QuantileSketch::from_bytes(&partial.to_bytes()).unwrap();
            merged.merge(&restored).unwrap();
        }
        assert_within_bound(&merged, &values, "merged")?;
        // Quarter weights sum exactly in any order: merging loses nothing at all.
        prop_assert_eq!(&merged, &whole);
    }

    #[test]
    fn merging_is_order_independent(
        left in weighted_values(SHAPES),
        right in weighted_values(SHAPES),
    ) {
        let alpha = crate::DEFAULT_RELATIVE_ACCURACY;
        let mut left_right = sketch_of(&left, alpha);
        left_right.merge(&sketch_of(&right, alpha)).unwrap();
        let mut right_left = sketch_of(&right, alpha);
        right_left.merge(&sketch_of(&left, alpha)).unwrap();
        prop_assert_eq!(&left_right, &right_left);
        let both: Vec<(f64, f64)> = left.iter().chain(&right).copied().collect();
        assert_within_bound(&left_right, &both, "merged halves")?;
    }

    #[test]
    fn different_accuracies_keep_their_own_bound(
        values in weighted_values(NARROW_SHAPES),
        alpha in prop_oneof![Just(0.005), Just(0.02), Just(0.05), 0.005..0.2f64],
    ) {
        let sketch = sketch_of(&values, alpha);
        prop_assert_eq!(sketch.relative_accuracy(), alpha);
        assert_within_bound(&sketch, &values, &format!("alpha {alpha}"))?;
    }

    #[test]
    fn bytes_round_trip_exactly(
        values in weighted_values(SHAPES),
        alpha in prop_oneof![Just(crate::DEFAULT_RELATIVE_ACCURACY), 0.005..0.2f64],
    ) {
        let sketch = sketch_of(&values, alpha);
        let bytes = sketch.to_bytes();
        let restored = QuantileSketch::from_bytes(&bytes).unwrap();
        prop_assert_eq!(&restored, &sketch);
        prop_assert_eq!(restored.to_bytes(), bytes);
    }

    #[test]
    fn damaged_bytes_are_refused_or_still_a_valid_sketch(
        values in prop::collection::vec((shape(0), weight()), 1..50),
        cut in any::<prop::sample::Index>(),
        flip_at in any::<prop::sample::Index>(),
        flip in 1..=255u8,
    ) {
        let bytes = sketch_of(&values, crate::DEFAULT_RELATIVE_ACCURACY).to_bytes();
        // The format has no checksum (rollup segments and query state carry their
        // own): every truncation is refused, a flipped byte is refused or reads as
        // a sketch that keeps the format's invariants. Never a panic.
        let cut = cut.index(bytes.len());
        prop_assert!(QuantileSketch::from_bytes(&bytes[..cut]).is_err(), "cut at {}", cut);
        let mut flipped = bytes.clone();
        flipped[flip_at.index(bytes.len())] ^= flip;
        if let Ok(sketch) = QuantileSketch::from_bytes(&flipped) {
            prop_assert!(sketch.count() >= 0.0 && sketch.count().is_finite());
            if let (Some(min), Some(max)) = (sketch.min(), sketch.max()) {
                prop_assert!(min.is_finite() && max.is_finite(), "min {} max {}", min, max);
            }
            prop_assert!(sketch.bucket_count() <= 2 * crate::MAX_BINS as usize + 1);
            if let (Some(min), Some(max)) = (sketch.min(), sketch.max()) {
                prop_assert!(min <= max);
                for q in QS {
                    let estimate = sketch.quantile(q).unwrap();
                    prop_assert!((min..=max).contains(&estimate), "q={} {}", q, estimate);
                }
            }
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
